/**
 * READDIR (RFC 8881 §18.23) on Session.readdirById. Cookies are the core's readdir cookies (file
 * ids, which survive restarts and renames) offset by 2, because NFS reserves 0, 1 and 2 and ids
 * start low; so the cookie verifier can be constant (a cookie stays valid across restarts: the
 * core resumes after a deleted entry while it remembers the name, else BAD_COOKIE). Entries are
 * packed while they fit maxcount (the whole reply) and dircount (cookies and names, when non-zero);
 * a first entry that does not fit is TOOSMALL. Attributes come with the listing (no per-entry
 * stat); rdattr_error is per entry for the pseudo-root's shares.
 */
import { fattrToBuffer } from '../fattr4.ts';
import { FATTR4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import { READDIR_FIXED_BYTES, readdirEntryBytes, type ReaddirArgs, type ReaddirEntry } from '../xdr4/namespace.ts';
import { bitmapHas, type Bitmap4 } from '../xdr4/common.ts';
import { accessIn, fail, failWith, ok, principalIn, type OpContext } from '../server/context.ts';
import type { NfsExport } from '../server/exports.ts';
import type { Session } from '../../../src/session/session.ts';
import type { Principal } from '../../../src/auth/authenticator.ts';
import { fileValues, needsStatfs, pseudoValues } from '../server/attrs.ts';
import { nfsstatOf } from '../errors.ts';
import type { AttrValues } from '../fattr4.ts';

const VERIFIER = Buffer.alloc(8);
const COOKIE_BASE = 2n;

class Packer {
  readonly entries: ReaddirEntry[] = [];
  private bytes = READDIR_FIXED_BYTES;
  private dirBytes = 0;
  private readonly maxcount: number;
  private readonly dircount: number;
  constructor(maxcount: number, dircount: number) {
    this.maxcount = maxcount;
    this.dircount = dircount;
  }
  /** How many more entries are likely to fit, from the size of those packed so far (`guess` bytes each before any). */
  likelyRoom(guess: number): number {
    const n = this.entries.length;
    const per = n > 0 ? (this.bytes - READDIR_FIXED_BYTES) / n : guess;
    let k = Math.floor((this.maxcount - this.bytes) / per);
    if (this.dircount > 0 && n > 0) k = Math.min(k, Math.floor((this.dircount - this.dirBytes) / (this.dirBytes / n)));
    return k + 1;
  }
  /** false when the entry does not fit (the page ends before it). */
  add(e: ReaddirEntry): boolean {
    const n = readdirEntryBytes(e);
    const d = 8 + 4 + ((Buffer.byteLength(e.name) + 3) & ~3);
    if (this.bytes + n > this.maxcount) return false;
    if (this.dircount > 0 && this.entries.length > 0 && this.dirBytes + d > this.dircount) return false;
    this.bytes += n;
    this.dirBytes += d;
    this.entries.push(e);
    return true;
  }
}

function entryAttrs(req: Bitmap4, v: AttrValues): Buffer {
  return fattrToBuffer(req, v);
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
  const packer = new Packer(a.maxcount, a.dircount);
  const req = a.request;
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
        if (!packer.add({ cookie: BigInt(i + 1) + COOKIE_BASE, name: exp.name, attrs: entryAttrs(req, v) })) {
          eof = false;
          break;
        }
      }
      if (packer.entries.length === 0 && !eof) return fail(OP.READDIR, NFS4ERR.TOOSMALL);
      return ok(OP.READDIR, { cookieverf: VERIFIER, entries: packer.entries, eof });
    }
    const dir = await c.view.getattrById(cur.share, cur.id);
    if (dir.type !== 'dir') return fail(OP.READDIR, NFS4ERR.NOTDIR);
    const fs = needsStatfs(req) ? await c.srv.statfs(c.view, cur.share).catch(() => undefined) : undefined;
    const wantFh = bitmapHas(req, FATTR4.FILEHANDLE);
    let cookie = a.cookie === 0n ? 0n : a.cookie - COOKIE_BASE;
    let eof = false;
    let full = false;
    while (!full && !eof) {
      // Every listed entry costs a stat and its id row, used or not: list about as many as the reply
      // still has room for, sized on the entries packed so far (listing maxcount / 96 entries
      // stat'ed twice as many as a Linux readdirplus reply holds).
      const limit = Math.max(1, Math.min(1000, packer.likelyRoom(256)));
      const page = await c.view.readdirById(cur.share, cur.id, { cookie, limit });
      for (const e of page.entries) {
        const v = fileValues(c.minor, cur.exp, e.attr, wantFh ? c.srv.fh.forFile(cur.exp, e.attr.id).bytes : undefined, fs);
        if (c.srv.idmap.domain !== undefined) await c.srv.idmap.name(v, e.attr.uid, e.attr.gid);
        if (!packer.add({ cookie: e.cookie + COOKIE_BASE, name: e.name, attrs: entryAttrs(req, v) })) {
          full = true;
          break;
        }
        cookie = e.cookie;
      }
      if (!full) eof = page.eof || page.entries.length === 0;
    }
    if (packer.entries.length === 0 && !eof) return fail(OP.READDIR, NFS4ERR.TOOSMALL);
    return ok(OP.READDIR, { cookieverf: VERIFIER, entries: packer.entries, eof });
  } catch (e) {
    return failWith(OP.READDIR, e);
  }
}
