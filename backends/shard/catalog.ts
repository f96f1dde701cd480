/**
 * The catalog of a shard set (docs/shard-format.md, "Catalog"): which shards exist, the path range
 * and generation of each, and the tombstones; routing of a path to the shards that may hold it.
 * Parsed with zod (bounded: the JSON's size is checked before parsing), so a damaged catalog is a
 * clear error, never a half-understood set.
 */
import { z } from 'zod';
import { MAX_PATH_BYTES, normalizePath, parentPath } from '../../src/vfs/path.ts';
import { comparePathBytes } from './format.ts';

export const CATALOG_NAME = 'catalog.json';
export const CHECKPOINT_NAME = 'pack-checkpoint.json';
export const SHARD_DIR = 'shards';
/** A catalog larger than this is refused before parsing (about 2.5 million shards or tombstones). */
export const MAX_CATALOG_BYTES = 512 * 1024 * 1024;

const SHARD_NAME = /^g\d{6}-\d{6}\.shard$/;
const sharePath = z.string().min(1).max(MAX_PATH_BYTES).refine((p) => {
  try {
    return normalizePath(p) === p;
  } catch {
    return false;
  }
}, 'not a normalised share path');

const shardSchema = z.object({
  name: z.string().regex(SHARD_NAME),
  generation: z.number().int().min(1),
  size: z.number().int().min(0),
  etag: z.string().optional(),
  entries: z.number().int().min(0),
  files: z.number().int().min(0),
  bytes: z.number().int().min(0),
  first: z.string(),
  last: z.string(),
  indexCrc: z.number().int().min(0).max(0xffffffff),
});

const catalogSchema = z.object({
  format: z.literal('portico-shard-set'),
  version: z.literal(1),
  generation: z.number().int().min(0),
  updated: z.string(),
  alignment: z.number().int().min(1).optional(),
  shards: z.array(shardSchema),
  tombstones: z.array(z.object({ path: sharePath, generation: z.number().int().min(0) })),
  /** Shards a repack replaced, deleted once `at` (ms) is older than the grace period: readers that loaded the previous catalog finish on them. */
  retired: z.array(z.object({ name: z.string().regex(SHARD_NAME), at: z.number().int().min(0) })).optional(),
});

export type CatalogShard = z.infer<typeof shardSchema>;
export type Catalog = z.infer<typeof catalogSchema>;

export class CatalogError extends Error {
  constructor(message: string) {
    super(`shard catalog: ${message}`);
    this.name = 'CatalogError';
  }
}

export function emptyCatalog(): Catalog {
  return { format: 'portico-shard-set', version: 1, generation: 0, updated: new Date().toISOString(), shards: [], tombstones: [] };
}

export function parseCatalog(data: Buffer): Catalog {
  if (data.length > MAX_CATALOG_BYTES) throw new CatalogError(`${data.length} bytes (limit ${MAX_CATALOG_BYTES})`);
  let json: unknown;
  try {
    json = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw new CatalogError(`not JSON: ${(e as Error).message}`);
  }
  const r = catalogSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new CatalogError(`${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  const c = r.data;
  const names = new Set<string>();
  for (const s of c.shards) {
    if (names.has(s.name)) throw new CatalogError(`shard ${s.name} listed twice`);
    names.add(s.name);
    if (s.generation > c.generation) throw new CatalogError(`shard ${s.name} of generation ${s.generation} is newer than the set (${c.generation})`);
  }
  return c;
}

export function serializeCatalog(c: Catalog): Buffer {
  return Buffer.from(JSON.stringify({ ...c, updated: new Date().toISOString() }, null, 1) + '\n');
}

export function shardName(generation: number, n: number): string {
  return `g${String(generation).padStart(6, '0')}-${String(n).padStart(6, '0')}.shard`;
}

interface RangedShard {
  shard: CatalogShard;
  first: Buffer;
  last: Buffer;
}

/**
 * Routing over a catalog: per generation (newest first) the shards sorted by range, and the
 * tombstones by path. Built once per catalog version.
 */
export class ShardRouter {
  readonly catalog: Catalog;
  /** Generations, newest first, each with its shards sorted by `first`. */
  private readonly generations: { generation: number; shards: RangedShard[] }[] = [];
  private readonly tombstones = new Map<string, number>();

  constructor(catalog: Catalog) {
    this.catalog = catalog;
    const byGen = new Map<number, RangedShard[]>();
    for (const s of catalog.shards) {
      if (s.entries === 0) continue;
      let l = byGen.get(s.generation);
      if (l === undefined) byGen.set(s.generation, (l = []));
      l.push({ shard: s, first: Buffer.from(s.first, 'utf8'), last: Buffer.from(s.last, 'utf8') });
    }
    for (const [generation, shards] of [...byGen].sort((a, b) => b[0] - a[0])) {
      shards.sort((a, b) => comparePathBytes(a.first, b.first));
      this.generations.push({ generation, shards });
    }
    for (const t of catalog.tombstones) this.tombstones.set(t.path, Math.max(t.generation, this.tombstones.get(t.path) ?? 0));
  }

  /** The shards that may hold `path`, newest generation first (at most one per generation). */
  route(path: Buffer): CatalogShard[] {
    const out: CatalogShard[] = [];
    for (const g of this.generations) {
      // Greatest first <= path.
      let lo = 0;
      let hi = g.shards.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (comparePathBytes((g.shards[mid] as RangedShard).first, path) <= 0) lo = mid + 1;
        else hi = mid;
      }
      const s = g.shards[lo - 1];
      if (s !== undefined && comparePathBytes(path, s.last) <= 0) out.push(s.shard);
    }
    return out;
  }

  /** Shards whose range meets [lo, hi) (byte order), newest generation first. */
  overlapping(lo: Buffer, hi: Buffer): CatalogShard[] {
    const out: CatalogShard[] = [];
    for (const g of this.generations) {
      for (const s of g.shards) {
        if (comparePathBytes(s.first, hi) < 0 && comparePathBytes(s.last, lo) >= 0) out.push(s.shard);
      }
    }
    return out;
  }

  /** An entry of generation `generation` at `path` is hidden by a tombstone at it or above it. */
  hidden(path: string, generation: number): boolean {
    if (this.tombstones.size === 0) return false;
    for (let p = path; p !== '/'; p = parentPath(p)) {
      const t = this.tombstones.get(p);
      if (t !== undefined && t >= generation) return true;
    }
    return false;
  }
}

/** The byte string just after every path below `dir` ('/' + 1 = '0'). */
export function subtreeBounds(dir: string): [Buffer, Buffer] {
  const base = dir === '/' ? '' : dir;
  return [Buffer.from(`${base}/`, 'utf8'), Buffer.from(`${base}0`, 'utf8')];
}
