/**
 * DELETE (RFC 4918 §9.6): recursive for collections. Members that cannot be removed (locked,
 * share-mode conflicts, permissions) are reported in a 207 multistatus and their ancestors are
 * kept; the request URI itself is not listed (its failure follows from its members', §9.6.1).
 */
import type { DavContext } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { checkPreconditions, hasPreconditions } from '../conditional.ts';
import { MULTISTATUS_CLOSE, MULTISTATUS_OPEN, statusResponse } from '../properties.ts';
import { hrefOf } from '../paths.ts';
import type { TreeError } from '../../../src/vfs/vfs.ts';

export async function del(ctx: DavContext): Promise<void> {
  const depth = ctx.header('depth');
  if (depth !== undefined && depth.trim().toLowerCase() !== 'infinity') {
    // RFC 4918 §9.6.1: DELETE on a collection acts as Depth: infinity; anything else is refused.
    const attr = await ctx.stat();
    if (attr?.type === 'dir' || !/^(0|1)$/.test(depth.trim())) throw new HttpError(400, 'DELETE takes Depth: infinity only');
  }
  if (ctx.path === '/') throw new HttpError(403, 'the share root cannot be deleted');
  if (hasPreconditions(ctx) && checkPreconditions(ctx, await ctx.session.getattr(ctx.share, ctx.path)) !== undefined) {
    throw new HttpError(412, 'precondition failed');
  }
  let errors: TreeError[];
  try {
    errors = await ctx.session.removeTree(ctx.share, ctx.path);
  } catch (e) {
    throw new HttpError(statusFor(e, 'delete'), (e as Error).message);
  }
  if (errors.length === 0) return ctx.send(204);
  await reportTreeErrors(ctx, errors, ctx.path);
}

/** One error on the request URI answers with its status; member errors answer 207. */
export async function reportTreeErrors(ctx: DavContext, errors: TreeError[], requestPath: string): Promise<void> {
  const members = errors.filter((e) => e.path !== requestPath);
  if (members.length === 0) {
    const e = errors[0]!.error;
    if (e.code === 'ELOCKED') throw e;
    throw new HttpError(statusFor(e, 'delete'), e.message);
  }
  let body = MULTISTATUS_OPEN;
  for (const e of members) {
    const status = statusFor(e.error, 'delete');
    body += statusResponse(hrefOf(ctx.shareSpelling, e.path, false), status, status === 423 ? 'lock-token-submitted' : undefined);
  }
  ctx.send(207, { 'Content-Type': 'application/xml; charset=utf-8' }, body + MULTISTATUS_CLOSE);
}
