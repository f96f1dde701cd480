/**
 * Changing a shard set without packing: `portico shard rm PATH...` (tombstones, applied by readers
 * at their next catalog check) and `portico shard repack` (shards whose dead fraction - entries
 * replaced or removed - reaches a threshold are rebuilt from their live entries into a new
 * generation; the old ones stay as "retired" until a grace period has passed, so readers still on
 * the previous catalog finish their reads, and a later repack or pack deletes them).
 *
 * One writer at a time: pack, rm and repack read the catalog, change it and replace it; two at once
 * would lose one's change (S3 has no compare-and-swap on PutObject that every store supports).
 */
import { crc32 } from 'node:zlib';
import { VfsError } from '../../src/vfs/errors.ts';
import { normalizePath } from '../../src/vfs/path.ts';
import { parseCatalog, serializeCatalog, shardName, type Catalog, type CatalogShard } from './catalog.ts';
import { comparePathBytes } from './format.ts';
import { readStored } from './format-read.ts';
import { DEFAULT_ALIGNMENT, ShardWriter } from './format-write.ts';
import { PARTIAL_MAX_AGE_MS, discardPartials } from './partials.ts';
import { Progress, type ProgressMode } from './progress.ts';
import { ShardSetReader, type Located } from './set-reader.ts';
import type { ShardStore } from './store.ts';

async function loadCatalog(store: ShardStore): Promise<Catalog> {
  const got = await store.readCatalog();
  if (got === undefined) throw new VfsError('ENOENT', `no shard set at ${store.label} (no catalog.json)`);
  return parseCatalog(got.data);
}

/** Tombstones for `paths` (files or whole directories) at the set's current generation. */
export async function removePaths(store: ShardStore, paths: string[]): Promise<number> {
  const catalog = await loadCatalog(store);
  const reader = new ShardSetReader(store, { catalogCheckMs: Number.POSITIVE_INFINITY });
  const add: { path: string; generation: number }[] = [];
  for (const raw of paths) {
    const path = normalizePath(raw);
    if (path === '/') throw new VfsError('EINVAL', 'the root of a set cannot be removed');
    if ((await reader.lookup(path)) === undefined) throw new VfsError('ENOENT', `${path} is not in the set`, { path });
    add.push({ path, generation: catalog.generation });
  }
  await store.writeCatalog(serializeCatalog({ ...catalog, tombstones: [...catalog.tombstones, ...add] }));
  return add.length;
}

export interface RepackOptions {
  /** Rebuild shards whose dead fraction (entries not visible) is at least this (default 0.3). */
  threshold?: number;
  /** Retired shards are deleted once retired this long (default 10 minutes). */
  graceMs?: number;
  shardSize?: number;
  alignment?: number;
  progress?: ProgressMode;
  progressOut?: NodeJS.WritableStream;
  /**
   * Unfinished shard writes under the set (a killed pack's or repack's S3 multipart uploads or
   * temporary files) older than this are discarded first (default 24 h, partials.ts). Repack keeps
   * no checkpoint, so its own killed runs' uploads are found this way only.
   */
  abortPartialsOlderThanMs?: number;
  warn?: (message: string) => void;
}

export interface RepackResult {
  generation: number;
  rebuilt: string[];
  written: number;
  liveEntries: number;
  reclaimedBytes: number;
  deleted: string[];
  /** Unfinished shard writes discarded (see RepackOptions.abortPartialsOlderThanMs). */
  partialsDiscarded: number;
}

