/**
 * PUT (RFC 7231 §4.3.4, RFC 4918 §9.7): streaming, never buffered whole in memory.
 *
 * Design (an aborted upload must leave the previous content intact and no partial file visible
 * under the target name):
 * 1. Checks first (before a byte of the body is read — `Expect: 100-continue` is answered only
 *    then): the target is not a collection (405), its parent exists (409), preconditions (412) and
 *    WebDAV locks (423). Without any lock in the gateway these come from the writer's own start
 *    (one lookup of the target instead of three: stat, parent stat, then the writer's resolve).
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

/**
 * A young-generation GC every GC_HINT_BYTES of PUT bodies (all uploads together), when the process
 * runs with --expose-gc (bin/portico.js gives `serve` that flag). Body chunks are 64 KiB buffers
 * outside the JS heap that die young; V8 sees them only through its external-memory limit and
 * answers with full mark-compact collections, which took half of a 1 GiB PUT's CPU and let ~80 MB
 * of dead buffers pile up (RSS). A minor GC (well under a millisecond: almost nothing young is
 * alive) frees them at once. Without the flag (tests, embedding) nothing changes.
 */
const GC_HINT_BYTES = 16 * 1024 * 1024;
const minorGc = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
let bytesSinceGc = 0;

function countForGc(n: number): void {
  if (minorGc === undefined) return;
  bytesSinceGc += n;
  if (bytesSinceGc < GC_HINT_BYTES) return;
  bytesSinceGc = 0;
  minorGc({ type: 'minor' });
}

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
  // With WebDAV locks anywhere, the early 423 must name the locked resource (the file, or the
  // collection a new file would join), which needs to know first whether the target exists.
  if (ctx.session.anyLocks) await checkFirst(ctx);

  const declared = ctx.req.headers['content-length'];
  const sizeHint = declared !== undefined && /^\d{1,16}$/.test(declared) ? Number(declared) : undefined;
  // One lookup: the writer's start resolves the target. A collection there fails with EISDIR (405),
  // a missing parent with ENOENT/ENOTDIR (409); what it replaces comes back for the preconditions.
  const w = await ctx.session.replaceContent(ctx.share, ctx.path, sizeHint !== undefined ? { owner: 'put', sizeHint } : { owner: 'put' });
  try {
    if (checkPreconditions(ctx, w.existing) !== undefined) throw new HttpError(412, 'precondition failed');
    ctx.continue();
    await receive(ctx, w);
    const attr = await w.commit();
    ctx.send(w.created ? 201 : 204, { ETag: etagOf(attr) });
  } catch (e) {
    await w.abort();
    throw e;
  }
}

/** The checks in RFC order before any writer exists: 405, 409, 412, 423 (only when locks exist). */
async function checkFirst(ctx: DavContext): Promise<void> {
  const existing = await ctx.stat();
  if (existing?.type === 'dir') throw new HttpError(405, 'cannot PUT to a collection', { headers: { Allow: ALLOW } });
  if (!existing) await ctx.requireParent(ctx.path);
  if (checkPreconditions(ctx, existing) !== undefined) throw new HttpError(412, 'precondition failed');
  await ctx.assertUnlocked(ctx.path, { self: existing !== undefined, parent: existing === undefined });
}

/**
 * Streams the request body into the writer; throws when the client goes away before the end.
 * Socket chunks (16-64 KiB) are collected up to WRITE_BATCH and handed over as one vectored write:
 * no copy into a fresh 1 MiB buffer per batch (that garbage made a 1 GiB PUT spend its CPU in the
 * GC and pushed RSS up), and one system call per batch instead of one per chunk. Node never reuses
 * a socket chunk, so the writer may keep them.
 */
async function receive(ctx: DavContext, w: ContentWriter): Promise<void> {
  let total = 0;
  let parts: Buffer[] = [];
  let pending = 0;
  // One batch is written while the next one is read from the socket (at most two batches held):
  // awaiting each write before reading on left the socket idle during every disk write (a staged
  // PUT) or part hand-over. Writes stay in order: a batch starts once the previous one finished.
  let writing: Promise<void> | undefined;
  const flush = async (): Promise<void> => {
    if (pending === 0) return;
    const batch = parts;
    const n = pending;
    total += n;
    parts = [];
    pending = 0;
    await writing;
    writing = (batch.length === 1 ? w.write(batch[0]!) : w.writev(batch)).then(() => countForGc(n));
    // A failure is seen at the next flush or at the end; until then it must not count as unhandled.
    writing.catch(() => undefined);
  };
  try {
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      parts.push(chunk);
      pending += chunk.length;
      if (pending >= WRITE_BATCH) await flush();
    }
  } finally {
    // The writer is aborted by the caller on a failure: never while a write of ours still runs.
    await writing?.catch(() => undefined);
  }
  if (!ctx.req.complete) throw new HttpError(499, 'client went away during PUT');
  await writing;
  await flush();
  await writing;
  ctx.bodyConsumed = true;
  const declared = ctx.req.headers['content-length'];
  if (declared !== undefined && Number(declared) !== total) throw new HttpError(400, 'body shorter than Content-Length');
}
