/**
 * PUT (RFC 7231 §4.3.4, RFC 4918 §9.7): streaming, never buffered whole in memory.
 *
 * Design (an aborted upload must leave the previous content intact and no partial file visible
 * under the target name):
 * 1. Checks first (before a byte of the body is read — `Expect: 100-continue` is answered only
 *    then): the target is not a collection (405), its parent exists (409), preconditions (412) and
 *    WebDAV locks (423).
 * 2. The body is written through a VFS handle to a new sibling `.~portico-put-<uuid>`, in writes of
 *    up to 1 MiB as it arrives (backpressure: the socket is not read while a write is pending).
 *    WebDAV never shows or serves these names (PROPFIND, GET, listings, and any URL naming one
 *    answers 404); other protocols may see one while an upload runs.
 * 3. Complete body: a new target is created by renaming the temp file onto it (atomic, no copy).
 *    An existing target keeps its identity — file id, dead properties, WebDAV locks, Windows
 *    attributes, open handles of other protocols — so its content is replaced in place: it is
 *    opened with truncate and the temp file's bytes are copied in. A rename would have given the
 *    name the temp file's id and dropped the target's locks and properties with its old id.
 * 4. Client gone mid-body (or any failure): the temp file is deleted; the target was never touched.
 * Zero-length bodies (Finder, WebClient and davfs2 create empty files first) skip the temp file.
 *
 * Residual risk, documented: a server crash leaves `.~portico-put-*` files behind, and a failure
 * during step 3's copy (disk full) can leave an existing target partially rewritten.
 */
import { randomUUID } from 'node:crypto';
import { isVfsError } from '../../../src/vfs/errors.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { PUT_TEMP_PREFIX, type DavContext } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { checkPreconditions } from '../conditional.ts';
import { etagOf } from '../properties.ts';
import { joinChild, parentOf } from '../paths.ts';
import { ALLOW } from './options.ts';

const RW = { read: true, write: true, delete: false };
const READ = { read: true, write: false, delete: false };
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

  if (ctx.req.headers['content-length'] === '0') {
    const h = await ctx.session.open(ctx.share, ctx.path, { access: RW, disposition: existing ? 'truncate' : 'openOrCreate', expect: 'file', owner: 'put' });
    await ctx.session.close(h);
    ctx.bodyConsumed = true;
    return done(ctx, existing === undefined);
  }

  const temp = joinChild(parentOf(ctx.path), PUT_TEMP_PREFIX + randomUUID());
  let h: Handle | undefined = await ctx.session.open(ctx.share, temp, { access: RW, disposition: 'create', expect: 'file', owner: 'put' });
  let tempExists = true;
  try {
    ctx.continue();
    await receive(ctx, h);
    const closing = h;
    h = undefined;
    await ctx.session.close(closing);
    let created = false;
    if (!existing) {
      try {
        await ctx.session.rename(ctx.share, temp, ctx.path, { replace: false });
        tempExists = false;
        created = true;
      } catch (e) {
        // Someone created the target meanwhile: replace its content like any existing file.
        if (!isVfsError(e, 'EEXIST')) throw e;
      }
    }
    if (tempExists) await copyInto(ctx, temp, ctx.path);
    return await done(ctx, created);
  } finally {
    if (h) await ctx.session.close(h).catch(() => undefined);
    if (tempExists) {
      await ctx.session.unlink(ctx.share, temp).catch((err: unknown) => ctx.log.warn({ err, temp }, 'webdav: could not remove PUT temp file'));
    }
  }
}

async function done(ctx: DavContext, created: boolean): Promise<void> {
  const attr = await ctx.session.getattr(ctx.share, ctx.path);
  ctx.send(created ? 201 : 204, { ETag: etagOf(attr) });
}

/** Streams the request body into `h`; throws when the client goes away before the end. */
async function receive(ctx: DavContext, h: Handle): Promise<void> {
  let off = 0;
  let parts: Buffer[] = [];
  let pending = 0;
  const flush = async (): Promise<void> => {
    if (pending === 0) return;
    const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending);
    parts = [];
    pending = 0;
    await ctx.session.write(h, off, buf);
    off += buf.length;
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
  if (declared !== undefined && Number(declared) !== off) throw new HttpError(400, 'body shorter than Content-Length');
}

/** Replaces the content of the existing `target` with that of `temp`, keeping the target's identity. */
async function copyInto(ctx: DavContext, temp: string, target: string): Promise<void> {
  const src = await ctx.session.open(ctx.share, temp, { access: READ, owner: 'put-src', expect: 'file' });
  let dst: Handle | undefined;
  try {
    dst = await ctx.session.open(ctx.share, target, { access: RW, disposition: 'truncate', expect: 'file', owner: 'put' });
    for (let off = 0; ; ) {
      const buf = await ctx.session.read(src, off, WRITE_BATCH);
      if (buf.length === 0) break;
      await ctx.session.write(dst, off, buf);
      off += buf.length;
    }
  } finally {
    if (dst) await ctx.session.close(dst);
    await ctx.session.close(src).catch(() => undefined);
  }
}
