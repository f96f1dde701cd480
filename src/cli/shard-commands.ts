/**
 * `portico shard ...`: build and inspect shard sets (docs/shard-format.md, backends/shard/).
 *
 *   portico shard pack SRC DEST     pack a directory tree or every object under an S3 prefix into a set
 *                                   (SRC and DEST: a directory or s3://bucket/prefix)
 *   portico shard ls DEST [PATH]    list a directory of a set
 *   portico shard verify DEST       check every shard and file (exit 1 when anything is wrong)
 *   portico shard rm DEST PATH...   remove files or directories (tombstones)
 *   portico shard repack DEST       rebuild shards whose dead fraction passed a threshold
 *
 * S3 sources and destinations take the S3 backend's settings from the environment (AWS_* variables,
 * as the SDK reads them) and --s3-endpoint; one endpoint for both (a pack between two stores goes
 * through a local copy or two runs).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseSize } from '../../backends/s3/config.ts';
import type { Codec } from '../../backends/shard/codec.ts';
import type { ProgressMode } from '../../backends/shard/progress.ts';
import { normalizePath } from '../vfs/path.ts';

export interface ShardCommandDeps {
  action: <A extends unknown[]>(fn: (...args: A) => void | Promise<void>) => (...args: A) => Promise<void>;
  printTable: (header: string[], rows: string[][]) => void;
}

function sizeArg(v: string): number {
  try {
    const n = parseSize('size', v);
    if (n === undefined || n < 1) throw new Error('empty');
    return n;
  } catch {
    throw new InvalidArgumentError('must be a size in bytes or with a unit (e.g. 1GiB, 64MiB)');
  }
}

function intArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a non-negative integer');
  return Number(v);
}

/** A duration: a number with s, m, h or d (seconds without a unit). */
function durationArg(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?$/i.exec(v.trim());
  if (m === null) throw new InvalidArgumentError('must be a duration such as 0, 90s, 30m, 24h or 7d');
  const unit = { s: 1, m: 60, min: 60, h: 3600, d: 86400 }[(m[2] ?? 's').toLowerCase() as 's' | 'm' | 'min' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit * 1000);
}

function storeOptions(opts: { s3Endpoint?: string }): Record<string, unknown> {
  return opts.s3Endpoint !== undefined ? { endpoint: opts.s3Endpoint } : {};
}

/**
 * The key prefix of DEST when it lies under the S3 source SRC (same bucket): the walk leaves it out,
 * else a set inside its source would pack its own shards and catalog.
 */
function insideSource(src: string, dest: string): string | undefined {
  const s = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(src);
  const d = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(dest);
  if (s === null || d === null || s[1] !== d[1]) return undefined;
  const trim = (p: string): string => p.replace(/^\/+|\/+$/g, '');
  const sp = trim(s[2] ?? '');
  const dp = trim(d[2] ?? '');
  if (dp === sp) throw new InvalidArgumentError('DEST is the source prefix itself: the set must live outside SRC, or under it in its own prefix');
  if (sp !== '' && !dp.startsWith(`${sp}/`)) return undefined;
  return `${dp}/`;
}

const MiB = 1024 * 1024;
/** The codecs of backends/shard/codec.ts; the shard modules (and lz4's native code) load only when a shard command runs. */
const CODEC_NAMES = ['none', 'zstd', 'lz4', 'gzip'];

