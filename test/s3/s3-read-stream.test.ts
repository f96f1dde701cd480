/**
 * The streaming side of the S3 read engine: GETs that hand blocks over as they complete and resume
 * after a cut body without fetching delivered blocks again, the read-ahead area that the LRU cannot
 * evict, and block buffers recycled under readInto() without ever changing bytes a caller holds.
 */
import { describe, expect, it } from 'vitest';
import { BlockPool, blockId } from '../../backends/s3/block-cache.ts';
import { pattern, useS3Env, type S3Env } from './fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;

let env: S3Env;
let prefix: string;
const SIZE = 4 * MiB;
const data = pattern(SIZE, 31);

useS3Env(async (e) => {
  env = e;
  prefix = env.freshPrefix();
  await env.rawPut(`${prefix}/obj.bin`, data);
});

const getRanges = (): string[] => env.proxy.log.filter((e) => e.op === 'GetObject').map((e) => e.range ?? '');

describe('S3 streaming reads', () => {
  it('a GET hands over each block as it completes; after a cut body only the missing blocks are asked again', async () => {
    const b = env.backend({ prefix, blockSize: BLOCK });
    const st = await b.stat('/obj.bin');
    env.proxy.resetLog();
    // The first response stops after one and a half blocks.
    env.proxy.inject({ kind: 'truncate', bytes: BLOCK + BLOCK / 2, match: (r) => r.op === 'GetObject' });
    const got: number[] = [];
    const pieces: Buffer[] = [];
    await b.transport.getStream(`${prefix}/obj.bin`, 0, 4 * BLOCK, BLOCK, st.nativeId, '/obj.bin', (k, buf) => {
      got.push(k);
      pieces[k] = buf;
    });
    expect(got).toEqual([0, 1, 2, 3]);
    expect(Buffer.concat(pieces).equals(data.subarray(0, 4 * BLOCK))).toBe(true);
    // Block 0 came from the cut response; the retry started at block 1.
    expect(getRanges()).toEqual([`bytes=0-${4 * BLOCK - 1}`, `bytes=${BLOCK}-${4 * BLOCK - 1}`]);
    expect(b.meters.local.bytesIn).toBe(4 * BLOCK);
  });

  it('sequential read-ahead uses few large GETs, and its blocks wait outside the LRU until read', async () => {
    // An LRU of 2 blocks and a window of 8: read-ahead blocks must not push each other out.
    const b = env.backend({ prefix, blockSize: BLOCK, memoryCacheBytes: 2 * BLOCK, readAheadMaxBytes: 8 * BLOCK, readAheadRunBytes: 8 * BLOCK });
    const f = await b.openFile('/obj.bin', { write: false });
    env.proxy.resetLog();
    for (let off = 0; off < SIZE; off += 16 * KiB) {
      const buf = await f.read(off, 16 * KiB);
      expect(buf.equals(data.subarray(off, off + 16 * KiB))).toBe(true);
    }
    await f.close();
    const bytes = env.proxy.bytes('GetObject');
    // Every byte fetched once, in GETs of up to 6 blocks (refills at a quarter of the window).
    expect(bytes).toBe(SIZE);
    const n = getRanges().length;
    expect(n).toBeLessThan(SIZE / BLOCK / 3);
    expect(b.memory.bytes).toBeLessThanOrEqual(2 * BLOCK + 8 * BLOCK);
  });

  it('block buffers are recycled under concurrent readers, and buffers returned by read() keep their bytes', async () => {
    // A tiny LRU forces evictions (and recycling) all the time.
    const b = env.backend({ prefix, blockSize: BLOCK, memoryCacheBytes: 2 * BLOCK, readAheadMaxBytes: 4 * BLOCK });
    const viewer = await b.openFile('/obj.bin', { write: false });
    const views: { off: number; buf: Buffer }[] = [];
    for (const off of [0, 5 * BLOCK + 17, 40 * BLOCK + 3]) views.push({ off, buf: await viewer.read(off, 1000) });
    const streams = await Promise.all([0, 1, 2].map(() => b.openFile('/obj.bin', { write: false })));
    const target = streams.map(() => Buffer.alloc(24 * KiB));
    // Three sequential readers interleaved, plus random reads into a fourth buffer.
    const random = Buffer.alloc(3000);
    let seed = 7;
    const step = 24 * KiB;
    for (let off = 0; off < SIZE; off += step) {
      await Promise.all(streams.map(async (s, i) => {
        const at = (off + i * 7 * BLOCK) % SIZE;
        const n = await s.readInto!(at, target[i] as Buffer);
        expect(n).toBe(Math.min(step, SIZE - at));
        expect((target[i] as Buffer).subarray(0, n).equals(data.subarray(at, at + n))).toBe(true);
      }));
      seed = (seed * 1103515245 + 12345) >>> 0;
      const at = seed % (SIZE - random.length);
      await viewer.readInto!(at, random);
      expect(random.equals(data.subarray(at, at + random.length))).toBe(true);
    }
    for (const v of views) expect(v.buf.equals(data.subarray(v.off, v.off + 1000))).toBe(true);
    for (const s of [...streams, viewer]) await s.close();
  });

  it('views of disk-tier blocks returned by read() keep their bytes while the pool recycles S3 blocks', async () => {
    const cacheDir = env.tempDir();
    const warm = env.backend({ prefix, blockSize: BLOCK, cacheDir });
    const f0 = await warm.openFile('/obj.bin', { write: false });
    for (let off = 0; off < 8 * BLOCK; off += BLOCK) await f0.read(off, BLOCK);
    await f0.close();
    await warm.close();
    // A restart: blocks 0..7 come from disk (views), the rest from S3 through a tiny LRU.
    const b = env.backend({ prefix, blockSize: BLOCK, cacheDir, memoryCacheBytes: 2 * BLOCK, readAheadMaxBytes: 4 * BLOCK });
    const f = await b.openFile('/obj.bin', { write: false });
    const kept: { off: number; buf: Buffer }[] = [];
    for (let off = 0; off < SIZE; off += BLOCK / 2) {
      const buf = await f.read(off, BLOCK / 2);
      expect(buf.equals(data.subarray(off, off + BLOCK / 2))).toBe(true);
      if (off % (5 * BLOCK) === 0) kept.push({ off, buf });
    }
    expect(b.meters.local.hits.disk).toBeGreaterThan(0);
    for (const k of kept) expect(k.buf.equals(data.subarray(k.off, k.off + BLOCK / 2))).toBe(true);
    await f.close();
  });

  it('read-ahead of a reader that goes away gives its budget back: at close, on a seek, or after a while', async () => {
    const b = env.backend({ prefix, blockSize: BLOCK, readAheadMaxBytes: 4 * BLOCK });
    const st = await b.stat('/obj.bin');
    const id = (i: number): string => blockId(BLOCK, { key: `${prefix}/obj.bin`, etag: st.nativeId!, index: i });
    const landed = async (): Promise<void> => {
      for (let i = 0; i < 200 && b.memory.aheadBytes === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(b.memory.aheadBytes).toBeGreaterThan(0);
    };
    const walk = async (f: Awaited<ReturnType<typeof b.openFile>>, from: number): Promise<void> => {
      for (let off = from; off < from + 4 * BLOCK; off += BLOCK) await f.read(off, BLOCK);
    };
    // Still open, not read for a while: the stale rule moves its blocks to the LRU.
    const f = await b.openFile('/obj.bin', { write: false });
    await walk(f, 0);
    await landed();
    const ahead = b.memory.aheadBytes;
    expect(b.memory.demoteStale(60_000)).toBe(0);
    expect(b.memory.demoteStale(0)).toBe(ahead);
    expect(b.memory.aheadBytes).toBe(0);
    expect(b.memory.has(id(4))).toBe(true);
    // A seek elsewhere: the old position's read-ahead is let go at once.
    await walk(f, 20 * BLOCK);
    await landed();
    await f.read(50 * BLOCK + 5, 100);
    expect(b.memory.aheadBytes).toBe(0);
    // Close: the same.
    await walk(f, 30 * BLOCK);
    await landed();
    await f.close();
    expect(b.memory.aheadBytes).toBe(0);
    expect(b.memory.has(id(34))).toBe(true);
  });

  it('a long read-ahead GET holds its body back while the budget is full and goes on as the reader reads', async () => {
    // Budget: 4 blocks + 1; a GET may ask for 32 blocks at once.
    const b = env.backend({ prefix, blockSize: BLOCK, readAheadMaxBytes: 4 * BLOCK, readAheadRunBytes: 32 * BLOCK });
    const f = await b.openFile('/obj.bin', { write: false });
    env.proxy.resetLog();
    for (let off = 0; off < 8 * BLOCK; off += BLOCK) expect((await f.read(off, BLOCK)).equals(data.subarray(off, off + BLOCK))).toBe(true);
    // The reader pauses: read-ahead lands up to the budget, no further.
    await new Promise((r) => setTimeout(r, 300));
    expect(b.memory.aheadBytes).toBeLessThanOrEqual(5 * BLOCK);
    // Reading on releases it: the rest of the object comes through the same few GETs.
    for (let off = 8 * BLOCK; off < SIZE; off += BLOCK) expect((await f.read(off, BLOCK)).equals(data.subarray(off, off + BLOCK))).toBe(true);
    await f.close();
    expect(env.proxy.bytes('GetObject')).toBe(SIZE);
    expect(getRanges().length).toBeLessThanOrEqual(6);
  });
});

describe('BlockPool', () => {
  it('reuses a released block only once every operation older than the release has left', () => {
    const pool = new BlockPool(65536, 4);
    const a = pool.take(65536);
    const op = pool.enter();
    pool.release(a);
    // The operation may still copy out of `a`.
    expect(pool.take(65536)).not.toBe(a);
    pool.leave(op);
    expect(pool.take(65536)).toBe(a);
    // Released twice by mistake: handed out once.
    pool.release(a);
    pool.release(a);
    const x = pool.take(65536);
    const y = pool.take(65536);
    expect(x === a && y === a).toBe(false);
  });

  it('never reuses a block a view was returned of, even when the view was taken after its release', () => {
    const pool = new BlockPool(65536, 4);
    const a = pool.take(65536);
    const op = pool.enter();
    pool.release(a);
    pool.exportView(a);
    pool.leave(op);
    expect(pool.take(65536)).not.toBe(a);
    const b = pool.take(65536);
    pool.exportView(b);
    pool.release(b);
    expect(pool.take(65536)).not.toBe(b);
  });

  it('keeps at most its bound and only buffers of its size that own their memory', () => {
    const pool = new BlockPool(65536, 2);
    const bufs = [pool.take(65536), pool.take(65536), pool.take(65536)];
    for (const b of bufs) pool.release(b);
    const again = [pool.take(65536), pool.take(65536), pool.take(65536)];
    expect(again.filter((b) => bufs.includes(b)).length).toBe(2);
    const slice = Buffer.allocUnsafe(131072).subarray(0, 65536);
    pool.release(slice);
    expect(pool.take(65536)).not.toBe(slice);
    const odd = pool.take(100);
    expect(odd.length).toBe(100);
  });
});
