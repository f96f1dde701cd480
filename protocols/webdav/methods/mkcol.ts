/**
 * MKCOL (RFC 4918 §9.3): 201 Created; 405 when the URL is mapped; 409 when the parent is missing;
 * 415 for any body (extended MKCOL is not supported).
 */
import type { DavContext } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { ALLOW } from './options.ts';

export async function mkcol(ctx: DavContext): Promise<void> {
  if (ctx.hasBody()) {
    const body = await ctx.body();
    if (body.length > 0) throw new HttpError(415, 'MKCOL with a body is not supported');
  }
  if (ctx.path === '/') throw new HttpError(405, 'the share root exists', { headers: { Allow: ALLOW } });
  try {
    await ctx.session.mkdir(ctx.share, ctx.path);
  } catch (e) {
    const status = statusFor(e, 'mkcol');
    if (status === 423) throw e;
    throw new HttpError(status, (e as Error).message, status === 405 ? { headers: { Allow: ALLOW } } : {});
  }
  ctx.send(201, { Location: ctx.href(ctx.path, true) });
}