export function shardCommand(deps: ShardCommandDeps): Command {
  const shard = new Command('shard').description('shard sets: many small files packed into indexed shard objects');
  const s3Option = (what = 's3:// sets'): Option => new Option('--s3-endpoint <url>', `S3-compatible endpoint for ${what} (else AWS_ENDPOINT_URL_S3 or the SDK default)`);
  // For cron jobs: node_exporter's textfile collector reads the file (backends/shard/metrics.ts).
  const metricsOption = (): Option => new Option('--metrics-file <file>', "write the run's counters, duration, success and time as Prometheus text (node_exporter textfile collector)");

  shard
    .command('pack')
    .description('pack the directory tree SRC, or every object under the S3 prefix SRC, into the shard set DEST (a directory or s3://bucket/prefix); an existing set gets a new generation with what changed (an S3 source: size and LastModified from the listing, no HEAD per object)')
    .argument('<src>', 'source: directory or s3://bucket/prefix (keys ending in / are directories)')
    .argument('<dest>', 'shard set: directory or s3://bucket/prefix')
    .option('--shard-size <size>', 'original bytes per shard, at most (default 1GiB)', sizeArg)
    .addOption(new Option('--codec <codec>', 'per-file codec: auto (zstd when it saves 10%, skips compressed types), none, zstd, lz4, gzip').choices(['auto', ...CODEC_NAMES]).default('auto'))
    .option('--level <n>', 'compression level (zstd default 3, gzip 6)', intArg)
    .option('--workers <n>', 'compression worker threads (default: cores - 1; 0 = none)', intArg)
    .option('--read-concurrency <n>', 'S3 source: whole-object GETs in flight, at most (default 32; reads ahead are also bounded to 64 MiB)', (v: string) => {
      const n = intArg(v);
      if (n < 1 || n > 1024) throw new InvalidArgumentError('must be from 1 to 1024');
      return n;
    })
    .option('--align <bytes>', 'payloads up to this size never cross a multiple of it (default 128KiB, the S3 read page)', sizeArg)
    .addOption(new Option('--progress <mode>', 'progress display (default: tty on a terminal, else plain)').choices(['tty', 'plain', 'none']))
    .option('--progress-interval <seconds>', 'seconds between plain progress lines (default 10)', intArg)
    .option(
      '--abort-uploads-older-than <duration>',
      "unfinished shard uploads under DEST that no checkpoint names (S3 multipart uploads, temporary files of a killed run) are aborted when older than this (default 24h; 0 = all: only when nothing else writes the set); the interrupted run's own recorded upload is always aborted",
      durationArg,
    )
    .addOption(s3Option('an s3:// SRC and DEST (one endpoint and one set of credentials for both)'))
    .action(
      deps.action(async (src: string, dest: string, opts: {
        shardSize?: number; codec: Codec | 'auto'; level?: number; workers?: number; readConcurrency?: number; align?: number; progress?: ProgressMode;
        progressInterval?: number; abortUploadsOlderThan?: number; s3Endpoint?: string;
      }) => {
        const { openShardStore } = await import('../../backends/shard/store.ts');
        const { pack } = await import('../../backends/shard/pack.ts');
        const { openPackSource } = await import('../../backends/shard/source.ts');
        const exclude = insideSource(src, dest);
        const source = openPackSource(src, storeOptions(opts), {
          ...(opts.readConcurrency !== undefined ? { readAhead: opts.readConcurrency } : {}),
          ...(exclude !== undefined ? { exclude } : {}),
        });
        const store = await openShardStore(dest, storeOptions(opts)).catch(async (e: unknown) => {
          await source.close();
          throw e;
        });
        try {
          const r = await pack(source, store, {
            codec: opts.codec,
            ...(opts.shardSize !== undefined ? { shardSize: opts.shardSize } : {}),
            ...(opts.level !== undefined ? { level: opts.level } : {}),
            ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
            ...(opts.align !== undefined ? { alignment: opts.align } : {}),
            progress: opts.progress ?? (process.stderr.isTTY ? 'tty' : 'plain'),
            ...(opts.progressInterval !== undefined ? { progressIntervalMs: opts.progressInterval * 1000 } : {}),
            ...(opts.abortUploadsOlderThan !== undefined ? { abortPartialsOlderThanMs: opts.abortUploadsOlderThan } : {}),
            warn: (m) => process.stderr.write(`portico: warning: ${m}\n`),
          });
          if (r.partialsDiscarded > 0) {
            process.stdout.write(`aborted ${r.partialsDiscarded} unfinished shard upload${r.partialsDiscarded === 1 ? '' : 's'} left by an interrupted run\n`);
          }
          if (r.upToDate) {
            process.stdout.write(`up to date: ${r.unchanged} entries unchanged (generation ${r.generation})\n`);
            return;
          }
          const rate = r.seconds > 0 ? r.bytes / MiB / r.seconds : 0;
          process.stdout.write(
            `generation ${r.generation}: ${r.shardsWritten} shards written${r.shardsResumed > 0 ? `, ${r.shardsResumed} resumed from the checkpoint` : ''}, ` +
              `${r.files} files and ${r.dirs} directories, ${(r.bytes / MiB).toFixed(1)} MiB -> ${(r.storedBytes / MiB).toFixed(1)} MiB stored, ` +
              `${r.unchanged} unchanged, ${r.tombstones} tombstones, ${r.skipped} skipped; ${r.seconds.toFixed(1)} s, ` +
              `${rate.toFixed(1)} MB/s, ${(r.seconds > 0 ? r.files / r.seconds : 0).toFixed(0)} files/s\n`,
          );
        } finally {
          await source.close();
          await store.close();
        }
      }),
    );

  shard
    .command('ls')
    .description('list a directory of the shard set DEST')
    .argument('<dest>', 'shard set: directory or s3://bucket/prefix')
    .argument('[path]', 'directory in the set (default /)')
    .addOption(s3Option())
    .action(
      deps.action(async (dest: string, path: string | undefined, opts: { s3Endpoint?: string }) => {
        const { openShardStore } = await import('../../backends/shard/store.ts');
        const { ShardSetReader } = await import('../../backends/shard/set-reader.ts');
        const store = await openShardStore(dest, storeOptions(opts));
        try {
          const reader = new ShardSetReader(store);
          const p = normalizePath(path ?? '/');
          const kids = await reader.children(p);
          deps.printTable(['TYPE', 'SIZE', 'NAME', 'SHARD'], kids.map((c) => [
            c.type, c.located?.entry.type === 'file' ? String(c.located.entry.length) : '-', c.name, c.located?.shard.name ?? '-',
          ]));
        } finally {
          await store.close();
        }
      }),
    );
  shard
    .command('verify')
    .description('check the catalog, every shard (header, footer, index) and every file (decoding and checksum); exit 1 on any problem')
    .argument('<dest>', 'shard set: directory or s3://bucket/prefix')
    .addOption(new Option('--progress <mode>', 'progress display (default: tty on a terminal, else plain)').choices(['tty', 'plain', 'none']))
    .addOption(s3Option())
    .addOption(metricsOption())
    .action(
      deps.action(async (dest: string, opts: { progress?: ProgressMode; s3Endpoint?: string; metricsFile?: string }) => {
        const { openShardStore } = await import('../../backends/shard/store.ts');
        const { verify } = await import('../../backends/shard/verify.ts');
        const { withRunMetrics, verifyValues } = await import('../../backends/shard/metrics.ts');
        const store = await openShardStore(dest, storeOptions(opts));
        try {
          const r = await withRunMetrics(opts.metricsFile, 'verify', dest, () => verify(store, { progress: opts.progress ?? (process.stderr.isTTY ? 'tty' : 'plain') }), verifyValues);
          for (const p of r.problems) process.stdout.write(`CORRUPT ${p.shard}${p.path !== undefined ? ` ${p.path}` : ''}: ${p.message}\n`);
          for (const n of r.unreferenced) process.stdout.write(`note: ${n} is not named by the catalog (interrupted pack or retired shard)\n`);
          for (const u of r.partials ?? []) {
            process.stdout.write(`note: unfinished upload of ${u.name} (${u.id}, started ${u.started?.toISOString() ?? 'at an unknown time'}): stored until aborted; a pack or repack aborts it once older than its --abort-uploads-older-than (default 24h)\n`);
          }
          process.stdout.write(`generation ${r.generation}: ${r.shards} shards, ${r.files} files (${(r.bytes / MiB).toFixed(1)} MiB) verified, ${r.problems.length} problems, ${r.seconds.toFixed(1)} s\n`);
          if (r.problems.length > 0) process.exitCode = 1;
        } finally {
          await store.close();
        }
      }),
    );

  shard
    .command('rm')
    .description('remove files or directories from the shard set DEST (tombstones; readers apply them at their next catalog check)')
    .argument('<dest>', 'shard set: directory or s3://bucket/prefix')
    .argument('<paths...>', 'paths in the set')
    .addOption(s3Option())
    .addOption(metricsOption())
    .action(
      deps.action(async (dest: string, paths: string[], opts: { s3Endpoint?: string; metricsFile?: string }) => {
        const { openShardStore } = await import('../../backends/shard/store.ts');
        const { removePaths } = await import('../../backends/shard/maintenance.ts');
        const { withRunMetrics, rmValues } = await import('../../backends/shard/metrics.ts');
        const store = await openShardStore(dest, storeOptions(opts));
        try {
          const n = await withRunMetrics(opts.metricsFile, 'rm', dest, () => removePaths(store, paths), rmValues);
          process.stdout.write(`removed ${n} path${n === 1 ? '' : 's'}\n`);
        } finally {
          await store.close();
        }
      }),
    );

  shard
    .command('repack')
    .description('rebuild the shards of DEST whose dead fraction reached --threshold; old shards are deleted after --grace')
    .argument('<dest>', 'shard set: directory or s3://bucket/prefix')
    .option('--threshold <fraction>', 'dead fraction that triggers a rebuild (default 0.3)', (v: string) => {
      const n = Number(v);
      if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number from 0 to 1');
      return n;
    })
    .option('--grace <seconds>', 'how long replaced shards stay for readers of the previous catalog (default 600)', intArg)
    .option('--shard-size <size>', 'original bytes per new shard, at most (default 1GiB)', sizeArg)
    .option('--abort-uploads-older-than <duration>', 'unfinished shard uploads under DEST (a killed pack or repack) older than this are aborted first (default 24h; 0 = all: only when nothing else writes the set)', durationArg)
    .addOption(new Option('--progress <mode>', 'progress display').choices(['tty', 'plain', 'none']))
    .addOption(s3Option())
    .addOption(metricsOption())
    .action(
      deps.action(async (dest: string, opts: { threshold?: number; grace?: number; shardSize?: number; abortUploadsOlderThan?: number; progress?: ProgressMode; s3Endpoint?: string; metricsFile?: string }) => {
        const { openShardStore } = await import('../../backends/shard/store.ts');
        const { repack } = await import('../../backends/shard/maintenance.ts');
        const { withRunMetrics, repackValues } = await import('../../backends/shard/metrics.ts');
        const store = await openShardStore(dest, storeOptions(opts));
        try {
          const r = await withRunMetrics(opts.metricsFile, 'repack', dest, () => repack(store, {
            ...(opts.threshold !== undefined ? { threshold: opts.threshold } : {}),
            ...(opts.grace !== undefined ? { graceMs: opts.grace * 1000 } : {}),
            ...(opts.shardSize !== undefined ? { shardSize: opts.shardSize } : {}),
            ...(opts.abortUploadsOlderThan !== undefined ? { abortPartialsOlderThanMs: opts.abortUploadsOlderThan } : {}),
            progress: opts.progress ?? (process.stderr.isTTY ? 'tty' : 'plain'),
            warn: (m) => process.stderr.write(`portico: warning: ${m}\n`),
          }), repackValues);
          if (r.partialsDiscarded > 0) {
            process.stdout.write(`aborted ${r.partialsDiscarded} unfinished shard upload${r.partialsDiscarded === 1 ? '' : 's'} left by an interrupted run\n`);
          }
          process.stdout.write(
            `generation ${r.generation}: ${r.rebuilt.length} shards rebuilt into ${r.written} (${r.liveEntries} live entries, ${(r.reclaimedBytes / MiB).toFixed(1)} MiB reclaimed), ` +
              `${r.deleted.length} retired shards deleted\n`,
          );
        } finally {
          await store.close();
        }
      }),
    );
  return shard;
}
