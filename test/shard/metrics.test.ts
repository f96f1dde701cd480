/**
 * Shard share metrics on the gateway's /metrics (backends/shard/metrics.ts), scraped over HTTP from
 * the admin endpoint after real WebDAV reads: file reads by source (store, then cache when read
 * again, chunked for a large file), index loads and cache hits and bytes, the catalog's generation
 * and files; on an S3 set the S3 transport's GetObject count beside the reads (requests per read);
 * a corrupted payload bumps the integrity-failure counter of its share only.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from '../../backends/shard/pack.ts';
import { ShardSetReader } from '../../backends/shard/set-reader.ts';
import { LocalShardStore, openShardStore } from '../../backends/shard/store.ts';
import { freePort } from '../cli/helpers.ts';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { dav, startDav, type DavStack } from '../webdav/helpers.ts';
import { makeTree, type TreeFile } from './tree.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-metrics-'));
let files: TreeFile[];
let s3: S3rverHandle;
let stack: DavStack;
let adminPort: number;

const enc = (p: string): string => p.split('/').map(encodeURIComponent).join('/');

beforeAll(async () => {
  ({ files } = makeTree(join(tmp, 'src'), 150, { seed: 91, large: 1 }));
  await pack(join(tmp, 'src'), new LocalShardStore(join(tmp, 'set')), { shardSize: 256 * 1024, workers: 0 });
  cpSync(join(tmp, 'set'), join(tmp, 'bad'), { recursive: true });
  s3 = await startS3rver();
  const store = await openShardStore(`s3://${s3.bucket}/set`, { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS });
  await pack(join(tmp, 'src'), store, { shardSize: 24 * 1024 * 1024, workers: 0 });
  await store.close();
  adminPort = await freePort();
  stack = await startDav({
    shares: [
      { name: 'shard', source: `shard+${pathToFileURL(join(tmp, 'set')).href}` },
      { name: 'bad', source: `shard+${pathToFileURL(join(tmp, 'bad')).href}` },
      { name: 's3shard', source: `shard+s3://${s3.bucket}/set`, options: { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS } },
    ],
    config: { 'admin.port': adminPort, 'admin.listen': '127.0.0.1' },
  });
  await stack.addUser(...ALICE);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** GET /metrics from the admin endpoint; `name{labels}` → value for the shard and S3 series. */
async function scrape(): Promise<Map<string, number>> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  expect(r.status).toBe(200);
  const m = new Map<string, number>();
  for (const line of (await r.text()).split('\n')) {
    const x = /^(portico_(?:shard|s3)_[a-z_]+\{[^}]*\}) (\S+)$/.exec(line);
    if (x) m.set(x[1]!, Number(x[2]));
  }
  return m;
}

async function get(share: string, f: TreeFile): Promise<void> {
  const r = await dav(stack, 'GET', `/${share}${enc(f.path)}`, { auth: ALICE });
  expect(r.status, f.path).toBe(200);
  expect(r.body.equals(f.data), f.path).toBe(true);
}

