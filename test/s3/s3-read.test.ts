/**
 * The S3 read engine over a real s3rver, counting requests and bytes at a proxy: ranged block
 * reads, read-ahead, both cache tiers (including restart and corruption), single flight,
 * foreground priority and ETag invalidation.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { blockId } from '../../backends/s3/block-cache.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { pattern, put, useS3Env, type S3Env } from './fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 256 * KiB;

let env: S3Env;
/** A 64 MiB object shared by the tests that only read it. */
let bigPrefix: string;
const BIG = 64 * MiB;
const bigData = pattern(BIG, 7);

useS3Env(async (e) => {
  env = e;
  bigPrefix = env.freshPrefix();
  await env.rawPut(`${bigPrefix}/big.bin`, bigData);
});

const gets = (): { start: number; end: number }[] =>
  env.proxy.log.filter((e) => e.op === 'GetObject').map((e) => {
    const m = /bytes=(\d+)-(\d+)/.exec(e.range ?? '');
    return { start: Number(m?.[1]), end: Number(m?.[2]) + 1 };
  });

async function settle(): Promise<void> {
  // Let background read-ahead reach the proxy.
  let n = -1;
  while (n !== env.proxy.log.length) {
    n = env.proxy.log.length;
    await new Promise((r) => setTimeout(r, 60));
  }
}

