/**
 * Unfinished shard writes (store.ts PartialShard): S3 multipart uploads and temporary files that a
 * killed pack or repack leaves under a set. Each stays, and on S3 is billed, until someone aborts
 * it: the S3 backend's start-up recovery only knows the uploads of its own journal, and a gateway
 * serving the set never writes. Pack and repack clean them up when they start (pack.ts header:
 * the checkpoint's recorded one always; the others by age).
 */
import { isVfsError } from '../../src/vfs/errors.ts';
import type { PartialShard, ShardStore } from './store.ts';
import { ORPHAN_UPLOAD_AGE_MS } from '../s3/config.ts';

/**
 * Default age above which an unfinished shard write that no checkpoint names is discarded: a day,
 * the S3 backend's orphanUploadAgeMs default. A younger one may be the upload of a pack or repack
 * running right now on another host (one writer at a time is the rule, not enforced); a shard
 * upload lasts minutes (1 GiB at a few MB/s), not a day.
 */
export const PARTIAL_MAX_AGE_MS = ORPHAN_UPLOAD_AGE_MS;

function ageText(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

/**
 * Discards `recorded` (a checkpoint's unfinished shard), then every unfinished shard write of the
 * store older than `olderThanMs`; younger ones are counted and reported. A store that cannot list or
 * abort multipart uploads gets a warning instead (a bucket lifecycle rule has to do it there).
 */
export async function discardPartials(store: ShardStore, o: { recorded?: PartialShard | undefined; olderThanMs: number; warn: (m: string) => void }): Promise<{ discarded: number; kept: number }> {
  let discarded = 0;
  const kept: PartialShard[] = [];
  const unsupported = (e: unknown): boolean => {
    if (!isVfsError(e, 'ENOTSUP')) return false;
    o.warn(`unfinished shard uploads under ${store.label} cannot be cleaned up: ${(e as Error).message}`);
    return true;
  };
  try {
    let found: PartialShard[] | undefined;
    try {
      found = await store.listPartials();
    } catch (e) {
      if (!unsupported(e)) throw e;
    }
    // The recorded one is discarded even when the store cannot list (it is counted when it was there).
    if (o.recorded !== undefined) {
      await store.discardPartial(o.recorded);
      if (found === undefined || found.some((p) => p.id === o.recorded?.id)) discarded++;
    }
    if (found === undefined) return { discarded, kept: 0 };
    const cutoff = Date.now() - o.olderThanMs;
    for (const p of found) {
      if (p.id === o.recorded?.id) continue;
      // No start time (a store that does not say): only an explicit "all of them" removes it.
      if (p.started === undefined ? o.olderThanMs > 0 : p.started.getTime() > cutoff) {
        kept.push(p);
        continue;
      }
      await store.discardPartial(p);
      discarded++;
    }
  } catch (e) {
    if (!unsupported(e)) throw e;
  }
  if (kept.length > 0) {
    o.warn(
      `${kept.length} unfinished shard upload${kept.length === 1 ? '' : 's'} under ${store.label} (${kept.slice(0, 5).map((p) => `${p.name} started ${p.started?.toISOString() ?? 'at an unknown time'}`).join(', ')}${kept.length > 5 ? ', ...' : ''}) ` +
        `younger than ${ageText(o.olderThanMs)} left alone: another pack or repack may be writing ${kept.length === 1 ? 'it' : 'them'}; if none is, --abort-uploads-older-than 0 discards ${kept.length === 1 ? 'it' : 'them'}`,
    );
  }
  return { discarded, kept: kept.length };
}
