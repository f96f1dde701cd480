/**
 * Failure handling through a fault-injecting proxy in front of a real s3rver: retried 500s,
 * SlowDown, dropped connections and cut bodies; EIO / ETIMEDOUT after bounded retries; the circuit
 * breaker failing fast and recovering; and no acknowledged or partial data, ever.
 */
import { describe, expect, it } from 'vitest';
import { makeVfsEnv, RO, RW } from '../helpers/vfs-env.ts';
import { pattern, put, rejectsWith, useS3Env, text, type S3Env } from './fixture.ts';

const MiB = 1024 * 1024;
let env: S3Env;
useS3Env((e) => (env = e));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('S3 failures', () => {
  it('500 InternalError, 503 SlowDown and dropped connections are retried until they succeed', async () => {
    const b = env.backend();
    await b.mkdir('/d');
    env.proxy.resetLog();
    env.proxy.inject({ kind: 'drop', match: (r) => r.op === 'PutObject' });
    env.proxy.inject({ kind: 'status500', times: 2, match: (r) => r.op === 'HeadObject' });
    await put(b, '/d/f', 'payload');
    env.proxy.inject({ kind: 'slowdown', times: 2, match: (r) => r.op === 'GetObject' });
    env.proxy.inject({ kind: 'status500', match: (r) => r.op === 'ListObjectsV2' });
    const fresh = env.backend({ prefix: b.keys.prefix });
    expect(await text(fresh, '/d/f')).toBe('payload');
    expect((await fresh.list('/d', { limit: 10 })).entries.map((e) => e.name)).toEqual(['f']);
    expect(env.proxy.log.filter((e) => e.status === 500 || e.status === 503 || e.status === 'dropped').length).toBe(6);
    expect(b.meters.local.retries + fresh.meters.local.retries).toBe(6);
  });

  it('a body cut short is detected and fetched again; the data returned is exact', async () => {
    const b = env.backend({ blockSize: 256 * 1024 });
    const data = pattern(MiB, 31);
    await env.rawPut(`${b.keys.prefix}f.bin`, data);
    await b.stat('/f.bin');
    env.proxy.resetLog();
    env.proxy.inject({ kind: 'truncate', bytes: 1000, match: (r) => r.op === 'GetObject' });
    expect((await b.read('/f.bin', 5, 100_000)).equals(data.subarray(5, 100_005))).toBe(true);
    expect(env.proxy.count('GetObject')).toBe(2);
    // A listing cut mid-XML, or answered 200 with garbled XML, is retried as well.
    env.proxy.inject({ kind: 'truncate', bytes: 50, match: (r) => r.op === 'ListObjectsV2' });
    env.proxy.inject({ kind: 'garbage', match: (r) => r.op === 'ListObjectsV2' });
    env.proxy.resetLog();
    expect((await b.list('/', { limit: 10 })).entries.map((e) => e.name)).toEqual(['f.bin']);
    expect(env.proxy.count('ListObjectsV2')).toBe(3);
  });

  it('persistent failure surfaces EIO after the bounded retries; a hung request ETIMEDOUT', async () => {
    const b = env.backend({ maxAttempts: 3, circuitFailureThreshold: 100 });
    env.proxy.resetLog();
    env.proxy.down(true);
    try {
      await rejectsWith(b.stat('/anything'), 'EIO');
      expect(env.proxy.count()).toBe(3);
    } finally {
      env.proxy.clearFaults();
    }
    const t = env.backend({ maxAttempts: 2, requestTimeoutMs: 150, circuitFailureThreshold: 100 });
    env.proxy.inject({ kind: 'hang', times: 2, match: (r) => r.op === 'HeadObject' });
    const t0 = Date.now();
    await rejectsWith(t.stat('/slow'), 'ETIMEDOUT');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('the circuit opens on a dead store, fails fast, keeps /ready failing, and recovers', async () => {
    const b = env.backend({ maxAttempts: 2, circuitFailureThreshold: 3, circuitCooldownMs: 200 });
    await put(b, '/f', 'x');
    env.proxy.down(true);
    try {
      // Names in a directory this backend has not written in (it knows the root's membership
      // since the PUT of /f, so misses there would cost no request).
      await rejectsWith(b.read('/sub/g', 0, 1), 'EIO');
      await rejectsWith(b.stat('/sub/h'), 'EIO');
      expect(b.transport.breaker.state).toBe('open');
      const before = env.proxy.count();
      const t0 = Date.now();
      await rejectsWith(b.stat('/sub/i'), 'EIO');
      await rejectsWith(b.check(), 'EIO');
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(env.proxy.count()).toBe(before);
      // After the cooldown one probe goes out; it fails, the circuit re-opens.
      await sleep(250);
      await rejectsWith(b.check(), 'EIO');
      expect(b.transport.breaker.state).toBe('open');
    } finally {
      env.proxy.clearFaults();
    }
    await sleep(450);
    await b.check();
    expect(b.transport.breaker.state).toBe('closed');
    expect(await text(b, '/f')).toBe('x');
  });

  it('multipart uploads survive flaky parts: the committed object is exact', async () => {
    const b = env.backend({ partSize: 5 * MiB, circuitFailureThreshold: 100 });
    const data = pattern(16 * MiB, 41);
    env.proxy.inject({ kind: 'status500', times: 2, match: (r) => r.op === 'UploadPart' });
    env.proxy.inject({ kind: 'drop', match: (r) => r.op === 'UploadPart' });
    env.proxy.inject({ kind: 'slowdown', match: (r) => r.op === 'CompleteMultipartUpload' });
    const w = await b.createWriter('/big');
    for (let off = 0; off < data.length; off += MiB) await w.write(data.subarray(off, off + MiB));
    await w.commit();
    expect((await env.rawGet(b.keys.fileKey('/big')))!.equals(data)).toBe(true);
  });

  it('a CompleteMultipartUpload whose answer is lost is verified by a HEAD, not failed', async () => {
    const b = env.backend({ partSize: 5 * MiB, maxAttempts: 2, circuitFailureThreshold: 100 });
    const data = pattern(11 * MiB, 43);
    env.proxy.inject({ kind: 'lose', match: (r) => r.op === 'CompleteMultipartUpload' });
    env.proxy.resetLog();
    const w = await b.createWriter('/lost-answer');
    for (let off = 0; off < data.length; off += MiB) await w.write(data.subarray(off, off + MiB));
    const st = await w.commit();
    expect(st.size).toBe(data.length);
    // The retry found no upload any more (the first attempt had completed it).
    expect(env.proxy.count('CompleteMultipartUpload')).toBe(2);
    expect((await env.rawGet(b.keys.fileKey('/lost-answer')))!.equals(data)).toBe(true);
  });

  it('through the VFS: a flush that fails keeps the data staged, and the next close publishes it', async () => {
    const b = env.backend({ maxAttempts: 2, circuitFailureThreshold: 3, circuitCooldownMs: 100 });
    const vfs = makeVfsEnv(b);
    try {
      const s = vfs.session();
      const h = await s.open('s', '/doc', { access: RW, disposition: 'create', owner: 'o' });
      await s.write(h, 0, Buffer.from('acknowledged bytes'));
      env.proxy.down(true);
      await expect(s.flush(h)).rejects.toMatchObject({ code: 'EIO' });
      env.proxy.clearFaults();
      await sleep(150);
      await s.close(h);
      const r = await s.open('s', '/doc', { access: RO, owner: 'r' });
      expect((await s.read(r, 0, 100)).toString()).toBe('acknowledged bytes');
      await s.close(r);
      expect((await env.rawGet(b.keys.fileKey('/doc')))?.toString()).toBe('acknowledged bytes');
    } finally {
      env.proxy.clearFaults();
      await vfs.destroy();
    }
  });
});