describe('S3 reads', () => {
  it('a read at the end of a large object fetches only the block holding it', async () => {
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK });
    env.proxy.resetLog();
    const off = 60 * MiB + 1000;
    const got = await b.read('/big.bin', off, 4096);
    expect(got.equals(bigData.subarray(off, off + 4096))).toBe(true);
    await settle();
    // One GET: the 128 KiB page of a random read, inside the block holding the offset.
    const g = gets();
    expect(g.length).toBe(1);
    expect(g[0]!.start).toBeLessThanOrEqual(off);
    expect(g[0]!.end).toBeGreaterThanOrEqual(off + 4096);
    expect(g[0]!.start).toBeGreaterThanOrEqual(60 * MiB);
    expect(env.proxy.bytes('GetObject')).toBe(128 * KiB);
    // Nothing was known about the file: the page's GET was its lookup too (no HEAD).
    expect(env.proxy.count('HeadObject')).toBe(0);
    // Random reads elsewhere: one block each, no read-ahead.
    env.proxy.resetLog();
    for (const o of [5 * MiB, 33 * MiB + 7, 12 * MiB]) await b.read('/big.bin', o, 100);
    await settle();
    expect(gets().length).toBe(3);
  });

  it('sequential reads grow a read-ahead window up to its maximum, and read-ahead blocks are hits', async () => {
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK, readAheadMaxBytes: 4 * BLOCK });
    const f = await b.openFile('/big.bin', { write: false });
    env.proxy.resetLog();
    const first = await f.read(0, 64 * KiB);
    expect(first.equals(bigData.subarray(0, 64 * KiB))).toBe(true);
    await settle();
    // Block 0, plus a one-block window.
    expect(gets().map((g) => g.start / BLOCK)).toEqual([0, 1]);
    const chunk = 64 * KiB;
    for (let off = chunk; off < 8 * BLOCK; off += chunk) {
      const got = await f.read(off, chunk);
      expect(got.equals(bigData.subarray(off, off + chunk))).toBe(true);
    }
    await settle();
    const blocks = gets().map((g) => g.start / BLOCK);
    // Each block fetched once; never more than the 4-block window past what was read.
    expect(new Set(blocks).size).toBe(blocks.length);
    expect(Math.max(...blocks)).toBeLessThanOrEqual(7 + 4);
    expect(b.meters.local.readAheadHits).toBeGreaterThanOrEqual(5);
    await f.close();
  });

  it('the memory tier serves repeated reads and evicts beyond its byte bound', async () => {
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK, randomReadSize: BLOCK, memoryCacheBytes: 2 * BLOCK });
    env.proxy.resetLog();
    await b.read('/big.bin', 10 * MiB, 10);
    await b.read('/big.bin', 10 * MiB + 5, 10);
    expect(gets().length).toBe(1);
    expect(b.meters.local.hits.memory).toBeGreaterThanOrEqual(1);
    for (const o of [20, 30, 40]) await b.read('/big.bin', o * MiB, 10);
    expect(b.memory.bytes).toBeLessThanOrEqual(2 * BLOCK);
    expect(b.meters.local.evictions.memory).toBeGreaterThanOrEqual(2);
    env.proxy.resetLog();
    await b.read('/big.bin', 10 * MiB, 10);
    expect(gets().length).toBe(1);
  });

  it('concurrent readers of one block share one GET', async () => {
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK });
    await b.stat('/big.bin');
    env.proxy.resetLog();
    env.proxy.inject({ kind: 'delay', ms: 150, match: (r) => r.op === 'GetObject' });
    const reads = await Promise.all(Array.from({ length: 10 }, (_, i) => b.read('/big.bin', 3 * MiB + i * 1000, 500)));
    reads.forEach((r, i) => expect(r.equals(bigData.subarray(3 * MiB + i * 1000, 3 * MiB + i * 1000 + 500))).toBe(true));
    expect(gets().length).toBe(1);
  });

  it('foreground reads overtake queued read-ahead', async () => {
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK, maxConcurrentFetches: 4, readAheadMaxBytes: 32 * BLOCK, readAheadRunBytes: BLOCK });
    const f = await b.openFile('/big.bin', { write: false });
    env.proxy.inject({ kind: 'delay', ms: 80, times: Infinity, match: (r) => r.op === 'GetObject' });
    try {
      // Walk sequentially so the window opens wide and read-ahead queues up behind the slots.
      for (let i = 0; i < 5; i++) await f.read(i * BLOCK, BLOCK);
      env.proxy.resetLog();
      const far = 200;
      const got = await b.read('/big.bin', far * BLOCK, 10);
      expect(got.equals(bigData.subarray(far * BLOCK, far * BLOCK + 10))).toBe(true);
      await settle();
      const order = gets().map((g) => g.start / BLOCK);
      const farAt = order.indexOf(far);
      expect(farAt).toBeGreaterThanOrEqual(0);
      // Read-ahead blocks were already queued, yet some of them went out after the foreground GET.
      expect(order.slice(farAt + 1).some((blk) => blk < far)).toBe(true);
    } finally {
      env.proxy.clearFaults();
      await f.close();
    }
  });

  it('a changed ETag invalidates cached blocks (Backend.read with TTL 0, and an open file)', async () => {
    const b = env.backend({ blockSize: 4096, metaTtlMs: 0 });
    const v1 = pattern(3 * 4096, 1);
    await put(b, '/f', v1);
    const k = b.keys.fileKey('/f');
    const etag1 = (await b.stat('/f')).nativeId!;
    expect((await b.read('/f', 0, 100)).equals(v1.subarray(0, 100))).toBe(true);
    expect(b.memory.has(blockId(4096, { key: k, etag: etag1, index: 0 }))).toBe(true);
    const v2 = pattern(3 * 4096 + 10, 2);
    await env.rawPut(k, v2);
    expect((await b.read('/f', 0, 100)).equals(v2.subarray(0, 100))).toBe(true);
    expect(b.memory.has(blockId(4096, { key: k, etag: etag1, index: 0 }))).toBe(false);
    // An open file notices when a block it has to fetch comes back with another ETag.
    const f = await b.openFile('/f', { write: false });
    expect((await f.read(0, 10)).equals(v2.subarray(0, 10))).toBe(true);
    const v3 = pattern(3 * 4096 + 10, 3);
    await env.rawPut(k, v3);
    expect((await f.read(2 * 4096, 10)).equals(v3.subarray(2 * 4096, 2 * 4096 + 10))).toBe(true);
    expect((await f.read(0, 10)).equals(v3.subarray(0, 10))).toBe(true);
    expect((await f.stat()).nativeId).not.toBe(etag1);
    await f.close();
  });

  it('the disk tier survives a restart and serves blocks without GETs', async () => {
    const cacheDir = env.tempDir();
    const prefix = env.freshPrefix();
    const data = pattern(MiB, 11);
    await env.rawPut(`${prefix}/f.bin`, data);
    const a = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    expect((await a.read('/f.bin', 0, MiB)).equals(data)).toBe(true);
    await a.close();
    const b = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    env.proxy.resetLog();
    expect((await b.read('/f.bin', 0, MiB)).equals(data)).toBe(true);
    expect(gets().length).toBe(0);
    expect(b.meters.local.hits.disk).toBe(4);
    // A new version (another ETag) is never served from the old blocks.
    const data2 = pattern(MiB, 12);
    await env.rawPut(`${prefix}/f.bin`, data2);
    const c = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    expect((await c.read('/f.bin', 0, MiB)).equals(data2)).toBe(true);
    expect(gets().length).toBe(4);
  });

  it('a corrupt disk block is detected by its checksum, dropped and fetched again', async () => {
    const cacheDir = env.tempDir();
    const prefix = env.freshPrefix();
    const data = pattern(2 * BLOCK, 21);
    await env.rawPut(`${prefix}/f.bin`, data);
    const a = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    await a.read('/f.bin', 0, 2 * BLOCK);
    await a.disk!.flush();
    const st = await a.stat('/f.bin');
    const file = a.disk!.pathOf(blockId(BLOCK, { key: `${prefix}/f.bin`, etag: st.nativeId!, index: 1 }))!;
    await a.close();
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff;
    writeFileSync(file, bytes);
    const b = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    env.proxy.resetLog();
    expect((await b.read('/f.bin', 0, 2 * BLOCK)).equals(data)).toBe(true);
    expect(b.meters.local.corruptions).toBe(1);
    expect(gets()).toEqual([{ start: BLOCK, end: 2 * BLOCK }]);
    await b.disk!.flush();
    // Rewritten good copy.
    expect(readFileSync(file).subarray(-BLOCK).equals(data.subarray(BLOCK))).toBe(true);
  });

  it('the disk tier stays within its byte bound, evicting least recently used blocks', async () => {
    const cacheDir = env.tempDir();
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK, randomReadSize: BLOCK, cacheDir, diskCacheBytes: 2.5 * BLOCK, memoryCacheBytes: BLOCK });
    for (const o of [1, 2, 3, 4]) {
      await b.read('/big.bin', o * MiB, 10);
      await b.disk!.flush();
    }
    expect(b.disk!.bytes).toBeLessThanOrEqual(2.5 * BLOCK);
    expect(b.meters.local.evictions.disk).toBeGreaterThanOrEqual(2);
    const files = readdirSync(cacheDir, { recursive: true }).map(String).filter((f) => f.endsWith('.blk'));
    expect(files.length).toBe(2);
    const total = files.reduce((n, f) => n + statSync(join(cacheDir, f)).size, 0);
    expect(total).toBeLessThanOrEqual(2.5 * BLOCK);
  });

  it('exports S3 request, cache tier and read-ahead metrics', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const b = env.backend({ prefix: bigPrefix, blockSize: BLOCK, metrics, metricsLabel: 'share1' });
    const f = await b.openFile('/big.bin', { write: false });
    for (let off = 0; off < 4 * BLOCK; off += 64 * KiB) await f.read(off, 64 * KiB);
    await f.close();
    const text = await metrics.metricsText();
    expect(text).toMatch(/portico_s3_requests_total\{backend="share1",op="GetObject",status="ok"\} [1-9]/);
    expect(text).toMatch(/portico_s3_request_duration_seconds_count\{backend="share1",op="HeadObject"\} 1/);
    expect(text).toMatch(/portico_s3_bytes_total\{backend="share1",direction="in"\} \d+/);
    expect(text).toMatch(/portico_cache_hits_total\{cache="share1\/s3-block-memory"\} \d+/);
    expect(text).toMatch(/portico_cache_misses_total\{cache="share1\/s3-block-memory"\} \d+/);
    expect(text).toMatch(/portico_readahead_hits_total\{backend="share1"\} [1-9]/);
    expect(text).toMatch(/portico_s3_circuit_state\{backend="share1"\} 0/);
  });
});
