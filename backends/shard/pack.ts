/**
 * `portico shard pack SRC DEST`: packs a local directory tree or every object under an S3 prefix
 * into a shard set (docs/shard-format.md).
 *
 * 1. Walk SRC (source.ts: lstat each local entry, or list the S3 prefix; symlinks and names Portico
 *    cannot serve are skipped and reported).
 * 2. Against the set's current catalog, keep what is unchanged (same type, size, mtime and mode as
 *    its visible entry), pack what is new or changed, tombstone what is gone: an update adds one
 *    generation of shards instead of rewriting the set.
 * 3. Plan: the entries to pack, sorted by path bytes, cut into shards of up to `shardSize` bytes of
 *    original data (deterministic for a given source and options).
 * 4. Write each shard in turn; files are read, compressed and checksummed by worker threads, ahead
 *    of the writer, and written in plan order. After each shard the checkpoint records it, so a
 *    pack that is interrupted and run again with the same plan skips the shards already written.
 * 5. Replace the catalog atomically, then drop the checkpoint.
 *
 * Unfinished shards. A shard being written exists in the store before it is complete: on S3 as a
 * multipart upload (parts stored and billed until it is completed or aborted, invisible to listings
 * of objects, unknown to the S3 backend's start-up recovery, which knows the uploads of its own
 * journal only), in a directory as a temporary file. The checkpoint records the one being written
 * (`partial`) as soon as it exists: a run that finds a checkpoint discards the recorded one before
 * anything else, whether or not the plan still matches. It is discarded, not continued: the index at
 * a shard's end needs every earlier file's offset and checksum, so continuing means reading and
 * compressing every file before the cut again anyway and proving the bytes come out identical to
 * the parts already stored (the same codec decisions, the same zstd output; a part's ETag is its MD5
 * on AWS but not with SSE-KMS/SSE-C or on every compatible store). A mismatch would be a corrupt
 * shard found only by verify; restarting costs at most one shard's upload (shardSize, 1 GiB by
 * default). Recording is not atomic with the start (the upload exists before the checkpoint PUT
 * lands; the part upload and the checkpoint write run together, and the next write waits for the
 * record), and repack keeps no checkpoint: so every pack also lists the unfinished shard writes under
 * the set (ListMultipartUploads of PREFIX/shards/, or the directory's temporary files) and discards
 * those older than `abortPartialsOlderThanMs`, 24 h by default (the S3 backend's orphanUploadAgeMs
 * default): a younger one may be another writer's upload in progress (one writer at a time is the
 * rule, docs/shard-format.md, but a second host is not prevented), and is reported, not touched.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { CHECKPOINT_NAME, emptyCatalog, parseCatalog, serializeCatalog, shardName, type Catalog, type CatalogShard } from './catalog.ts';
import type { Codec } from './codec.ts';
import { WHOLE_MAX_BYTES, comparePathBytes } from './format.ts';
import { DEFAULT_ALIGNMENT, ShardWriter } from './format-write.ts';
import { prepareFile, type PrepareTask, type Prepared } from './prepare.ts';
import { Progress, type ProgressMode } from './progress.ts';
import { ShardSetReader } from './set-reader.ts';
import { PARTIAL_MAX_AGE_MS, discardPartials } from './partials.ts';
import { LocalSource, type PackSource, type SourceEntry } from './source.ts';
import type { ShardStore } from './store.ts';

export interface PackOptions {
  /** Original bytes per shard, at most (default 1 GiB; a single larger file gets a shard of its own). */
  shardSize?: number;
  codec?: Codec | 'auto';
  level?: number;
  /** Worker threads for reading and compression (default: cores - 1, at least 1; 0 = on the main thread). */
  workers?: number;
  alignment?: number;
  progress?: ProgressMode;
  progressOut?: NodeJS.WritableStream;
  progressIntervalMs?: number;
  /**
   * Unfinished shard writes under the set that no checkpoint names (S3 multipart uploads, temporary
   * files) are discarded when older than this (default 24 h; 0 = all of them: only when no other
   * pack or repack of the set is running).
   */
  abortPartialsOlderThanMs?: number;
  /** Warnings (skipped entries, files that vanished). */
  warn?: (message: string) => void;
}

export interface PackResult {
  upToDate: boolean;
  generation: number;
  shardsWritten: number;
  shardsResumed: number;
  files: number;
  dirs: number;
  bytes: number;
  storedBytes: number;
  unchanged: number;
  tombstones: number;
  skipped: number;
  /** Unfinished shard writes discarded (the checkpoint's, and those older than the age). */
  partialsDiscarded: number;
  /** Younger unfinished shard writes found and left alone (reported by a warning). */
  partialsKept: number;
  seconds: number;
}

