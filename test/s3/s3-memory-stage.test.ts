/**
 * Memory write stages (WriteStage.inMemory, src/vfs/write-stage.ts) on S3: a small staged PUT of an
 * async share keeps its content in memory (no temp file: it is journaled with the record and
 * uploaded from memory); past its limit, or when it must be on disk (sync, persist, truncate), it
 * spills to its temp file and goes on as a file stage, bytes in order. Real s3rver.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { WriteStage } from '../../src/vfs/write-stage.ts';
import { pattern, useS3Env, type S3Env } from './fixture.ts';

let env: S3Env;
useS3Env((e) => (env = e));

const LIMIT = 64 * 1024;

async function stored(b: S3Backend, path: string): Promise<Buffer | undefined> {
  return env.rawGet(b.keys.fileKey(path));
}

const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

describe('memory write stage', () => {
  it('small content: no temp file, reads and publish from memory, discard leaves nothing', async () => {
    const b = env.backend();
    const dir = join(env.tempDir(), 'stage');
    const stage = WriteStage.inMemory(dir, b, '/m/small.bin', LIMIT);
    const body = pattern(4096, 3);
    await stage.writev(0, [body.subarray(0, 1000), body.subarray(1000)]);
    await stage.write(10, Buffer.from('xyz'));
    body.write('xyz', 10);
    expect(stage.inMemoryOnly).toBe(true);
    expect(files(dir)).toEqual([]);
    expect((await stage.read(0, 10_000)).equals(body)).toBe(true);
    const into = Buffer.alloc(100);
    expect(await stage.readInto(4000, into)).toBe(96);
    expect(into.subarray(0, 96).equals(body.subarray(4000))).toBe(true);
    const snap = stage.snapshot();
    expect(snap).toMatchObject({ mode: 'whole', size: 4096, base: null });
    await b.mkdir('/m');
    const st = await stage.publish();
    expect(st?.size).toBe(4096);
    expect(stage.dirty).toBe(false);
    expect((await stored(b, '/m/small.bin'))!.equals(body)).toBe(true);
    await stage.discard();
    expect(files(dir)).toEqual([]);
  });

  it('a writev of many chunks grows the buffer on the way; up to exactly the limit stays in memory', async () => {
    const b = env.backend();
    const dir = join(env.tempDir(), 'stage');
    const stage = WriteStage.inMemory(dir, b, '/g/exact.bin', LIMIT);
    const body = pattern(LIMIT, 11);
    // 3000-byte chunks: the buffer grows (4 KiB, 8, 16, ...) in the middle of each writev.
    const chunks: Buffer[] = [];
    for (let off = 0; off < LIMIT; off += 3000) chunks.push(body.subarray(off, Math.min(LIMIT, off + 3000)));
    await stage.writev(0, chunks.slice(0, 7));
    await stage.writev(7 * 3000, chunks.slice(7));
    expect(stage.inMemoryOnly).toBe(true);
    expect((await stage.read(0, LIMIT + 10)).equals(body)).toBe(true);
    await b.mkdir('/g');
    await stage.publish();
    expect((await stored(b, '/g/exact.bin'))!.equals(body)).toBe(true);
    await stage.discard();
  });

  it('spills to its temp file past the limit, with every byte in order (writes not awaited one by one)', async () => {
    const b = env.backend();
    const dir = join(env.tempDir(), 'stage');
    const stage = WriteStage.inMemory(dir, b, '/m2/big.bin', LIMIT);
    const body = pattern(3 * LIMIT, 5);
    // Issued together: the first two fit in memory, the third spills, the fourth follows the spill.
    await Promise.all([
      stage.write(0, body.subarray(0, 1000)),
      stage.write(1000, body.subarray(1000, LIMIT)),
      stage.writev(LIMIT, [body.subarray(LIMIT, 2 * LIMIT)]),
      stage.write(2 * LIMIT, body.subarray(2 * LIMIT)),
    ]);
    expect(stage.inMemoryOnly).toBe(false);
    expect(stage.size).toBe(body.length);
    expect(files(dir)).toHaveLength(1);
    expect(readFileSync(join(dir, files(dir)[0]!)).equals(body)).toBe(true);
    expect((await stage.read(0, body.length)).equals(body)).toBe(true);
    await b.mkdir('/m2');
    await stage.publish();
    expect((await stored(b, '/m2/big.bin'))!.equals(body)).toBe(true);
    await stage.discard();
    expect(files(dir)).toEqual([]);
  });

  it('sync(), persist() and truncate() put a memory stage on disk (the snapshot names that file)', async () => {
    const b = env.backend();
    const dir = join(env.tempDir(), 'stage');
    const body = pattern(5000, 9);
    const synced = WriteStage.inMemory(dir, b, '/s/a', LIMIT);
    await synced.write(0, body);
    await synced.sync();
    expect(synced.inMemoryOnly).toBe(false);
    expect(readFileSync(synced.snapshot().file).equals(body)).toBe(true);
    const persisted = WriteStage.inMemory(dir, b, '/s/b', LIMIT);
    await persisted.write(0, body);
    await persisted.persist();
    expect(readFileSync(persisted.snapshot().file).equals(body)).toBe(true);
    const cut = WriteStage.inMemory(dir, b, '/s/c', LIMIT);
    await cut.write(0, body);
    await cut.truncate(100);
    await cut.truncate(200);
    const want = Buffer.concat([body.subarray(0, 100), Buffer.alloc(100)]);
    expect((await cut.read(0, 1000)).equals(want)).toBe(true);
    expect(readFileSync(cut.snapshot().file).equals(want)).toBe(true);
    // A restore over the spilled file reads the same content.
    const back = WriteStage.restore(dir, b, '/s/c', cut.snapshot());
    expect((await back.read(0, 1000)).equals(want)).toBe(true);
    for (const s of [synced, persisted, cut, back]) await s.discard();
    expect(files(dir)).toEqual([]);
  });
});
