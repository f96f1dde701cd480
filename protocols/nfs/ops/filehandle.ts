/**
 * PUTROOTFH, PUTPUBFH, PUTFH, GETFH, SAVEFH, RESTOREFH (RFC 8881 §18.19–18.22, §18.8, §18.27,
 * §18.28). The root and public handles are the pseudo-root listing the exports.
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { PutfhArgs } from '../xdr4/filehandle.ts';
import { accessIn, fail, ok, type OpContext } from '../server/context.ts';

export function putrootfh(c: OpContext, op: number = OP.PUTROOTFH): OpResult {
  c.cur = c.srv.fh.pseudo;
  return ok(op, null);
}

export function putfh(c: OpContext, a: PutfhArgs): OpResult {
  const d = c.srv.fh.decode(a.fh);
  if ('status' in d) return fail(OP.PUTFH, d.status);
  // An export this client's address may not use (shares[].nfs.clients): no handle of it works.
  if (d.kind === 'file' && d.exp.clients && accessIn(c, d.exp) === 'none') return fail(OP.PUTFH, NFS4ERR.ACCESS);
  c.cur = d;
  return ok(OP.PUTFH, null);
}

export function getfh(c: OpContext): OpResult {
  if (!c.cur) return fail(OP.GETFH, NFS4ERR.NOFILEHANDLE);
  return ok(OP.GETFH, { fh: c.cur.bytes });
}

export function savefh(c: OpContext): OpResult {
  if (!c.cur) return fail(OP.SAVEFH, NFS4ERR.NOFILEHANDLE);
  c.saved = c.cur;
  return ok(OP.SAVEFH, null);
}

export function restorefh(c: OpContext): OpResult {
  if (!c.saved) return fail(OP.RESTOREFH, NFS4ERR.RESTOREFH);
  c.cur = c.saved;
  return ok(OP.RESTOREFH, null);
}
