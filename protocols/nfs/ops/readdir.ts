/**
 * READDIR (RFC 8881 §18.23) on Session.readdirById. Cookies are the core's readdir cookies (file
 * ids, which survive restarts and renames) offset by 2, because NFS reserves 0, 1 and 2 and ids
 * start low; so the cookie verifier can be constant (a cookie stays valid across restarts: the
 * core resumes after a deleted entry while it remembers the name, else BAD_COOKIE). Entries are
 * packed while they fit maxcount (the whole reply) and dircount (cookies and names, when non-zero);
 * a first entry that does not fit is TOOSMALL. Attributes come with the listing (no per-entry
 * stat); rdattr_error is per entry for the pseudo-root's shares.
 */
import { encodeFattr } from '../fattr4.ts';
import { XdrWriter } from '../xdr.ts';
import { FATTR4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import { READDIR_FIXED_BYTES, type ReaddirArgs } from '../xdr4/namespace.ts';
import { bitmapHas, type Bitmap4 } from '../xdr4/common.ts';
import { accessIn, fail, failWith, ok, principalIn, type OpContext } from '../server/context.ts';
import type { NfsExport } from '../server/exports.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Principal } from '../../../src/auth/authenticator.ts';
import { encodeFileFattr, fileValues, needsStatfs } from '../server/attrs.ts';
import type { FileAttr } from '../../../src/vfs/types.ts';
import { nfsstatOf } from '../errors.ts';
import type { AttrValues } from '../fattr4.ts';

const VERIFIER = Buffer.alloc(8);
const COOKIE_BASE = 2n;
/** Largest page buffer allocated up front (a reply past it continues in further chunks). */
const PAGE_BUFFER_MAX = 1024 * 1024;

/** Mean bytes of an entry4 in a reply (cookie, name, fattr4) and of its dircount share (cookie, name). */
interface EntrySize {
  bytes: number;
  dirBytes: number;
}

/**
 * The entry sizes of the last reply per requested attribute bitmap: the first listing of a READDIR
 * asks the core for about as many entries as its reply will hold. Guessing a fixed 256 bytes an
 * entry (Linux's readdirplus entries with a filehandle are ~150-200 bytes) listed too few, so
 * most 32 KiB replies took a second core call for their last ~40 entries (each core call opens,
 * confines and fstats the directory, finds its place in the names, and lists again). Clients ask
 * with one or two bitmaps; bounded anyway (cleared past LEARNED_MAX keys). A hint only: the reply
 * is packed as before, entry by entry, whatever was listed.
 */
const learnedSizes = new Map<string, EntrySize>();
const LEARNED_MAX = 64;

/**
 * Packs entries while they fit maxcount (the whole reply) and dircount (cookies and names): each
 * entry4 is encoded straight into one writer for the page (cookie, name, fattr4) and the page's
 * reply takes the packed bytes by reference, so an entry costs no Buffer of its own and is never
 * copied (a fattr4 Buffer per entry, copied again into the reply, was most of the NFS side of a
 * 10,000-entry READDIR). An entry that does not fit is left out of the packed range.
 */
class Packer {
  count = 0;
  private readonly w: XdrWriter;
  private bytes = READDIR_FIXED_BYTES;
  private dirBytes = 0;
  private end = 0;
  private readonly maxcount: number;
  private readonly dircount: number;
  private readonly req: Bitmap4;
  constructor(maxcount: number, dircount: number, req: Bitmap4) {
    this.maxcount = maxcount;
    this.dircount = dircount;
    this.req = req;
    // Room for the whole reply (bounded: maxcount is the client's); an entry past it goes to a new chunk.
    this.w = new XdrWriter(Math.min(Math.max(maxcount, 256), PAGE_BUFFER_MAX) + 512);
  }
  /**
   * How many more entries are likely to fit, from the size of those packed so far; before any, from
   * `learned` (the sizes of a recent reply with the same attributes), else `guess` bytes each.
   */
  likelyRoom(guess: number, learned: EntrySize | undefined): number {
    const n = this.count;
    let k: number;
    if (n > 0) {
      k = Math.floor((this.maxcount - this.bytes) / ((this.bytes - READDIR_FIXED_BYTES) / n));
      if (this.dircount > 0) k = Math.min(k, Math.floor((this.dircount - this.dirBytes) / (this.dirBytes / n)));
    } else if (learned !== undefined) {
      // No margin over it: 4% over (names differ in length) stat'ed 4.5% more entries than
      // replied in bench:nfs, ~1-3 ms more CPU a 10,000-entry pass, more than the second core
      // calls it saves where names are longer than the last reply's.
      k = Math.floor((this.maxcount - this.bytes) / learned.bytes);
      if (this.dircount > 0) k = Math.min(k, Math.floor(this.dircount / learned.dirBytes));
    } else k = Math.floor((this.maxcount - this.bytes) / guess);
    return k + 1;
  }
  /** The mean size of the entries packed (undefined before any). */
  entrySize(): EntrySize | undefined {
    const n = this.count;
    return n === 0 ? undefined : { bytes: (this.bytes - READDIR_FIXED_BYTES) / n, dirBytes: Math.max(1, this.dirBytes / n) };
  }
  /** false when the entry does not fit (the page ends before it). */
  add(cookie: bigint, name: string, values: AttrValues): boolean {
    const w = this.w;
    const start = w.length;
    w.u32(1).u64(cookie).string(name);
    const d = w.length - start - 4;
    encodeFattr(w, this.req, values);
    return this.fits(start, d);
  }
  /** add() for a file of an export, its attributes straight from the FileAttr (encodeFileFattr). */
  addFile(cookie: bigint, name: string, minor: number, exp: NfsExport, attr: FileAttr, fh: Buffer | undefined): boolean {
    const w = this.w;
    const start = w.length;
    w.u32(1).u64(cookie).string(name);
    const d = w.length - start - 4;
    encodeFileFattr(w, minor, exp, this.req, attr, fh);
    return this.fits(start, d);
  }
  private fits(start: number, d: number): boolean {
    const w = this.w;
    const n = w.length - start;
    if (this.bytes + n > this.maxcount) return false;
    if (this.dircount > 0 && this.count > 0 && this.dirBytes + d > this.dircount) return false;
    this.bytes += n;
    this.dirBytes += d;
    this.count++;
    this.end = w.length;
    return true;
  }
  result(eof: boolean): OpResult {
    return ok(OP.READDIR, { cookieverf: VERIFIER, entries: [], packed: this.w.slice(0, this.end), eof });
  }
}

/**
 * The exports the pseudo-root shows this call, by name: those its address may use, which the
 * principal of each (an export's client entry may squash otherwise) may see, with that view.
 */
async function visibleExports(c: OpContext): Promise<{ exp: NfsExport; view: Session }[]> {
  const seen = new Map<Principal, Set<string>>();
  const out: { exp: NfsExport; view: Session }[] = [];
  for (const exp of c.srv.exports.all()) {
    if (accessIn(c, exp) === 'none') continue;
    const p = exp.clients ? await principalIn(c, exp) : c.principal;
    let names = seen.get(p);
    if (!names) seen.set(p, (names = new Set(c.srv.sessions.sharesFor(p, 'nfs').map((n) => n.toLowerCase()))));
    if (names.has(exp.name.toLowerCase())) out.push({ exp, view: p === c.principal ? c.view : c.srv.baseView(p) });
  }
  return out.sort((x, y) => (x.exp.name < y.exp.name ? -1 : x.exp.name > y.exp.name ? 1 : 0));
}

export async function readdir(c: OpContext, a: ReaddirArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.READDIR, NFS4ERR.NOFILEHANDLE);
  if (a.cookie === 1n || a.cookie === 2n) return fail(OP.READDIR, NFS4ERR.BAD_COOKIE);
  const req = a.request;
  const packer = new Packer(a.maxcount, a.dircount, req);
  try {
    if (cur.kind === 'pseudo') {
      const shares = await visibleExports(c);
      let eof = true;
      for (let i = Number(a.cookie === 0n ? 0n : a.cookie - COOKIE_BASE); i < shares.length; i++) {
        const { exp, view } = shares[i]!;
        let v: AttrValues;
        try {
          const id = await c.srv.rootId(view, exp.name);
          const attr = await view.getattrById(exp.name, id);
          const fs = needsStatfs(req) ? await c.srv.statfs(view, exp.name).catch(() => undefined) : undefined;
          v = fileValues(c.minor, exp, attr, c.srv.fh.forFile(exp, id).bytes, fs);
          if (c.srv.idmap.domain !== undefined) await c.srv.idmap.name(v, attr.uid, attr.gid);
          // The share root is mounted on the pseudo-root's entry: Linux shows this number in ls.
          v.mountedOnFileid = attr.id;
        } catch (e) {
          if (!bitmapHas(req, FATTR4.RDATTR_ERROR)) throw e;
          v = { rdattrError: nfsstatOf(e) };
        }
        if (!packer.add(BigInt(i + 1) + COOKIE_BASE, exp.name, v)) {
          eof = false;
          break;
        }
      }
      if (packer.count === 0 && !eof) return fail(OP.READDIR, NFS4ERR.TOOSMALL);
      return packer.result(eof);
    }
    const dir = await c.view.getattrById(cur.share, cur.id);
    if (dir.type !== 'dir') return fail(OP.READDIR, NFS4ERR.NOTDIR);
    const fs = needsStatfs(req) ? await c.srv.statfs(c.view, cur.share).catch(() => undefined) : undefined;
    const wantFh = bitmapHas(req, FATTR4.FILEHANDLE);
    let cookie = a.cookie === 0n ? 0n : a.cookie - COOKIE_BASE;
    let eof = false;
    let full = false;
    const key = req.join(',');
    const learned = learnedSizes.get(key);
    while (!full && !eof) {
      // Every listed entry costs a stat and its id row, used or not, and every core call its own
      // fixed cost: list about as many as the reply still has room for, sized on the entries
      // packed so far, or before any on a recent reply's (learnedSizes). (Listing maxcount / 96
      // entries stat'ed twice as many as a Linux readdirplus reply holds.)
      const limit = Math.max(1, Math.min(1000, packer.likelyRoom(256, learned)));
      const page = await c.view.readdirById(cur.share, cur.id, { cookie, limit });
      // Written straight from each FileAttr unless statfs figures or idmapped owners are asked.
      const direct = fs === undefined && c.srv.idmap.domain === undefined;
      for (const e of page.entries) {
        const fh = wantFh ? c.srv.fh.forFile(cur.exp, e.attr.id).bytes : undefined;
        let added: boolean;
        if (direct) added = packer.addFile(e.cookie + COOKIE_BASE, e.name, c.minor, cur.exp, e.attr, fh);
        else {
          const v = fileValues(c.minor, cur.exp, e.attr, fh, fs);
          if (c.srv.idmap.domain !== undefined) await c.srv.idmap.name(v, e.attr.uid, e.attr.gid);
          added = packer.add(e.cookie + COOKIE_BASE, e.name, v);
        }
        if (!added) {
          full = true;
          break;
        }
        cookie = e.cookie;
      }
      if (!full) eof = page.eof || page.entries.length === 0;
    }
    if (packer.count === 0 && !eof) return fail(OP.READDIR, NFS4ERR.TOOSMALL);
    const size = packer.entrySize();
    if (size !== undefined) {
      if (learnedSizes.size >= LEARNED_MAX && !learnedSizes.has(key)) learnedSizes.clear();
      learnedSizes.set(key, size);
    }
    return packer.result(eof);
  } catch (e) {
    return failWith(OP.READDIR, e);
  }
}
