/**
 * COPY and MOVE (RFC 4918 §9.8, §9.9).
 *
 * - Destination: an absolute URL of this server (same authority as Host) or an absolute path;
 *   another server -> 502 (§9.8.5). Another share of this server works: shares are separate volumes
 *   (possibly on separate backends), so the data is streamed from one backend into the other by the
 *   VFS (Vfs.copy with toVolume), rights are checked on both shares, and a MOVE is a copy followed by
 *   removal of the source — not atomic: a failure while removing answers 207 and leaves both
 *   copies, never neither. Ids (and so WebDAV locks) do not travel to another share.
 * - Overwrite: T (default) replaces an existing destination (COPY: removed first, 204; MOVE: atomic
 *   rename for file onto file, else the destination tree is removed first); F -> 412.
 * - Depth: COPY 0 or infinity (default); MOVE infinity only. Anything else -> 400.
 * - Partial failures answer 207 with the members that failed.
 * - MOVE does not move the source's WebDAV locks (§7.7): locks rooted at the moved resource are
 *   released after the move (the mover submitted their tokens, or the VFS would have refused).
 *   Depth-infinity locks on the destination's ancestors cover the moved resource from then on.
 */
import { VfsError, isVfsError } from '../../../src/vfs/errors.ts';
import { normalizePath } from '../../../src/vfs/path.ts';
import type { FileAttr } from '../../../src/vfs/types.ts';
import type { TreeError } from '../../../src/vfs/vfs.ts';
import type { DavContext } from '../context.ts';
import { HttpError, statusFor } from '../errors.ts';
import { checkPreconditions, hasPreconditions } from '../conditional.ts';
import { MULTISTATUS_CLOSE, MULTISTATUS_OPEN, statusResponse } from '../properties.ts';
import { baseNameOf, hrefOf, isWithin, parseDestination } from '../paths.ts';

interface Plan {
  src: FileAttr;
  /** The destination's share (volume name) and its spelling in the Destination URL. */
  destShare: string;
  destSpelling: string;
  dest: string;
  destAttr: FileAttr | undefined;
  overwrite: boolean;
  depth: 0 | 'infinity';
}

async function plan(ctx: DavContext, move: boolean): Promise<Plan> {
  const header = ctx.header('destination');
  if (header === undefined) throw new HttpError(400, 'Destination header required');
  const t = parseDestination(header, ctx.header('host'));
  if (t === 'foreign') throw new HttpError(502, 'Destination is on another server');
  if (t.share === '') throw new HttpError(403, 'Destination is the server root');
  let volume: string;
  try {
    volume = ctx.sessions.acl(t.share, 'webdav').volume;
  } catch {
    throw new HttpError(409, 'Destination share does not exist');
  }
  const across = volume !== ctx.share;
  let dest: string;
  try {
    dest = normalizePath(t.path);
  } catch (e) {
    throw new HttpError(e instanceof VfsError && e.code === 'ENAMETOOLONG' ? 414 : 400, (e as Error).message);
  }
  const name = baseNameOf(dest);
  if (name.startsWith('._') && ctx.settings.refuseAppleDouble.has(volume.toLowerCase())) throw new HttpError(403, 'AppleDouble files are refused on this share');

  const ow = ctx.header('overwrite')?.trim();
  if (ow !== undefined && ow !== 'T' && ow !== 'F') throw new HttpError(400, 'Overwrite must be T or F');
  const d = ctx.header('depth')?.trim().toLowerCase();
  let depth: 0 | 'infinity' = 'infinity';
  if (d !== undefined && d !== 'infinity') {
    if (move || d !== '0') throw new HttpError(400, move ? 'MOVE takes Depth: infinity only' : 'COPY takes Depth: 0 or infinity');
    depth = 0;
  }
  const src = await ctx.session.getattr(ctx.share, ctx.path);
  if (hasPreconditions(ctx) && checkPreconditions(ctx, src) !== undefined) throw new HttpError(412, 'precondition failed');
  if (ctx.path === '/' && move) throw new HttpError(403, 'the share root cannot be moved');
  if (!across && dest === ctx.path) throw new HttpError(403, 'source and destination are the same');
  if (!across && src.type === 'dir' && (move || depth === 'infinity') && isWithin(dest, ctx.path)) throw new HttpError(403, 'cannot copy or move a collection into itself');
  if (dest === '/') throw new HttpError(412, 'the share root cannot be overwritten');
  await ctx.requireParent(dest, volume);
  const destAttr = await ctx.stat(dest, volume);
  const sameFile = !across && destAttr !== undefined && destAttr.id === src.id;
  if (destAttr && !sameFile && ow === 'F') throw new HttpError(412, 'Destination exists and Overwrite is F');
  return { src, destShare: volume, destSpelling: t.share, dest, destAttr: sameFile ? undefined : destAttr, overwrite: ow !== 'F', depth };
}

