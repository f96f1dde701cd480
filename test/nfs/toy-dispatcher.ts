/**
 * A toy NFSv4 dispatcher over an in-memory tree, for tests of the wire layer only: enough of 4.0,
 * 4.1 and 4.2 (client ids and sessions without replay caches, opens and locks that are never
 * refused, namespace and data operations) for libnfs and the Linux kernel client to mount, list,
 * read, write, rename and remove — so every result encoder is checked by real clients. It is NOT
 * the NFS server's semantics: no access checks, no state validation, no persistence; those come
 * with the operations over the Session's by-id API.
 */
import { randomBytes } from 'node:crypto';
import { runCompound, type DecodedOp, type OpResult } from '../../protocols/nfs/compound.ts';
import { attrListBytes, decodeAttrValues, encodeFattr, fattrToBuffer, type AttrValues } from '../../protocols/nfs/fattr4.ts';
import { CREATEMODE4, EXCHGID4_FLAG, FATTR4, FH4, NF4, NFS4ERR, OP, OPEN_DELEGATE, STABLE_HOW, WND4 } from '../../protocols/nfs/nfs4-types.ts';
import type { Nfs4Dispatcher } from '../../protocols/nfs/nfs4-program.ts';
import { READDIR_FIXED_BYTES, readdirEntryBytes, type ReaddirEntry } from '../../protocols/nfs/xdr4/namespace.ts';
import { bitmapOf, type ChangeInfo4, type Fattr4 } from '../../protocols/nfs/xdr4/common.ts';
import type { XdrWriter } from '../../protocols/nfs/xdr.ts';

export const TOY_FILE = Buffer.from('hello world\n'.repeat(1000));
/** 3 MiB and a bit: several READs, each a view of this buffer in the reply. */
export const TOY_BIG = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 1234 }, (_, i) => (i * 131 + (i >> 10)) & 0xff));

interface Node {
  id: number;
  parent: number;
  name: string;
  type: number;
  data: Buffer;
  size: number;
  mode: number;
  change: bigint;
  mtime: bigint;
  target: string;
}

const SUPPORTED = bitmapOf([
  FATTR4.SUPPORTED_ATTRS, FATTR4.TYPE, FATTR4.FH_EXPIRE_TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.LINK_SUPPORT, FATTR4.SYMLINK_SUPPORT,
  FATTR4.NAMED_ATTR, FATTR4.FSID, FATTR4.UNIQUE_HANDLES, FATTR4.LEASE_TIME, FATTR4.RDATTR_ERROR, FATTR4.FILEHANDLE, FATTR4.FILEID,
  FATTR4.FILES_AVAIL, FATTR4.FILES_FREE, FATTR4.FILES_TOTAL, FATTR4.MAXFILESIZE, FATTR4.MAXLINK, FATTR4.MAXNAME, FATTR4.MAXREAD,
  FATTR4.MAXWRITE, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.SPACE_AVAIL, FATTR4.SPACE_FREE,
  FATTR4.SPACE_TOTAL, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_DELTA, FATTR4.TIME_METADATA, FATTR4.TIME_MODIFY,
  FATTR4.MOUNTED_ON_FILEID, FATTR4.SUPPATTR_EXCLCREAT, FATTR4.CANSETTIME, FATTR4.CASE_INSENSITIVE, FATTR4.CASE_PRESERVING,
  FATTR4.CHOWN_RESTRICTED, FATTR4.HOMOGENEOUS, FATTR4.NO_TRUNC, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET,
]);
const EXCLCREAT = bitmapOf([FATTR4.SIZE, FATTR4.MODE, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET]);
const WRITE_VERIFIER = randomBytes(8);
const PAGE = 4096;

const fhOf = (id: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(id));
  return b;
};
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
const time = (ns: bigint) => ({ seconds: ns / 1_000_000_000n, nseconds: Number(ns % 1_000_000_000n) });