export async function repack(store: ShardStore, o: RepackOptions = {}): Promise<RepackResult> {
  const threshold = o.threshold ?? 0.3;
  const grace = o.graceMs ?? 10 * 60_000;
  const catalog = await loadCatalog(store);
  const now = Date.now();
  const result: RepackResult = { generation: catalog.generation, rebuilt: [], written: 0, liveEntries: 0, reclaimedBytes: 0, deleted: [], partialsDiscarded: 0 };
  result.partialsDiscarded = (await discardPartials(store, { olderThanMs: o.abortPartialsOlderThanMs ?? PARTIAL_MAX_AGE_MS, warn: o.warn ?? (() => undefined) })).discarded;

  // Retired shards past their grace period go first.
  const retired = [...(catalog.retired ?? [])];
  const keepRetired = retired.filter((r) => now - r.at < grace);
  for (const r of retired) {
    if (now - r.at < grace) continue;
    await store.deleteShard(r.name);
    result.deleted.push(r.name);
  }

  const reader = new ShardSetReader(store, { catalogCheckMs: Number.POSITIVE_INFINITY });
  const live = new Map<string, Located[]>();
  for await (const l of reader.entries()) {
    let a = live.get(l.shard.name);
    if (a === undefined) live.set(l.shard.name, (a = []));
    a.push(l);
  }
  const victims = catalog.shards.filter((s) => s.entries > 0 && (s.entries - (live.get(s.name)?.length ?? 0)) / s.entries >= threshold);
  if (victims.length === 0) {
    if (result.deleted.length > 0) await store.writeCatalog(serializeCatalog({ ...catalog, retired: keepRetired }));
    return result;
  }
  const generation = catalog.generation + 1;
  result.generation = generation;
  const entries = victims.flatMap((s) => live.get(s.name) ?? [])
    .map((l) => ({ l, k: Buffer.from(l.entry.path, 'utf8') }))
    .sort((a, b) => comparePathBytes(a.k, b.k))
    .map((x) => x.l);
  result.liveEntries = entries.length;
  const shardSize = o.shardSize ?? 1024 ** 3;
  const progress = new Progress({
    label: 'repack', totalFiles: entries.filter((l) => l.entry.type === 'file').length, totalBytes: entries.reduce((a, l) => a + l.entry.length, 0),
    mode: o.progress ?? 'none', out: o.progressOut ?? process.stderr,
  });
  const written: CatalogShard[] = [];
  let i = 0;
  while (i < entries.length) {
    const name = shardName(generation, written.length + 1);
    const out = await store.createShard(name);
    const w = new ShardWriter((c) => out.write(c), { alignment: o.alignment ?? catalog.alignment ?? DEFAULT_ALIGNMENT });
    let bytes = 0;
    try {
      while (i < entries.length) {
        const l = entries[i] as Located;
        const e = l.entry;
        if (e.type === 'file' && bytes > 0 && bytes + e.length > shardSize) break;
        i++;
        if (e.type === 'dir') {
          w.addDir(e.path, e.mode, e.mtimeNs);
          continue;
        }
        // Copied as stored (no second compression), after verifying it: a repack never spreads corruption.
        const { stored } = await readStored(reader.source(l.shard), e);
        await w.addFile({ path: e.path, mode: e.mode, mtimeNs: e.mtimeNs, codec: e.chunked ? 'none' : e.codec, stored, length: e.length, crc: e.chunked ? crc32(stored) : e.crc });
        bytes += e.length;
        progress.add(1, e.length);
      }
      const fin = await w.finish();
      const committed = await out.commit();
      written.push({
        name, generation, size: fin.size, ...(committed.etag !== undefined ? { etag: committed.etag } : {}),
        entries: fin.entries, files: fin.files, bytes: fin.bytes, first: fin.first, last: fin.last, indexCrc: fin.indexCrc,
      });
    } catch (e) {
      await out.abort().catch(() => undefined);
      throw e;
    }
  }
  progress.done();
  const gone = new Set(victims.map((s) => s.name));
  result.rebuilt = victims.map((s) => s.name);
  result.written = written.length;
  result.reclaimedBytes = victims.reduce((a, s) => a + s.size, 0) - written.reduce((a, s) => a + s.size, 0);
  await store.writeCatalog(serializeCatalog({
    ...catalog,
    generation,
    shards: [...catalog.shards.filter((s) => !gone.has(s.name)), ...written],
    retired: [...keepRetired, ...victims.map((s) => ({ name: s.name, at: now }))],
  }));
  return result;
}