interface Checkpoint {
  planId: string;
  generation: number;
  done: CatalogShard[];
  /** The shard being written when this was saved, as the store knows it (S3 UploadId, temporary file). */
  partial?: { name: string; id: string };
}

const GiB = 1024 ** 3;
/** Bytes of files read ahead of the writer, at most (plus the one it waits for). */
const AHEAD_BYTES = 64 * 1024 * 1024;

/** Reads and compresses files on worker threads (or inline), one promise per file. */
class PreparePool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (p: Prepared) => void; reject: (e: Error) => void }>();
  private next = 0;
  private rr = 0;

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./pack-worker.ts', import.meta.url));
      w.on('message', (m: { id: number; error?: string; code?: string } & Partial<Prepared>) => {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        if (m.error !== undefined) p.reject(Object.assign(new Error(m.error), { code: m.code }));
        else {
          const s = m.stored as Uint8Array;
          p.resolve({ codec: m.codec as Codec, stored: Buffer.from(s.buffer, s.byteOffset, s.byteLength), length: m.length as number, crc: m.crc as number });
        }
      });
      w.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
      this.workers.push(w);
    }
  }

  run(t: PrepareTask): Promise<Prepared> {
    if (this.workers.length === 0) return prepareFile(t, readFile, crc32);
    const id = this.next++;
    const w = this.workers[this.rr++ % this.workers.length] as Worker;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Bytes fetched on this thread (an S3 source) move to the worker, not copied.
      const d = t.data;
      w.postMessage({ id, ...t }, d !== undefined && d.byteLength > 0 && d.byteOffset === 0 && d.buffer.byteLength === d.byteLength ? [d.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function same(a: SourceEntry, e: { type: string; length: number; mtimeNs: bigint; mode: number }): boolean {
  return a.type === e.type && a.mode === e.mode && a.mtimeNs === e.mtimeNs && (a.type === 'dir' || a.size === e.length);
}

export async function pack(src: string | PackSource, store: ShardStore, o: PackOptions = {}): Promise<PackResult> {
  const source: PackSource = typeof src === 'string' ? new LocalSource(src) : src;
  const t0 = performance.now();
  const warn = o.warn ?? (() => undefined);
  const shardSize = o.shardSize ?? GiB;
  const policy = o.codec ?? 'auto';
  const alignment = o.alignment ?? DEFAULT_ALIGNMENT;
  const { entries: listed, skipped } = await source.walk(warn);

  // What the set already holds.
  const got = await store.readCatalog();
  const base: Catalog = got === undefined ? emptyCatalog() : parseCatalog(got.data);
  const visible = new Map<string, { type: string; length: number; mtimeNs: bigint; mode: number }>();
  if (base.shards.length > 0) {
    const reader = new ShardSetReader(store, { catalogCheckMs: Number.POSITIVE_INFINITY });
    for await (const l of reader.entries()) visible.set(l.entry.path, l.entry);
  }
  const inSource = new Set<string>();
  const toPack: SourceEntry[] = [];
  for (const s of listed) {
    inSource.add(s.path);
    const v = visible.get(s.path);
    if (v === undefined || !same(s, v)) toPack.push(s);
  }
  const gone: string[] = [];
  for (const p of visible.keys()) if (!inSource.has(p)) gone.push(p);
  const goneSet = new Set(gone);
  const tombs = gone.filter((p) => {
    const parent = p.slice(0, p.lastIndexOf('/'));
    return parent === '' || !goneSet.has(parent);
  });
  const result: PackResult = {
    upToDate: false, generation: base.generation, shardsWritten: 0, shardsResumed: 0, files: 0, dirs: 0, bytes: 0, storedBytes: 0,
    unchanged: listed.length - toPack.length, tombstones: tombs.length, skipped, partialsDiscarded: 0, partialsKept: 0, seconds: 0,
  };

  // An interrupted run's checkpoint, and what it (or anything else) left unfinished.
  let cp: Checkpoint | undefined;
  const cpRaw = await store.readAux(CHECKPOINT_NAME);
  if (cpRaw !== undefined) {
    try {
      cp = JSON.parse(cpRaw.toString('utf8')) as Checkpoint;
    } catch {
      warn('an unreadable checkpoint was ignored');
    }
  }
  const rec = cp?.partial;
  const recorded = rec !== undefined && typeof rec.name === 'string' && typeof rec.id === 'string' ? { name: rec.name, id: rec.id } : undefined;
  const cleaned = await discardPartials(store, { recorded, olderThanMs: o.abortPartialsOlderThanMs ?? PARTIAL_MAX_AGE_MS, warn });
  result.partialsDiscarded = cleaned.discarded;
  result.partialsKept = cleaned.kept;

  if (toPack.length === 0 && tombs.length === 0) {
    result.upToDate = true;
    // A checkpoint's plan had something to pack: it can never match again.
    if (cpRaw !== undefined) await store.removeAux(CHECKPOINT_NAME);
    result.seconds = (performance.now() - t0) / 1000;
    return result;
  }
  const generation = base.generation + 1;
  result.generation = generation;

  // Plan.
  const keyed = toPack.map((e) => ({ e, k: Buffer.from(e.path, 'utf8') })).sort((a, b) => comparePathBytes(a.k, b.k)).map((x) => x.e);
  const plan: SourceEntry[][] = [];
  let cur: SourceEntry[] = [];
  let curBytes = 0;
  for (const e of keyed) {
    if (e.type === 'file' && cur.length > 0 && curBytes + e.size > shardSize) {
      plan.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(e);
    curBytes += e.size;
  }
  if (cur.length > 0) plan.push(cur);
  const h = createHash('sha256');
  h.update(JSON.stringify({ generation, policy, level: o.level ?? null, alignment, shardSize, base: got?.version ?? null }));
  // An S3 source's entries add their ETag: a resumed run skips shards only when every object in the
  // plan is the very version the interrupted run packed (LastModified has whole seconds).
  for (const e of keyed) h.update(`${e.path}\u0000${e.type}\u0000${e.size}\u0000${e.mtimeNs}\u0000${e.mode}${e.etag !== undefined ? `\u0000${e.etag}` : ''}\n`);
  const planId = h.digest('hex');

  // Resume.
  const done: CatalogShard[] = [];
  if (cp !== undefined) {
    if (cp.planId === planId && cp.generation === generation && Array.isArray(cp.done)) {
      const present = new Set(await store.listShards());
      for (const s of cp.done) if (present.has(s.name)) done.push(s);
    } else warn('a checkpoint of another plan was found and ignored (the source or options changed): packing from the start');
  }
  // Checkpoint writes, in order (a later one must never be overtaken by an earlier one).
  let saving: Promise<void> = Promise.resolve();
  const saveCheckpoint = (partial?: Checkpoint['partial']): Promise<void> => {
    const data = Buffer.from(JSON.stringify({ planId, generation, done, ...(partial !== undefined ? { partial } : {}) } satisfies Checkpoint));
    saving = saving.then(() => store.writeAux(CHECKPOINT_NAME, data));
    // Awaited by the shard's next write (or its end); a failure fails the pack there.
    saving.catch(() => undefined);
    return saving;
  };
  /** `done` has a shard the stored checkpoint does not list yet. */
  let unsaved = false;
  const doneNames = new Set(done.map((s) => s.name));
  result.shardsResumed = done.length;

  const totalFiles = keyed.filter((e) => e.type === 'file').length;
  const totalBytes = keyed.reduce((a, e) => a + e.size, 0);
  const progress = new Progress({ label: 'pack', totalFiles, totalBytes, mode: o.progress ?? 'none', out: o.progressOut ?? process.stderr, ...(o.progressIntervalMs !== undefined ? { intervalMs: o.progressIntervalMs } : {}) });
  const workers = o.workers ?? Math.max(1, availableParallelism() - 1);
  const pool = new PreparePool(workers);
  // Files read ahead of the writer, at most (count and bytes): the workers' queue for a local source;
  // for an S3 source also the GETs in flight (small objects are latency-bound, source.ts).
  const ahead = Math.max(8, 8 * Math.max(1, workers), source.readAhead ?? 0);
  const name = (e: SourceEntry): string => e.path.slice(e.path.lastIndexOf('/') + 1);
  /** A file that vanished or was replaced since the walk: skipped (reported); the next pack takes it. */
  const vanished = (err: unknown, e: SourceEntry): boolean => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ESTALE') return false;
    warn(`skipped ${source instanceof LocalSource ? e.file : `${source.label} ${e.path}`}: ${code === 'ENOENT' ? 'it disappeared while packing' : 'it was replaced while packing (the next pack takes it)'}`);
    result.skipped++;
    return true;
  };
  try {
    for (let k = 0; k < plan.length; k++) {
      const part = plan[k] as SourceEntry[];
      const shard = shardName(generation, k + 1);
      if (doneNames.has(shard)) {
        const files = part.filter((e) => e.type === 'file');
        progress.add(files.length, files.reduce((a, e) => a + e.size, 0));
        continue;
      }
      // The previous shard's completion is saved with this one's partial when the store reports it
      // at once (a directory's temporary file): one fsynced checkpoint write per shard, as before
      // partials were recorded. Else (S3: the upload starts with the first full part, or never for
      // a shard under one part) it is saved right after the create, and the partial when it comes.
      const out = await store.createShard(shard, part.reduce((a, e) => a + e.size, 0), (p) => {
        unsaved = false;
        return saveCheckpoint({ name: p.name, id: p.id });
      });
      if (unsaved) {
        unsaved = false;
        void saveCheckpoint();
      }
      const w = new ShardWriter(async (c) => {
        await out.write(c);
        // The upload the write may have started is recorded before more of the shard goes out.
        await saving;
      }, { alignment });
      let stored = 0;
      try {
        const started: (Promise<Prepared> | undefined)[] = [];
        let aheadBytes = 0;
        let next = 0;
        const start = (i: number): void => {
          const e = part[i];
          if (e === undefined || e.type !== 'file' || e.size > WHOLE_MAX_BYTES || started[i] !== undefined) return;
          const t = { file: e.file, name: name(e), policy, level: o.level };
          const p = source.read === undefined ? pool.run(t) : source.read(e).then((data) => pool.run({ ...t, data }));
          p.catch(() => undefined);
          started[i] = p;
          aheadBytes += e.size;
        };
        /** Starts files after `i` while under both bounds (the one at `i` always). */
        const fill = (i: number): void => {
          for (; next < part.length && next < i + ahead; next++) {
            if (next > i && aheadBytes + (part[next] as SourceEntry).size > AHEAD_BYTES && (part[next] as SourceEntry).size <= WHOLE_MAX_BYTES) break;
            start(next);
          }
        };
        for (let i = 0; i < part.length; i++) {
          fill(i);
          const e = part[i] as SourceEntry;
          if (e.type === 'dir') {
            w.addDir(e.path, e.mode, e.mtimeNs);
            result.dirs++;
            continue;
          }
          if (e.size > WHOLE_MAX_BYTES) {
            // Large files are streamed (chunked payload, no codec): one 1 MiB buffer, not the file.
            let n: number;
            try {
              n = await w.addChunkedStream(e, source.stream(e));
            } catch (err) {
              // ENOENT/ESTALE come before any of its bytes went out (the open, the first GET:
              // source.ts); anything else aborts the shard.
              if (vanished(err, e)) continue;
              throw err;
            }
            stored += n;
            result.files++;
            result.bytes += n;
            progress.add(1, n);
            continue;
          }
          let p: Prepared;
          try {
            start(i);
            p = await (started[i] as Promise<Prepared>);
          } catch (err) {
            started[i] = undefined;
            aheadBytes -= e.size;
            if (vanished(err, e)) continue;
            throw err;
          }
          started[i] = undefined;
          aheadBytes -= e.size;
          await w.addFile({ path: e.path, mode: e.mode, mtimeNs: e.mtimeNs, codec: p.codec, stored: p.stored as Buffer, length: p.length, crc: p.crc });
          stored += p.stored.length;
          result.files++;
          result.bytes += p.length;
          progress.add(1, p.length);
        }
        const fin = await w.finish();
        const committed = await out.commit();
        if (committed.size !== fin.size) throw new Error(`shard ${shard}: ${committed.size} bytes written, ${fin.size} expected`);
        done.push({
          name: shard, generation, size: fin.size, ...(committed.etag !== undefined ? { etag: committed.etag } : {}),
          entries: fin.entries, files: fin.files, bytes: fin.bytes, first: fin.first, last: fin.last, indexCrc: fin.indexCrc,
        });
        result.shardsWritten++;
        result.storedBytes += stored;
      } catch (err) {
        await out.abort().catch(() => undefined);
        throw err;
      }
      unsaved = true;
    }
    if (unsaved) await saveCheckpoint();
  } finally {
    await pool.close();
  }
  progress.done();

  const catalog: Catalog = {
    ...base,
    generation,
    alignment,
    shards: [...base.shards, ...done.sort((a, b) => (a.name < b.name ? -1 : 1))],
    tombstones: [...base.tombstones, ...tombs.map((path) => ({ path, generation }))],
  };
  await store.writeCatalog(serializeCatalog(catalog));
  await store.removeAux(CHECKPOINT_NAME);
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}
