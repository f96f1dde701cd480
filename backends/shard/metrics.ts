/**
 * Shard set metrics, two kinds:
 *
 * - A serving gateway's readers, on its /metrics (the gateway's registry, `backend` = share name).
 *   What an operator of a shard share has to see, and why each one:
 *   - `portico_shard_file_reads_total{from}`: file payload reads by where they were served from
 *     (`cache`: the decoded-file cache, no request; `store`: one verified read of the payload;
 *     `chunked`: a range of a large, chunked file). Requests per small-file read is
 *     `portico_s3_requests_total{op="GetObject"}` of the same share over the `store` rate (the S3
 *     store's transport already counts every request; it is not counted twice here).
 *   - `portico_shard_integrity_failures_total{part}`: checksum or structure failures (payload,
 *     index, footer, header, catalog), each answered EIO and logged. Anything above zero is damage
 *     to alert on (run `portico shard verify`).
 *   - `portico_shard_index_loads_total` and `portico_shard_index_cache_hits_total`, with
 *     `portico_shard_index_cache_bytes` and `portico_shard_index_cache_limit_bytes`: loads are tail
 *     reads (requests); loads growing while the cache sits at its limit means the index cache
 *     (option `indexCacheBytes`) is smaller than the working set and evicts.
 *   - `portico_shard_data_cache_bytes`, `portico_shard_catalog_loads_total`,
 *     `portico_shard_catalog_generation`, `portico_shard_files`: what the share serves and when a
 *     pack or rm was picked up.
 *   Counting is plain additions on the reader (`ShardReaderStats`); the registry reads them at
 *   scrape time (the project's pattern, src/metrics/metrics.ts: no prom-client call per read).
 *
 * - The maintenance commands (`portico shard verify|rm|repack --metrics-file F`): they run from
 *   cron or a CI job, not in a long-lived process, so there is nothing to scrape. They print their
 *   counters at the end and, with --metrics-file, write them in the Prometheus text format for
 *   node_exporter's textfile collector (written to a temporary file and renamed, so the collector
 *   never reads half a file). The `..._last_run_timestamp_seconds` gauges let an alert fire when
 *   verify has not run (or not succeeded) for too long.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { Counter, Gauge, Registry } from 'prom-client';

/** Counters of one reader; plain numbers, incremented on the read path. */
export class ShardReaderStats {
  readsCache = 0;
  readsStore = 0;
  readsChunked = 0;
  indexLoads = 0;
  indexHits = 0;
  catalogLoads = 0;
  /** By failing part: 'payload', 'index', 'footer', 'header', 'catalog'. */
  readonly failures = new Map<string, number>();

  failure(part: string): void {
    // ShardFormatError parts are 'payload of /path' for payloads: the label stays bounded.
    const p = part.startsWith('payload') ? 'payload' : /^(index|footer|header|catalog)$/.test(part) ? part : 'other';
    this.failures.set(p, (this.failures.get(p) ?? 0) + 1);
  }
}

/** What the registry asks a reader at scrape time. */
export interface ShardMetricsSource {
  readonly stats: ShardReaderStats;
  indexCacheBytes(): number;
  indexCacheLimit(): number;
  dataCacheBytes(): number;
  generation(): number;
  files(): number;
}

interface Family {
  sources: Map<string, ShardMetricsSource>;
}

const families = new WeakMap<Registry, Family>();

/**
 * Exposes `source` on `registry` under `backend` = `label`; returns the function that removes it
 * (the backend's close). One set of metric families per registry, shared by every shard share.
 */