export async function copy(ctx: DavContext): Promise<void> {
  const p = await plan(ctx, false);
  let errors: TreeError[];
  try {
    errors = p.destShare === ctx.share
      ? await ctx.session.copy(ctx.share, ctx.path, p.dest, { replace: p.overwrite, depth: p.depth })
      : await ctx.session.copyToShare(ctx.share, ctx.path, p.destShare, p.dest, { replace: p.overwrite, depth: p.depth });
  } catch (e) {
    throw contextual(e);
  }
  if (errors.length > 0) return report(ctx, errors, [ctx.path, p.dest]);
  created(ctx, p);
}

function created(ctx: DavContext, p: Plan): void {
  ctx.send(p.destAttr ? 204 : 201, p.destAttr ? {} : { Location: hrefOf(p.destSpelling, p.dest, p.src.type === 'dir') });
}

export async function move(ctx: DavContext): Promise<void> {
  const p = await plan(ctx, true);
  if (p.destShare !== ctx.share) return moveAcross(ctx, p);
  try {
    if (p.destAttr && (p.destAttr.type === 'dir' || p.src.type === 'dir')) {
      const errors = await ctx.session.removeTree(ctx.share, p.dest);
      if (errors.length > 0) return report(ctx, errors, [p.dest]);
      await ctx.session.rename(ctx.share, ctx.path, p.dest, { replace: false });
    } else {
      await ctx.session.rename(ctx.share, ctx.path, p.dest, { replace: p.destAttr !== undefined });
    }
  } catch (e) {
    throw contextual(e);
  }
  // RFC 4918 §7.7: the lock stays behind; the resource it locked is gone from the source URL.
  for (const l of await ctx.davLocks(p.dest)) {
    if (l.fileId !== p.src.id || !ctx.session.lockTokens.has(l.token)) continue;
    await ctx.session.unlockToken(ctx.share, l.token).catch(() => undefined);
  }
  created(ctx, p);
}

/**
 * MOVE into another share: copy the tree (rights on both shares checked first, including write on
 * the source), then remove the source. A copy failure leaves the source untouched (207 or the
 * member's status); a removal failure answers 207 naming what stayed behind.
 */
async function moveAcross(ctx: DavContext, p: Plan): Promise<void> {
  // A lock on the source (or its parent) without its token: 423 before anything is copied. Locks
  // deeper in the tree are found by the removal and answered in the 207.
  await ctx.assertUnlocked(ctx.path, { self: true, parent: true });
  let errors: TreeError[];
  try {
    errors = await ctx.session.copyToShare(ctx.share, ctx.path, p.destShare, p.dest, { replace: p.overwrite, depth: 'infinity', forMove: true });
  } catch (e) {
    throw contextual(e);
  }
  if (errors.length > 0) return report(ctx, errors, [ctx.path, p.dest]);
  try {
    errors = await ctx.session.removeTree(ctx.share, ctx.path);
  } catch (e) {
    throw contextual(e);
  }
  if (errors.length > 0) return report(ctx, errors, []);
  created(ctx, p);
}

function contextual(e: unknown): unknown {
  if (isVfsError(e, 'ELOCKED') || e instanceof HttpError) return e;
  if (e instanceof VfsError) return new HttpError(statusFor(e, e.code === 'EEXIST' ? 'overwrite' : 'create'), e.message);
  return e;
}

/** Errors only on the request's own roots answer with that status; member errors answer 207. */
async function report(ctx: DavContext, errors: TreeError[], roots: string[]): Promise<void> {
  const members = errors.filter((e) => !roots.includes(e.path));
  if (members.length === 0) {
    const e = errors[0]!.error;
    if (e.code === 'ELOCKED') throw e;
    throw new HttpError(statusFor(e, 'create'), e.message);
  }
  let body = MULTISTATUS_OPEN;
  for (const e of members) {
    const status = statusFor(e.error, 'create');
    body += statusResponse(hrefOf(ctx.shareSpelling, e.path, false), status, status === 423 ? 'lock-token-submitted' : undefined);
  }
  ctx.send(207, { 'Content-Type': 'application/xml; charset=utf-8' }, body + MULTISTATUS_CLOSE);
}