export function createToyDispatcher(): Nfs4Dispatcher {
  const nodes = new Map<number, Node>();
  let nextId = 1;
  let changeSeq = 1n;
  const add = (parent: number, name: string, type: number, data = Buffer.alloc(0), mode = type === NF4.DIR ? 0o755 : 0o644, target = ''): Node => {
    const n: Node = { id: nextId++, parent, name, type, data, size: data.length, mode, change: changeSeq++, mtime: nowNs(), target };
    nodes.set(n.id, n);
    return n;
  };
  const root = add(1, '', NF4.DIR);
  add(root.id, 'hello.txt', NF4.REG, TOY_FILE);
  const sub = add(root.id, 'sub', NF4.DIR);
  add(sub.id, 'inner.txt', NF4.REG, Buffer.from('inner\n'));
  add(sub.id, 'big.bin', NF4.REG, TOY_BIG);

  const children = (dir: Node): Node[] => [...nodes.values()].filter((c) => c.parent === dir.id && c.id !== dir.id);
  const child = (dir: Node, name: string): Node | undefined => children(dir).find((c) => c.name === name);
  const touch = (n: Node): void => {
    n.change = changeSeq++;
    n.mtime = nowNs();
  };
  const dirChange = (dir: Node, f: () => void): ChangeInfo4 => {
    const before = dir.change;
    f();
    touch(dir);
    return { atomic: true, before, after: dir.change };
  };
  const attrs = (n: Node): AttrValues => ({
    supportedAttrs: SUPPORTED, type: n.type, fhExpireType: FH4.PERSISTENT, change: n.change, size: BigInt(n.size), linkSupport: true,
    symlinkSupport: true, namedAttr: false, fsid: { major: 1n, minor: 1n }, uniqueHandles: true, leaseTime: 90, rdattrError: 0,
    filehandle: fhOf(n.id), fileid: BigInt(n.id), filesAvail: 1_000_000n, filesFree: 1_000_000n, filesTotal: 2_000_000n,
    maxfilesize: 2n ** 40n, maxlink: 1, maxname: 255, maxread: 1_048_576n, maxwrite: 1_048_576n, mode: n.mode,
    numlinks: n.type === NF4.DIR ? 2 : 1, owner: '0', ownerGroup: '0', spaceAvail: 1n << 30n, spaceFree: 1n << 30n, spaceTotal: 1n << 31n,
    spaceUsed: BigInt(Math.ceil(n.size / PAGE) * PAGE), timeAccess: time(n.mtime), timeDelta: { seconds: 0n, nseconds: 1 },
    timeMetadata: time(n.mtime), timeModify: time(n.mtime), mountedOnFileid: BigInt(n.id), suppattrExclcreat: EXCLCREAT, cansettime: true,
    caseInsensitive: false, casePreserving: true, chownRestricted: true, homogeneous: true, noTrunc: true,
  });
  const setSize = (n: Node, size: number): void => {
    if (size > n.data.length) {
      const d = Buffer.alloc(Math.max(size, n.data.length * 2));
      n.data.copy(d, 0, 0, n.size);
      n.data = d;
    } else if (size < n.size) {
      n.data.fill(0, size, n.size);
    }
    n.size = size;
    touch(n);
  };
  /** Applies settable attributes; returns the status and the bitmap of what was set. */
  const apply = (n: Node, f: Fattr4): { status: number; set: number[] } => {
    const d = decodeAttrValues(f, { settable: true });
    if (!d.ok) return { status: d.status, set: [] };
    if (d.values.size !== undefined) {
      if (n.type !== NF4.REG) return { status: NFS4ERR.INVAL, set: [] };
      setSize(n, Number(d.values.size));
    }
    if (d.values.mode !== undefined) n.mode = d.values.mode & 0o7777;
    touch(n);
    const m = d.values.timeModifySet;
    if (m) n.mtime = m.how === 1 ? m.time.seconds * 1_000_000_000n + BigInt(m.time.nseconds) : nowNs();
    return { status: 0, set: bitmapOf(d.attrs) };
  };
  const stateid = () => ({ seqid: 1, other: randomBytes(12) });

  return {
    compound: (args) => {
      let cur: Node | undefined;
      let saved: Node | undefined;
      const exec = (op: DecodedOp): OpResult => {
        const fail = (status: number): OpResult => ({ op: op.op, status } as OpResult);
        if (op.op === OP.PUTROOTFH || op.op === OP.PUTPUBFH) {
          cur = root;
          return fail(0);
        }
        if (op.op === OP.PUTFH) {
          cur = op.args.fh.length === 8 ? nodes.get(Number(op.args.fh.readBigUInt64BE(0))) : undefined;
          return fail(cur ? 0 : NFS4ERR.STALE);
        }
        switch (op.op) {
          case OP.SETCLIENTID:
            return { op: op.op, status: 0, res: { clientid: 1n, confirm: Buffer.alloc(8, 1) } };
          case OP.EXCHANGE_ID:
            return {
              op: op.op,
              status: 0,
              res: {
                clientid: 1n, sequenceid: 1, flags: EXCHGID4_FLAG.USE_NON_PNFS, stateProtect: { how: 0 },
                serverOwner: { minorId: 0n, majorId: Buffer.from('toy') }, serverScope: Buffer.from('toy'),
              },
            };
          case OP.CREATE_SESSION: {
            const clamp = (a: typeof op.args.fore) => ({ ...a, maxRequests: Math.min(a.maxRequests, 16), maxOperations: Math.min(a.maxOperations, 16), rdmaIrd: [] });
            return { op: op.op, status: 0, res: { sessionid: randomBytes(16), sequence: op.args.sequence, flags: 0, fore: clamp(op.args.fore), back: clamp(op.args.back) } };
          }
          case OP.SEQUENCE:
            return {
              op: op.op,
              status: 0,
              res: { sessionid: op.args.sessionid, sequenceid: op.args.sequenceid, slotid: op.args.slotid, highestSlotid: op.args.highestSlotid, targetHighestSlotid: 15, statusFlags: 0 },
            };
          case OP.BIND_CONN_TO_SESSION:
            return { op: op.op, status: 0, res: { sessionid: op.args.sessionid, dir: 3, rdma: false } };
          case OP.TEST_STATEID:
            return { op: op.op, status: 0, res: { statuses: op.args.stateids.map(() => 0) } };
          case OP.SECINFO_NO_NAME:
          case OP.SECINFO:
            return { op: op.op, status: 0, res: { flavors: [{ flavor: 1 }] } };
          case OP.SETCLIENTID_CONFIRM:
          case OP.RENEW:
          case OP.RECLAIM_COMPLETE:
          case OP.DESTROY_SESSION:
          case OP.DESTROY_CLIENTID:
          case OP.FREE_STATEID:
          case OP.RELEASE_LOCKOWNER:
          case OP.DELEGRETURN:
          case OP.BACKCHANNEL_CTL:
            return fail(0);
        }
        if (!cur) return fail(NFS4ERR.NOFILEHANDLE);
        const n = cur;
        switch (op.op) {
          case OP.SAVEFH:
            saved = n;
            return fail(0);
          case OP.RESTOREFH:
            if (!saved) return fail(NFS4ERR.RESTOREFH);
            cur = saved;
            return fail(0);
          case OP.GETFH:
            return { op: op.op, status: 0, res: { fh: fhOf(n.id) } };
          case OP.GETATTR: {
            const req = op.args.request;
            return { op: op.op, status: 0, res: { writeAttrs: (w: XdrWriter) => void encodeFattr(w, req, attrs(n)) } };
          }
          case OP.VERIFY:
          case OP.NVERIFY: {
            const same = attrListBytes(op.args.attrs.mask, attrs(n))?.equals(op.args.attrs.vals) ?? false;
            return fail(op.op === OP.VERIFY ? (same ? 0 : NFS4ERR.NOT_SAME) : same ? NFS4ERR.SAME : 0);
          }
          case OP.ACCESS:
            return { op: op.op, status: 0, res: { supported: op.args.access, access: op.args.access } };
          case OP.SETATTR: {
            const r = apply(n, op.args.attrs);
            return { op: op.op, status: r.status, res: { attrsSet: r.set } };
          }
          case OP.READLINK:
            return n.type === NF4.LNK ? { op: op.op, status: 0, res: { link: n.target } } : fail(NFS4ERR.INVAL);
          case OP.READ: {
            if (n.type !== NF4.REG) return fail(n.type === NF4.DIR ? NFS4ERR.ISDIR : NFS4ERR.INVAL);
            const start = Math.min(Number(op.args.offset), n.size);
            const end = Math.min(start + op.args.count, n.size);
            return { op: op.op, status: 0, res: { eof: end >= n.size, data: n.data.subarray(start, end) } };
          }
          case OP.WRITE: {
            if (n.type !== NF4.REG) return fail(n.type === NF4.DIR ? NFS4ERR.ISDIR : NFS4ERR.INVAL);
            const off = Number(op.args.offset);
            const end = off + op.args.data.length;
            if (end > n.size) setSize(n, end);
            // A view of the request record (zero copy) until here: the toy keeps its own copy.
            op.args.data.copy(n.data, off);
            touch(n);
            return { op: op.op, status: 0, res: { count: op.args.data.length, committed: STABLE_HOW.FILE_SYNC, verifier: WRITE_VERIFIER } };
          }
          case OP.COMMIT:
            return { op: op.op, status: 0, res: { verifier: WRITE_VERIFIER } };
          case OP.SEEK: {
            const off = Number(op.args.offset);
            if (off >= n.size) return fail(NFS4ERR.NXIO);
            return { op: op.op, status: 0, res: { eof: false, offset: op.args.what === 0 ? op.args.offset : BigInt(n.size) } };
          }
          case OP.OPEN_CONFIRM:
          case OP.OPEN_DOWNGRADE:
          case OP.CLOSE:
          case OP.LOCKU:
            return { op: op.op, status: 0, res: { stateid: stateid() } };
          case OP.LOCK:
            return { op: op.op, status: 0, res: { stateid: stateid() } };
          case OP.LOCKT:
            return fail(0);
        }
        if (op.op === OP.LOOKUPP) {
          if (n.type !== NF4.DIR) return fail(NFS4ERR.NOTDIR);
          if (n.id === root.id) return fail(NFS4ERR.NOENT);
          cur = nodes.get(n.parent);
          return fail(0);
        }
        if (op.op === OP.OPEN && op.args.claim.type === 4) {
          return { op: op.op, status: 0, res: { stateid: stateid(), cinfo: { atomic: true, before: n.change, after: n.change }, rflags: 4, attrSet: [], delegation: { type: OPEN_DELEGATE.NONE } } };
        }
        // Everything below names a child of the current directory.
        if (n.type !== NF4.DIR) return fail(n.type === NF4.LNK ? NFS4ERR.SYMLINK : NFS4ERR.NOTDIR);
        switch (op.op) {
          case OP.LOOKUP: {
            const c = child(n, op.args.name);
            if (!c) return fail(NFS4ERR.NOENT);
            cur = c;
            return fail(0);
          }
          case OP.READDIR: {
            const req = op.args.request;
            const kids = children(n).filter((c) => BigInt(c.id) + 2n > op.args.cookie).sort((a, b) => a.id - b.id);
            const entries: ReaddirEntry[] = [];
            let bytes = READDIR_FIXED_BYTES;
            let eof = true;
            for (const c of kids) {
              const e = { cookie: BigInt(c.id) + 2n, name: c.name, attrs: fattrToBuffer(req, attrs(c)) };
              bytes += readdirEntryBytes(e);
              if (bytes > op.args.maxcount) {
                eof = false;
                break;
              }
              entries.push(e);
            }
            if (entries.length === 0 && !eof) return fail(NFS4ERR.TOOSMALL);
            return { op: op.op, status: 0, res: { cookieverf: Buffer.alloc(8), entries, eof } };
          }
          case OP.CREATE: {
            if (child(n, op.args.name)) return fail(NFS4ERR.EXIST);
            const t = op.args.objtype;
            if (t.type !== NF4.DIR && t.type !== NF4.LNK) return fail(NFS4ERR.BADTYPE);
            let made: Node | undefined;
            const cinfo = dirChange(n, () => {
              made = add(n.id, op.args.name, t.type, Buffer.alloc(0), t.type === NF4.DIR ? 0o755 : 0o777, 'linkData' in t ? t.linkData : '');
            });
            const r = apply(made as Node, op.args.attrs);
            cur = made;
            return { op: op.op, status: 0, res: { cinfo, attrSet: r.set } };
          }
          case OP.OPEN: {
            const claim = op.args.claim;
            if (claim.type !== 0) return fail(NFS4ERR.NOTSUPP);
            let c = child(n, claim.name);
            let attrSet: number[] = [];
            let cinfo: ChangeInfo4 = { atomic: true, before: n.change, after: n.change };
            const how = op.args.create;
            if (how) {
              if (c && how.mode === CREATEMODE4.GUARDED) return fail(NFS4ERR.EXIST);
              if (!c) {
                cinfo = dirChange(n, () => {
                  c = add(n.id, claim.name, NF4.REG);
                });
                if (how.mode === CREATEMODE4.UNCHECKED || how.mode === CREATEMODE4.GUARDED || how.mode === CREATEMODE4.EXCLUSIVE4_1) {
                  attrSet = apply(c as unknown as Node, how.attrs).set;
                }
              } else if ((how.mode === CREATEMODE4.UNCHECKED || how.mode === CREATEMODE4.GUARDED) && how.attrs.vals.length > 0) {
                attrSet = apply(c, how.attrs).set;
              }
            }
            if (!c) return fail(NFS4ERR.NOENT);
            if (c.type === NF4.DIR) return fail(NFS4ERR.ISDIR);
            if (c.type === NF4.LNK) return fail(NFS4ERR.SYMLINK);
            cur = c;
            const delegation = args.minorversion > 0 && (op.args.shareAccess & 0xff00) !== 0 ? { type: OPEN_DELEGATE.NONE_EXT, why: WND4.NOT_WANTED } : { type: OPEN_DELEGATE.NONE };
            return { op: op.op, status: 0, res: { stateid: stateid(), cinfo, rflags: 4, attrSet, delegation } };
          }
          case OP.REMOVE: {
            const c = child(n, op.args.name);
            if (!c) return fail(NFS4ERR.NOENT);
            if (c.type === NF4.DIR && children(c).length > 0) return fail(NFS4ERR.NOTEMPTY);
            const cinfo = dirChange(n, () => nodes.delete(c.id));
            return { op: op.op, status: 0, res: { cinfo } };
          }
          case OP.RENAME: {
            const from = saved;
            if (!from) return fail(NFS4ERR.NOFILEHANDLE);
            const c = child(from, op.args.oldName);
            if (!c) return fail(NFS4ERR.NOENT);
            const existing = child(n, op.args.newName);
            if (existing && existing.id !== c.id) {
              if (existing.type === NF4.DIR && (c.type !== NF4.DIR || children(existing).length > 0)) return fail(existing.type === NF4.DIR && c.type === NF4.DIR ? NFS4ERR.EXIST : NFS4ERR.EXIST);
              nodes.delete(existing.id);
            }
            const source = dirChange(from, () => {});
            const target = dirChange(n, () => {
              c.parent = n.id;
              c.name = op.args.newName;
              touch(c);
            });
            return { op: op.op, status: 0, res: { source, target } };
          }
          case OP.LINK:
            return fail(NFS4ERR.NOTSUPP);
          default:
            return fail(NFS4ERR.NOTSUPP);
        }
      };
      return runCompound(args, exec);
    },
  };
}

/** One shared toy tree (tests that only read it). */
export const toyDispatcher: Nfs4Dispatcher = createToyDispatcher();