export function registerShardReader(registry: Registry, label: string, source: ShardMetricsSource): () => void {
  let fam = families.get(registry);
  if (fam === undefined) {
    const f: Family = (fam = { sources: new Map() });
    families.set(registry, f);
    const registers = [registry];
    const counter = (name: string, help: string, pick: (s: ShardMetricsSource) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['backend'],
        registers,
        collect(this: Counter<'backend'>) {
          this.reset();
          for (const [b, s] of f.sources) this.inc({ backend: b }, pick(s));
        },
      });
    };
    const gauge = (name: string, help: string, pick: (s: ShardMetricsSource) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['backend'],
        registers,
        collect(this: Gauge<'backend'>) {
          this.reset();
          for (const [b, s] of f.sources) this.set({ backend: b }, pick(s));
        },
      });
    };
    new Counter({
      name: 'portico_shard_file_reads_total',
      help: 'Shard set file reads by where they were served from (cache: decoded-file cache; store: one verified payload read; chunked: a range of a large file)',
      labelNames: ['backend', 'from'],
      registers,
      collect(this: Counter<'backend' | 'from'>) {
        this.reset();
        for (const [b, s] of f.sources) {
          this.inc({ backend: b, from: 'cache' }, s.stats.readsCache);
          this.inc({ backend: b, from: 'store' }, s.stats.readsStore);
          this.inc({ backend: b, from: 'chunked' }, s.stats.readsChunked);
        }
      },
    });
    new Counter({
      name: 'portico_shard_integrity_failures_total',
      help: 'Shard set checksum or structure failures answered EIO, by part (payload, index, footer, header, catalog)',
      labelNames: ['backend', 'part'],
      registers,
      collect(this: Counter<'backend' | 'part'>) {
        this.reset();
        for (const [b, s] of f.sources) {
          // Zero series for the payload part so an alert's rate() has a baseline before the first failure.
          if (!s.stats.failures.has('payload')) this.inc({ backend: b, part: 'payload' }, 0);
          for (const [part, n] of s.stats.failures) this.inc({ backend: b, part }, n);
        }
      },
    });
    counter('portico_shard_index_loads_total', 'Shard indexes loaded (one tail read each): first use, or again after the index cache evicted them', (s) => s.stats.indexLoads);
    counter('portico_shard_index_cache_hits_total', 'Shard index lookups served by the index cache', (s) => s.stats.indexHits);
    counter('portico_shard_catalog_loads_total', 'Shard set catalogs loaded (start and every change picked up)', (s) => s.stats.catalogLoads);
    gauge('portico_shard_index_cache_bytes', 'Bytes of decoded shard indexes held', (s) => s.indexCacheBytes());
    gauge('portico_shard_index_cache_limit_bytes', 'The index cache bound (option indexCacheBytes)', (s) => s.indexCacheLimit());
    gauge('portico_shard_data_cache_bytes', 'Bytes of decoded small files held for repeated reads', (s) => s.dataCacheBytes());
    gauge('portico_shard_catalog_generation', 'Newest generation of the catalog being served', (s) => s.generation());
    gauge('portico_shard_files', 'Files the catalog names (before tombstones)', (s) => s.files());
  }
  const f = fam;
  f.sources.set(label, source);
  return () => {
    if (f.sources.get(label) === source) f.sources.delete(label);
  };
}

/** One maintenance run's figures, for --metrics-file. */
export interface RunMetrics {
  /** 'verify', 'rm' or 'repack'. */
  command: string;
  /** The set (directory or s3:// URL). */
  set: string;
  ok: boolean;
  seconds: number;
  /** Counters of the run: name (without prefix) → value, with their help text. */
  values: { name: string; help: string; value: number }[];
}

/**
 * Writes `run` as Prometheus text to `file` (temporary file + rename): per command,
 * `portico_shard_<command>_<name>` gauges, the duration, success (1/0), the run's end time and
 * the last success's (one file per command: the file is replaced by every run).
 */
