/**
 * PUT (RFC 7231 §4.3.4, RFC 4918 §9.7): streaming, never buffered whole in memory.
 *
 * Design (an aborted upload must leave the previous content intact and no partial file visible
 * under the target name):
 * 1. Checks first (before a byte of the body is read — `Expect: 100-continue` is answered only
 *    then): the target is not a collection (405), its parent exists (409), preconditions (412) and
 *    WebDAV locks (423).
 * 2. The body streams, in writes of up to 1 MiB as it arrives (backpressure: the socket is not read
 *    while a write is pending), into the VFS's whole-content writer (Session.replaceContent), which
 *    writes through the backend's atomic writer: a reserved-prefix temp file renamed on commit on
 *    local disks, a PUT or multipart upload on S3. Nothing shows under any name a client can see
 *    until the upload completes, and the backend's startup recovery removes what a crash leaves.
 * 3. Complete body: commit. A new target is created; an existing target keeps its identity — file
 *    id, dead properties, WebDAV locks, Windows attributes — because only its content changes. The
 *    bytes are written once (no copy from a temp file).
 * 4. Client gone mid-body (or any failure): abort; the target was never touched.
 */
import type { DavContext } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { checkPreconditions } from '../conditional.ts';
import { etagOf } from '../properties.ts';
import type { ContentWriter } from '../../../src/vfs/vfs.ts';
import { ALLOW } from './options.ts';

const WRITE_BATCH = 1024 * 1024;

function putError(e: unknown): unknown {
  if (e instanceof HttpError || !(e instanceof Error)) return e;
  const status = statusFor(e, 'put');
  return status === 405 ? new HttpError(405, 'cannot PUT to a collection', { headers: { Allow: ALLOW } }) : new HttpError(status, e.message);
}

export async function put(ctx: DavContext): Promise<void> {
  try {
    await putInner(ctx);
  } catch (e) {
    throw putError(e);
  }
}

async function putInner(ctx: DavContext): Promise<void> {
  if (ctx.header('content-range') !== undefined) throw new HttpError(400, 'Content-Range is not allowed on PUT (RFC 7231 §4.3.4)');
  if (ctx.path === '/') throw new HttpError(405, 'the share root is a collection', { headers: { Allow: ALLOW } });
  const existing = await ctx.stat();
  if (existing?.type === 'dir') throw new HttpError(405, 'cannot PUT to a collection', { headers: { Allow: ALLOW } });
  if (!existing) await ctx.requireParent(ctx.path);
  if (checkPreconditions(ctx, existing) !== undefined) throw new HttpError(412, 'precondition failed');
  await ctx.assertUnlocked(ctx.path, { self: existing !== undefined, parent: existing === undefined });

  const declared = ctx.req.headers['content-length'];
  const sizeHint = declared !== undefined && /^\d{1,16}$/.test(declared) ? Number(declared) : undefined;
  const w = await ctx.session.replaceContent(ctx.share, ctx.path, sizeHint !== undefined ? { owner: 'put', sizeHint } : { owner: 'put' });
  try {
    ctx.continue();
    await receive(ctx, w);
    const attr = await w.commit();
    ctx.send(w.created ? 201 : 204, { ETag: etagOf(attr) });
  } catch (e) {
    await w.abort();
    throw e;
  }
}

/** Streams the request body into the writer; throws when the client goes away before the end. */
async function receive(ctx: DavContext, w: ContentWriter): Promise<void> {
  let total = 0;
  let parts: Buffer[] = [];
  let pending = 0;
  const flush = async (): Promise<void> => {
    if (pending === 0) return;
    // Socket chunks are never reused by Node, and concat makes a fresh buffer: safe to hand over.
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending);
    parts = [];
    pending = 0;
    await w.write(buf);
    total += buf.length;
  };
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    parts.push(chunk);
    pending += chunk.length;
    if (pending >= WRITE_BATCH) await flush();
  }
  if (!ctx.req.complete) throw new HttpError(499, 'client went away during PUT');
  await flush();
  ctx.bodyConsumed = true;
  const declared = ctx.req.headers['content-length'];
  if (declared !== undefined && Number(declared) !== total) throw new HttpError(400, 'body shorter than Content-Length');
}
