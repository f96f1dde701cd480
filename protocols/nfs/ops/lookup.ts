/**
 * LOOKUP and LOOKUPP (RFC 8881 §18.13, §18.14) on Session.lookup / lookupParent. In the
 * pseudo-root a name is an export (as the session manager names shares: without case); LOOKUPP
 * from a share's root is the pseudo-root, and from the pseudo-root NOENT.
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { LookupArgs } from '../xdr4/filehandle.ts';
import { accessIn, fail, failWith, ok, principalIn, type OpContext } from '../server/context.ts';

export async function lookup(c: OpContext, a: LookupArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.LOOKUP, NFS4ERR.NOFILEHANDLE);
  try {
    if (cur.kind === 'pseudo') {
      const exp = c.srv.exports.byShareName(a.name);
      if (!exp) return fail(OP.LOOKUP, NFS4ERR.NOENT);
      // Entering the export: as the principal its client entry makes of the credential.
      const p = exp.clients ? await principalIn(c, exp) : c.principal;
      if (!c.srv.sessions.sharesFor(p, 'nfs').some((s) => s.toLowerCase() === exp.name.toLowerCase())) return fail(OP.LOOKUP, NFS4ERR.NOENT);
      if (accessIn(c, exp) === 'none') return fail(OP.LOOKUP, NFS4ERR.ACCESS);
      c.cur = c.srv.fh.forFile(exp, await c.srv.rootId(p === c.principal ? c.view : c.srv.baseView(p), exp.name));
      return ok(OP.LOOKUP, null);
    }
    const dir = await c.view.getattrById(cur.share, cur.id);
    if (dir.type === 'symlink') return fail(OP.LOOKUP, NFS4ERR.SYMLINK);
    if (dir.type !== 'dir') return fail(OP.LOOKUP, NFS4ERR.NOTDIR);
    if (a.name === '.' || a.name === '..') return fail(OP.LOOKUP, NFS4ERR.BADNAME);
    const attr = await c.view.lookup(cur.share, cur.id, a.name);
    c.cur = c.srv.fh.forFile(cur.exp, attr.id);
    c.known = { fh: c.cur, attr };
    return ok(OP.LOOKUP, null);
  } catch (e) {
    return failWith(OP.LOOKUP, e);
  }
}

export async function lookupp(c: OpContext): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.LOOKUPP, NFS4ERR.NOFILEHANDLE);
  if (cur.kind === 'pseudo') return fail(OP.LOOKUPP, NFS4ERR.NOENT);
  try {
    const attr = await c.view.getattrById(cur.share, cur.id);
    if (attr.type === 'symlink') return fail(OP.LOOKUPP, NFS4ERR.SYMLINK);
    if (attr.type !== 'dir') return fail(OP.LOOKUPP, NFS4ERR.NOTDIR);
    if (cur.id === (await c.srv.rootId(c.view, cur.share))) {
      c.cur = c.srv.fh.pseudo;
      return ok(OP.LOOKUPP, null);
    }
    const parent = await c.view.lookupParent(cur.share, cur.id);
    c.cur = c.srv.fh.forFile(cur.exp, parent.id);
    return ok(OP.LOOKUPP, null);
  } catch (e) {
    return failWith(OP.LOOKUPP, e);
  }
}