export async function writeRunMetrics(file: string, run: RunMetrics): Promise<void> {
  const registry = new Registry();
  const registers = [registry];
  const p = `portico_shard_${run.command}`;
  const labels = { set: run.set };
  const g = (name: string, help: string, v: number): void => {
    new Gauge({ name: `${p}_${name}`, help, labelNames: ['set'], registers }).set(labels, v);
  };
  const now = Date.now() / 1000;
  // A failed run keeps the previous success time (read back from the file it replaces), so an
  // alert on "no success for a day" keeps working across failures.
  let lastSuccess: number | undefined = run.ok ? now : undefined;
  if (!run.ok) {
    const old = await readFile(file, 'utf8').catch(() => '');
    const m = new RegExp(`^${p}_last_success_timestamp_seconds\\{[^}]*\\} (\\S+)$`, 'm').exec(old);
    if (m !== null && Number.isFinite(Number(m[1]))) lastSuccess = Number(m[1]);
  }
  g('last_run_timestamp_seconds', `When the last shard ${run.command} ended (Unix time)`, now);
  g('last_run_success', `1 when the last shard ${run.command} succeeded (verify: found no problem), else 0`, run.ok ? 1 : 0);
  if (lastSuccess !== undefined) g('last_success_timestamp_seconds', `When shard ${run.command} last succeeded (Unix time)`, lastSuccess);
  g('last_run_duration_seconds', `How long the last shard ${run.command} took`, run.seconds);
  for (const v of run.values) g(v.name, v.help, v.value);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, await registry.metrics());
  await rename(tmp, file);
}

type RunValues = { ok: boolean; values: RunMetrics['values'] };

/**
 * Runs a maintenance command and, when `file` is set, writes its metrics: the figures `describe`
 * picks from the result, or a failed run (success 0, the duration) when it threw.
 */
export async function withRunMetrics<T>(file: string | undefined, command: string, set: string, run: () => Promise<T>, describe: (r: T) => RunValues): Promise<T> {
  const t0 = performance.now();
  let r: T;
  try {
    r = await run();
  } catch (e) {
    if (file !== undefined) await writeRunMetrics(file, { command, set, ok: false, seconds: (performance.now() - t0) / 1000, values: [] }).catch(() => undefined);
    throw e;
  }
  if (file !== undefined) await writeRunMetrics(file, { command, set, seconds: (performance.now() - t0) / 1000, ...describe(r) });
  return r;
}

/** What `portico shard verify` reports: a problem count above zero is damage; unreferenced shards are leftovers. */
export function verifyValues(r: { generation: number; shards: number; files: number; bytes: number; problems: unknown[]; unreferenced: unknown[] }): RunValues {
  return {
    ok: r.problems.length === 0,
    values: [
      { name: 'problems', help: 'Problems the last verify found (corrupt shards or files)', value: r.problems.length },
      { name: 'files', help: 'Files the last verify checked', value: r.files },
      { name: 'bytes', help: 'File bytes the last verify checked', value: r.bytes },
      { name: 'shards', help: 'Shards the last verify checked', value: r.shards },
      { name: 'unreferenced_shards', help: 'Shard objects the catalog does not name (interrupted pack, retired shard)', value: r.unreferenced.length },
      { name: 'generation', help: 'Catalog generation the last verify checked', value: r.generation },
    ],
  };
}

export function rmValues(removed: number): RunValues {
  return { ok: true, values: [{ name: 'removed_paths', help: 'Paths the last rm removed (tombstones written)', value: removed }] };
}

export function repackValues(r: { generation: number; rebuilt: unknown[]; written: number; liveEntries: number; reclaimedBytes: number; deleted: unknown[] }): RunValues {
  return {
    ok: true,
    values: [
      { name: 'rebuilt_shards', help: 'Shards the last repack rebuilt (dead fraction over the threshold)', value: r.rebuilt.length },
      { name: 'written_shards', help: 'Shards the last repack wrote', value: r.written },
      { name: 'live_entries', help: 'Live entries the last repack moved', value: r.liveEntries },
      { name: 'reclaimed_bytes', help: 'Stored bytes the last repack reclaimed', value: r.reclaimedBytes },
      { name: 'deleted_shards', help: 'Retired shards the last repack deleted (past their grace)', value: r.deleted.length },
      { name: 'generation', help: 'Catalog generation after the last repack', value: r.generation },
    ],
  };
}