describe('shard metrics on /metrics', () => {
  it('reads over WebDAV move the read, index and cache series of their share', async () => {
    const small = files.filter((f) => f.data.length > 0 && f.data.length < 64 * 1024).slice(0, 40);
    const m0 = await scrape();
    const reads = (m: Map<string, number>, from: string, b = 'shard'): number => m.get(`portico_shard_file_reads_total{backend="${b}",from="${from}"}`) ?? 0;
    for (const f of small) await get('shard', f);
    const m1 = await scrape();
    expect(reads(m1, 'store') - reads(m0, 'store')).toBe(small.length);
    // Again: the decoded-file cache answers, nothing from the store.
    for (const f of small) await get('shard', f);
    const m2 = await scrape();
    expect(reads(m2, 'store')).toBe(reads(m1, 'store'));
    expect(reads(m2, 'cache') - reads(m1, 'cache')).toBe(small.length);
    // The large file is chunked.
    await get('shard', files.find((f) => f.path.startsWith('/large'))!);
    expect(reads(await scrape(), 'chunked')).toBeGreaterThan(reads(m2, 'chunked'));
    const shards = JSON.parse(readFileSync(join(tmp, 'set', 'catalog.json'), 'utf8')).shards.length as number;
    expect(m2.get('portico_shard_index_loads_total{backend="shard"}')).toBeGreaterThan(0);
    expect(m2.get('portico_shard_index_loads_total{backend="shard"}')).toBeLessThanOrEqual(shards);
    expect(m2.get('portico_shard_index_cache_hits_total{backend="shard"}')).toBeGreaterThan(m1.get('portico_shard_index_cache_hits_total{backend="shard"}')!);
    expect(m2.get('portico_shard_index_cache_bytes{backend="shard"}')).toBeGreaterThan(0);
    expect(m2.get('portico_shard_index_cache_limit_bytes{backend="shard"}')).toBe(256 * 1024 * 1024);
    expect(m2.get('portico_shard_data_cache_bytes{backend="shard"}')).toBeGreaterThan(0);
    expect(m2.get('portico_shard_catalog_generation{backend="shard"}')).toBe(1);
    expect(m2.get('portico_shard_files{backend="shard"}')).toBe(files.length);
    expect(m2.get('portico_shard_integrity_failures_total{backend="shard",part="payload"}')).toBe(0);
  });

  it('an S3 set: GetObject requests per store read, beside the reads', async () => {
    const small = files.filter((f) => f.data.length > 100 && f.data.length < 16 * 1024).slice(0, 30);
    const getObjects = (m: Map<string, number>): number => m.get('portico_s3_requests_total{backend="s3shard",op="GetObject",status="ok"}') ?? 0;
    // The first read loads the catalog and the index.
    await get('s3shard', small[0]!);
    const m0 = await scrape();
    for (const f of small.slice(1)) await get('s3shard', f);
    const m1 = await scrape();
    const storeReads = (m1.get('portico_shard_file_reads_total{backend="s3shard",from="store"}') ?? 0) - (m0.get('portico_shard_file_reads_total{backend="s3shard",from="store"}') ?? 0);
    expect(storeReads).toBe(small.length - 1);
    const perRead = (getObjects(m1) - getObjects(m0)) / storeReads;
    // One ranged GET per lone read at most; neighbours share pages or the blocks of the tail read.
    expect(perRead).toBeLessThanOrEqual(1);
    expect(m1.get('portico_shard_index_loads_total{backend="s3shard"}')).toBe(1);
  });

  it('a corrupted payload bumps the integrity-failure counter of its share only', async () => {
    const reader = new ShardSetReader(new LocalShardStore(join(tmp, 'bad')));
    const victim = files.find((f) => f.data.length > 1000 && f.path.endsWith('.txt'))!;
    const l = (await reader.lookup(victim.path))!;
    const file = join(tmp, 'bad', 'shards', l.shard.name);
    const b = readFileSync(file);
    b.writeUInt8(b[l.entry.offset + 5]! ^ 0x08, l.entry.offset + 5);
    writeFileSync(file, b);
    const key = (share: string): string => `portico_shard_integrity_failures_total{backend="${share}",part="payload"}`;
    const m0 = await scrape();
    const r = await dav(stack, 'GET', `/bad${enc(victim.path)}`, { auth: ALICE }).catch((e: unknown) => ({ status: 0, body: Buffer.alloc(0), error: e }));
    expect(r.status === 0 || r.status >= 500, String(r.status)).toBe(true);
    const m1 = await scrape();
    expect(m1.get(key('bad'))! - (m0.get(key('bad')) ?? 0)).toBe(1);
    expect(m1.get(key('shard'))).toBe(0);
    expect(m1.get(key('s3shard'))).toBe(0);
  });
});
