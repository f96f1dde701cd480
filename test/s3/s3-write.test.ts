/**
 * S3 writes over a real s3rver: single PUT vs streaming multipart, bounded concurrency and memory,
 * nothing visible before commit, abort and failures leave no object and no upload, and recover()
 * aborts what a crashed writer left behind.
 */
import { existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CreateMultipartUploadCommand, ListObjectsV2Command, UploadPartCommand } from '@aws-sdk/client-s3';
import { S3Writer } from '../../backends/s3/writer.ts';
import { pattern, put, rejectsWith, useS3Env, type S3Env } from './fixture.ts';

const MiB = 1024 * 1024;
let env: S3Env;
useS3Env((e) => (env = e));

async function writeAll(w: { write(c: Uint8Array): Promise<void> }, data: Buffer, chunk = MiB): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) await w.write(data.subarray(off, Math.min(data.length, off + chunk)));
}

describe('S3 writes', () => {
  it('small files are one PutObject; large ones a multipart upload completed at commit', async () => {
    const b = env.backend({ partSize: 5 * MiB });
    env.proxy.resetLog();
    await put(b, '/small', 'tiny');
    expect(env.proxy.count('PutObject')).toBe(1);
    expect(env.proxy.count('CreateMultipartUpload')).toBe(0);
    env.proxy.resetLog();
    const data = pattern(12 * MiB + 123, 5);
    const w = await b.createWriter('/large', { sizeHint: data.length });
    await writeAll(w, data, 700 * 1024);
    const st = await w.commit();
    expect(st.size).toBe(data.length);
    expect(env.proxy.count('CreateMultipartUpload')).toBe(1);
    expect(env.proxy.count('UploadPart')).toBe(3);
    expect(env.proxy.count('CompleteMultipartUpload')).toBe(1);
    expect(env.proxy.count('PutObject')).toBe(0);
    expect((await env.rawGet(b.keys.fileKey('/large')))!.equals(data)).toBe(true);
    expect((await b.read('/large', 5 * MiB - 10, 20)).equals(data.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);
  });

  it('nothing is visible at the key while parts are uploading', async () => {
    const b = env.backend({ partSize: 5 * MiB });
    const w = await b.createWriter('/pending');
    await writeAll(w, pattern(11 * MiB, 6));
    // Two parts are out; the object does not exist for anyone yet.
    expect(await env.rawHead(b.keys.fileKey('/pending'))).toBe(false);
    const listed = await env.raw.send(new ListObjectsV2Command({ Bucket: env.s3.bucket, Prefix: b.keys.prefix }));
    expect(listed.Contents ?? []).toEqual([]);
    expect((await b.transport.listUploads(b.keys.prefix)).length).toBe(1);
    await w.commit();
    expect(await env.rawHead(b.keys.fileKey('/pending'))).toBe(true);
    expect((await b.transport.listUploads(b.keys.prefix)).length).toBe(0);
  });

  it('abort() leaves no object and no upload behind', async () => {
    const b = env.backend({ partSize: 5 * MiB });
    const w = await b.createWriter('/aborted');
    await writeAll(w, pattern(11 * MiB, 7));
    await w.abort();
    expect(await env.rawHead(b.keys.fileKey('/aborted'))).toBe(false);
    expect((await b.transport.listUploads(b.keys.prefix)).length).toBe(0);
    await rejectsWith(w.write(Buffer.from('x')), 'EBADF');
  });

  it('uploads at most maxConcurrentParts parts at once and write() waits for a slot', async () => {
    const b = env.backend({ partSize: 5 * MiB, maxConcurrentParts: 2 });
    let active = 0;
    let peak = 0;
    env.proxy.inject({
      kind: 'delay', ms: 120, times: Infinity,
      match: (r) => {
        if (r.op !== 'UploadPart') return false;
        active++;
        peak = Math.max(peak, active);
        setTimeout(() => active--, 120);
        return true;
      },
    });
    try {
      const data = pattern(26 * MiB, 8);
      const w = await b.createWriter('/bounded');
      await writeAll(w, data);
      await w.commit();
      expect(peak).toBeLessThanOrEqual(2);
      expect(env.proxy.count('UploadPart')).toBeGreaterThanOrEqual(6);
      expect((await env.rawGet(b.keys.fileKey('/bounded')))!.equals(data)).toBe(true);
    } finally {
      env.proxy.clearFaults();
    }
  });

  it('parts above memoryPartLimit are spooled to disk and the spool is cleaned', async () => {
    const spoolDir = env.tempDir();
    const b = env.backend({ partSize: 5 * MiB, memoryPartLimit: MiB, spoolDir });
    const data = pattern(12 * MiB, 9);
    const w = await b.createWriter('/spooled');
    await writeAll(w, data.subarray(0, 7 * MiB));
    expect(readdirSync(spoolDir).length).toBeGreaterThan(0);
    await writeAll(w, data.subarray(7 * MiB));
    await w.commit();
    expect(readdirSync(spoolDir)).toEqual([]);
    expect((await env.rawGet(b.keys.fileKey('/spooled')))!.equals(data)).toBe(true);
  });

  it('part sizes let 10,000 parts reach 5 TiB without a size hint, and fit a hinted size in 9,000', () => {
    const host = { partSize: 8 * MiB, baseMeta: () => new Promise<never>(() => undefined) } as unknown as ConstructorParameters<typeof S3Writer>[0];
    const unhinted = new S3Writer(host, { path: '/x', key: 'x', exclusive: false, mode: undefined, sizeHint: undefined });
    const size = (w: S3Writer, n: number): number => (w as unknown as { partSize(n: number): number }).partSize(n);
    let total = 0;
    for (let n = 1; n <= 10_000; n++) {
      const s = size(unhinted, n);
      expect(s).toBeLessThanOrEqual(5 * 1024 * MiB);
      total += s;
    }
    expect(total).toBeGreaterThanOrEqual(5 * 1024 ** 4);
    expect(size(unhinted, 1)).toBe(8 * MiB);
    expect(size(unhinted, 1001)).toBe(16 * MiB);
    const hint = 5 * 1024 ** 4;
    const hinted = new S3Writer(host, { path: '/x', key: 'x', exclusive: false, mode: undefined, sizeHint: hint });
    expect(size(hinted, 1) * 9000).toBeGreaterThanOrEqual(hint);
    expect(size(hinted, 9000)).toBe(size(hinted, 1));
  });

  it('a part that keeps failing fails the commit, aborts the upload and keeps the old content', async () => {
    const b = env.backend({ partSize: 5 * MiB, maxAttempts: 2, circuitFailureThreshold: 1000 });
    await put(b, '/kept', 'old content');
    env.proxy.inject({ kind: 'status500', times: Infinity, match: (r) => r.op === 'UploadPart' });
    try {
      const w = await b.createWriter('/kept');
      const failed = await (async () => {
        try {
          await writeAll(w, pattern(12 * MiB, 10));
          await w.commit();
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect((failed as { code?: string }).code).toBe('EIO');
    } finally {
      env.proxy.clearFaults();
    }
    expect((await env.rawGet(b.keys.fileKey('/kept')))?.toString()).toBe('old content');
    expect((await b.transport.listUploads(b.keys.prefix)).length).toBe(0);
  });

  it('recover() aborts the uploads a crashed writer left (journal), and old foreign ones', async () => {
    const stateDir = env.tempDir();
    const crashed = env.backend({ partSize: 5 * MiB, stateDir });
    const w = await crashed.createWriter('/half');
    await writeAll(w, pattern(11 * MiB, 11));
    // The process "dies" here: no commit, no abort. A foreign upload is left too.
    const prefix = crashed.keys.prefix;
    const foreign = await env.raw.send(new CreateMultipartUploadCommand({ Bucket: env.s3.bucket, Key: `${prefix}foreign` }));
    await env.raw.send(new UploadPartCommand({ Bucket: env.s3.bucket, Key: `${prefix}foreign`, UploadId: foreign.UploadId, PartNumber: 1, Body: Buffer.alloc(10) }));
    expect((await crashed.transport.listUploads(prefix)).length).toBe(2);
    const restarted = env.backend({ prefix, stateDir, direct: true });
    expect(await restarted.recover()).toBe(1);
    expect((await restarted.transport.listUploads(prefix)).map((u) => u.key)).toEqual([`${prefix}foreign`]);
    const strict = env.backend({ prefix, stateDir, direct: true, orphanUploadAgeMs: 0 });
    expect(await strict.recover()).toBe(1);
    expect(await strict.transport.listUploads(prefix)).toEqual([]);
    expect(await env.rawHead(`${prefix}half`)).toBe(false);
    expect(existsSync(stateDir)).toBe(true);
  });

  it('commit({mode}) after a multipart upload applies the metadata', async () => {
    const b = env.backend({ partSize: 5 * MiB });
    const w = await b.createWriter('/meta-big');
    const data = pattern(6 * MiB, 12);
    await writeAll(w, data);
    const st = await w.commit({ mode: 0o600, mtimeNs: 1_650_000_000_000_000_123n });
    expect(st).toMatchObject({ mode: 0o600, mtimeNs: 1_650_000_000_000_000_123n, size: data.length });
    expect((await env.rawGet(b.keys.fileKey('/meta-big')))!.equals(data)).toBe(true);
  });
});
