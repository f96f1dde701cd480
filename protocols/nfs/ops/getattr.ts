/**
 * GETATTR (RFC 8881 §18.7): the requested attributes that Portico supports, from the core's
 * FileAttr (Session.getattrById) and, only when asked, the share's statfs. A file's attributes
 * without statfs figures or idmapped owners are written straight from the FileAttr
 * (encodeFileFattr); the rest through the values object (fileValues, encodeFattr).
 */
import type { XdrWriter } from '../xdr.ts';
import { encodeFattr, type AttrValues } from '../fattr4.ts';
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { GetattrArgs } from '../xdr4/attributes.ts';
import type { Bitmap4 } from '../xdr4/common.ts';
import { fail, failWith, ok, type OpContext } from '../server/context.ts';
import { encodeFileFattr, fileValues, needsStatfs, pseudoValues } from '../server/attrs.ts';
import type { Fh } from '../server/filehandle.ts';

/** The attribute values of a handle's object (statfs values only when `req` asks for them). */
export async function valuesOf(c: OpContext, fh: Fh, req: Bitmap4): Promise<AttrValues> {
  if (fh.kind === 'pseudo') return pseudoValues(c.minor, c.srv.exports.pseudoChange, fh.bytes, c.srv.exports);
  // Just read by LOOKUP in this COMPOUND (same principal, same path, same right): not asked again.
  const a = c.known?.fh === fh ? c.known.attr : await c.view.getattrById(fh.share, fh.id);
  const fs = needsStatfs(req) ? await c.srv.statfs(c.view, fh.share).catch(() => undefined) : undefined;
  const v = fileValues(c.minor, fh.exp, a, fh.bytes, fs);
  if (c.srv.idmap.domain !== undefined) await c.srv.idmap.name(v, a.uid, a.gid);
  return v;
}

export async function getattr(c: OpContext, a: GetattrArgs): Promise<OpResult> {
  const cur = c.cur;
  if (!cur) return fail(OP.GETATTR, NFS4ERR.NOFILEHANDLE);
  try {
    const req = a.request;
    if (cur.kind === 'file' && c.srv.idmap.domain === undefined && !needsStatfs(req)) {
      // The usual GETATTR (a client revalidating): encoded straight from the FileAttr.
      const attr = c.known?.fh === cur ? c.known.attr : await c.view.getattrById(cur.share, cur.id);
      const minor = c.minor;
      return ok(OP.GETATTR, { writeAttrs: (w: XdrWriter) => encodeFileFattr(w, minor, cur.exp, req, attr, cur.bytes) });
    }
    const v = await valuesOf(c, cur, req);
    return ok(OP.GETATTR, { writeAttrs: (w: XdrWriter) => void encodeFattr(w, a.request, v) });
  } catch (e) {
    return failWith(OP.GETATTR, e);
  }
}
