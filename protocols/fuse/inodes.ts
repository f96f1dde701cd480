/**
 * FUSE inode numbers and the files they stand for. An inode is a VFS file id — the number itself
 * where it can be (the id is below 2^52, not taken by another share's file, and not 1) — so what
 * `ls -i` shows through the mount is the id NFS and SMB clients see, and it is the same after a
 * remount. Otherwise (two shares on one store hand out the same id, or the id is 1, FUSE's root)
 * it gets a number from a counter above 2^52 that is never reused while the mount lives. Numbers
 * stay below 2^53 so they cross into JS as exact doubles (fuse_addon.cc).
 *
 * Counting follows FUSE's protocol: every reply that hands the kernel an inode (lookup, create,
 * mkdir, symlink, link, mknod, each readdirplus entry) adds one; FORGET takes n away; at zero the
 * entry goes. Generation numbers are 1: ids are never reused, so no inode number names two files
 * during a mount.
 */
export const ROOT_INO = 1;
const SYNTHETIC_BASE = 2 ** 52;

export interface Inode {
  ino: number;
  share: string;
  id: bigint;
  lookups: number;
  /** Change value the last open saw (keep_cache while it is unchanged). */
  openChange?: bigint;
  /** This mount's own changes of the file in flight (their change events need no invalidation). */
  ownOps?: number;
}

export class InodeTable {
  private readonly byIno = new Map<number, Inode>();
  private readonly byKey = new Map<string, Inode>();
  private next = SYNTHETIC_BASE;

  get size(): number {
    return this.byIno.size;
  }

  get(ino: number): Inode | undefined {
    return this.byIno.get(ino);
  }

  find(share: string, id: bigint): Inode | undefined {
    return this.byKey.get(`${share}\0${id}`);
  }

  /** The inode of a file, made when new; `count` adds a kernel reference. */
  intern(share: string, id: bigint, count: boolean, ino?: number): Inode {
    const key = `${share}\0${id}`;
    let n = this.byKey.get(key);
    if (!n) {
      let num = ino;
      if (num === undefined) {
        num = id > 1n && id < BigInt(SYNTHETIC_BASE) && !this.byIno.has(Number(id)) ? Number(id) : this.next++;
      }
      n = { ino: num, share, id, lookups: 0 };
      this.byIno.set(num, n);
      this.byKey.set(key, n);
    }
    if (count) n.lookups++;
    return n;
  }

  /** The number a plain readdir shows for a file (no reference is made). */
  peek(share: string, id: bigint): number {
    const n = this.find(share, id);
    if (n) return n.ino;
    // Informational only (readdir without plus: the kernel looks the name up before using it); never 0,
    // which some readers take for a deleted entry.
    return Number(id % BigInt(SYNTHETIC_BASE)) || 1;
  }

  forget(ino: number, count: number): void {
    const n = this.byIno.get(ino);
    if (!n || ino === ROOT_INO) return;
    n.lookups -= count;
    if (n.lookups <= 0) {
      this.byIno.delete(ino);
      this.byKey.delete(`${n.share}\0${n.id}`);
    }
  }
}
