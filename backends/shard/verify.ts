/**
 * `portico shard verify DEST`: checks a whole set - the catalog; every shard's header, footer and
 * index (and that they match what the catalog recorded); every file's payload (length, decoding,
 * CRC, chunk by chunk for chunked files); shard objects no catalog names. Reports each problem by
 * shard and path; the command exits non-zero when there is any.
 */
import { parseCatalog, type Catalog } from './catalog.ts';
import { HEADER_BYTES, ShardFormatError, decodeHeader } from './format.ts';
import { openShard, readStored } from './format-read.ts';
import { Progress, type ProgressMode } from './progress.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import type { PartialShard, ShardStore } from './store.ts';

export interface VerifyProblem {
  shard: string;
  path?: string;
  message: string;
}

export interface VerifyReport {
  generation: number;
  shards: number;
  files: number;
  bytes: number;
  problems: VerifyProblem[];
  /** Shard objects present that the catalog does not name (an interrupted pack's, or retired ones). */
  unreferenced: string[];
  /**
   * Unfinished shard writes under the set (S3 multipart uploads, temporary files): stored (and
   * billed) until aborted; the next pack or repack aborts those past its age (partials.ts).
   * Undefined when the store cannot list them. Not problems: a writer may be running.
   */
  partials?: PartialShard[];
  seconds: number;
}

export interface VerifyOptions {
  progress?: ProgressMode;
  progressOut?: NodeJS.WritableStream;
  progressIntervalMs?: number;
}

export async function verify(store: ShardStore, o: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const got = await store.readCatalog();
  if (got === undefined) throw new Error(`no shard set at ${store.label} (no catalog.json)`);
  let catalog: Catalog;
  try {
    catalog = parseCatalog(got.data);
  } catch (e) {
    return { generation: -1, shards: 0, files: 0, bytes: 0, problems: [{ shard: 'catalog.json', message: (e as Error).message }], unreferenced: [], seconds: 0 };
  }
  const report: VerifyReport = { generation: catalog.generation, shards: catalog.shards.length, files: 0, bytes: 0, problems: [], unreferenced: [], seconds: 0 };
  const progress = new Progress({
    label: 'verify', totalFiles: catalog.shards.reduce((a, s) => a + s.files, 0), totalBytes: catalog.shards.reduce((a, s) => a + s.bytes, 0),
    mode: o.progress ?? 'none', out: o.progressOut ?? process.stderr, ...(o.progressIntervalMs !== undefined ? { intervalMs: o.progressIntervalMs } : {}),
  });
  try {
    report.partials = await store.listPartials();
  } catch (e) {
    if (!isVfsError(e, 'ENOTSUP')) throw e;
  }
  const present = new Set(await store.listShards());
  for (const name of present) if (!catalog.shards.some((s) => s.name === name)) report.unreferenced.push(name);
  for (const shard of catalog.shards) {
    const problem = (message: string, path?: string): void => {
      report.problems.push({ shard: shard.name, ...(path !== undefined ? { path } : {}), message });
    };
    if (!present.has(shard.name)) {
      problem('missing from the store');
      continue;
    }
    const src = store.shardSource(shard);
    try {
      const head = await src.read(0, HEADER_BYTES);
      decodeHeader(head);
      const { footer, index } = await openShard(src);
      if (footer.indexCrc !== shard.indexCrc || index.count !== shard.entries) {
        problem(`index checksum ${footer.indexCrc} / ${index.count} entries, the catalog says ${shard.indexCrc} / ${shard.entries}`);
      }
      for (let i = 0; i < index.count; i++) {
        const e = index.entry(i);
        if (e.type !== 'file') continue;
        try {
          await readStored(src, e);
          report.files++;
          report.bytes += e.length;
        } catch (err) {
          if (!(err instanceof ShardFormatError)) throw err;
          problem(err.message, e.path);
        }
        progress.add(1, e.length);
      }
    } catch (err) {
      if (err instanceof ShardFormatError) problem(err.message);
      else problem(`unreadable: ${(err as Error).message}`);
    }
  }
  progress.done();
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}
