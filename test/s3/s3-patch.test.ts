/**
 * Sparse write stages and patched uploads on S3 (src/vfs/write-stage.ts, backends/s3/writer.ts):
 * a change to a large object re-uploads only the parts it touches and copies the rest inside the
 * store (UploadPartCopy pinned by x-amz-copy-source-if-match), never downloading the clean parts;
 * a base replaced by someone else fails cleanly (ESTALE) and never yields a mixed object; the
 * multipart copy path of copy()/rename and metadata rewrites. Real s3rver, with the helper's
 * UploadPartCopy and S3's part rules on completion (test/helpers/s3rver.ts, 7. and 8.).
 */
import { describe, expect, it } from 'vitest';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { S3Backend } from '../../backends/s3/s3-backend.ts';
import { WriteStage, type StageSnapshot } from '../../src/vfs/write-stage.ts';
import { makeVfsEnv, RW } from '../helpers/vfs-env.ts';
import { instrumentBackend } from '../../src/metrics/instrumented-backend.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { pattern, rejectsWith, useS3Env, type S3Env } from './fixture.ts';

const MiB = 1024 * 1024;

let env: S3Env;
useS3Env((e) => (env = e));

/** A backend with the smallest legal part size, so tens of MiB make several parts. */
function backend(extra: Parameters<S3Env['backend']>[0] = {}): S3Backend {
  return env.backend({ partSize: 5 * MiB, ...extra });
}

async function putBig(b: S3Backend, path: string, data: Buffer): Promise<void> {
  const w = await b.createWriter(path, { sizeHint: data.length });
  for (let off = 0; off < data.length; off += 4 * MiB) await w.write(data.subarray(off, Math.min(data.length, off + 4 * MiB)));
  await w.commit();
}

function ops(b: S3Backend): Record<string, number> {
  return Object.fromEntries(b.meters.local.requests);
}

function resetOps(b: S3Backend): void {
  b.meters.local.requests.clear();
  env.proxy.resetLog();
}

/** The byte ranges [start, end) of every GET the proxy saw. */
function getRanges(): [number, number][] {
  return env.proxy.log.filter((e) => e.op === 'GetObject').map((e) => {
    const m = /bytes=(\d+)-(\d+)/.exec(e.range ?? '');
    if (m === null) return [0, Number.MAX_SAFE_INTEGER] as [number, number];
    return [Number(m[1]), Number(m[2]) + 1] as [number, number];
  });
}

function overlaps(ranges: [number, number][], start: number, end: number): boolean {
  return ranges.some(([a, b]) => a < end && start < b);
}

async function openUploads(b: S3Backend): Promise<number> {
  const r = await env.raw.send(new ListMultipartUploadsCommand({ Bucket: env.s3.bucket, Prefix: b.keys.prefix }));
  return r.Uploads?.length ?? 0;
}

async function stored(b: S3Backend, path: string): Promise<Buffer> {
  const got = await env.rawGet(b.keys.fileKey(path));
  if (got === undefined) throw new Error(`no object at ${path}`);
  return got;
}

/** Deterministic PRNG for the random-write model test. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

describe('sparse write stage on S3', () => {
  it('1 byte changed in the middle of 40 MiB: clean parts are UploadPartCopy, never downloaded', async () => {
    const b = backend();
    const size = 40 * MiB;
    const expected = pattern(size, 7);
    await putBig(b, '/big.bin', expected);
    const dir = env.tempDir();
    const stage = new WriteStage(dir, b, '/big.bin', false);
    resetOps(b);
    const out0 = b.meters.local.bytesOut;
    const at = 20 * MiB + 123;
    await stage.write(at, Buffer.from([expected[at]! ^ 0xff]));
    expected[at] = expected[at]! ^ 0xff;
    expect(stage.snapshot()).toMatchObject({ mode: 'sparse', size, extents: [[at, at + 1]], dirty: true });
    const st = await stage.publish();
    expect(st?.size).toBe(size);
    const counted = ops(b);
    // Layout: copy [0, at) · upload [at, at + 5 MiB) (1 new byte + top-up from the base) · copy the rest.
    expect(counted.UploadPartCopy).toBe(2);
    expect(counted.UploadPart).toBe(1);
    expect(counted.CompleteMultipartUpload).toBe(1);
    const gets = getRanges();
    // Only the (4 MiB) blocks of the top-up were read: nothing of the clean parts.
    expect(overlaps(gets, 0, 20 * MiB)).toBe(false);
    expect(overlaps(gets, at + 5 * MiB + 4 * MiB, size)).toBe(false);
    const downloaded = env.proxy.bytes('GetObject');
    expect(downloaded).toBeLessThanOrEqual(9 * MiB);
    // Uploaded: one 5 MiB part, not 40 MiB.
    expect(b.meters.local.bytesOut - out0).toBe(5 * MiB);
    resetOps(b);
    expect((await stored(b, '/big.bin')).equals(expected)).toBe(true);
    expect(stage.dirty).toBe(false);
    // Rebased onto the object just published: a second change moves only its own part again.
    expect(stage.snapshot()).toMatchObject({ mode: 'sparse', extents: [], dirty: false, base: { id: st?.nativeId, size } });
    await stage.write(1, Buffer.from('xy'));
    expected.write('xy', 1);
    resetOps(b);
    await stage.publish();
    expect(ops(b).UploadPartCopy).toBe(1);
    expect(ops(b).UploadPart).toBe(1);
    expect(overlaps(getRanges(), 9 * MiB, size)).toBe(false);
    expect((await stored(b, '/big.bin')).equals(expected)).toBe(true);
    await stage.discard();
    expect(await openUploads(b)).toBe(0);
  });

  it('reads through the stage merge written extents with the base; append copies the whole base', async () => {
    const b = backend();
    const size = 12 * MiB;
    const expected = pattern(size, 3);
    await putBig(b, '/app.bin', expected);
    const stage = new WriteStage(env.tempDir(), b, '/app.bin', false);
    const extra = pattern(MiB + 17, 4);
    await stage.write(size, extra);
    await stage.write(100, Buffer.from('hello'));
    const model = Buffer.concat([expected, extra]);
    model.write('hello', 100);
    expect(stage.size).toBe(model.length);
    for (const [off, len] of [[0, 200], [90, 20], [size - 10, 30], [size + MiB, 100], [5 * MiB - 3, 7], [model.length - 5, 100]] as const) {
      expect((await stage.read(off, len)).equals(model.subarray(off, Math.min(model.length, off + len)))).toBe(true);
    }
    await stage.discard();

    // Pure append: the base is one UploadPartCopy, the new bytes the last part, no GET at all.
    const s2 = new WriteStage(env.tempDir(), b, '/app.bin', false);
    resetOps(b);
    await s2.write(size, extra);
    await s2.publish();
    expect(ops(b).UploadPartCopy).toBe(1);
    expect(ops(b).UploadPart).toBe(1);
    expect(ops(b).GetObject ?? 0).toBe(0);
    expect((await stored(b, '/app.bin')).equals(Buffer.concat([expected, extra]))).toBe(true);
    await s2.discard();
  });

  it('truncate down then up or past the end: base bytes beyond the cut read and publish as zeros', async () => {
    const b = backend();
    const size = 24 * MiB;
    const base = pattern(size, 11);
    await putBig(b, '/t.bin', base);
    const stage = new WriteStage(env.tempDir(), b, '/t.bin', false);
    await stage.truncate(10 * MiB);
    await stage.write(15 * MiB, Buffer.from('tail'));
    await stage.truncate(30 * MiB);
    const model = Buffer.alloc(30 * MiB);
    base.copy(model, 0, 0, 10 * MiB);
    model.write('tail', 15 * MiB);
    expect((await stage.read(10 * MiB - 2, 6)).equals(model.subarray(10 * MiB - 2, 10 * MiB + 4))).toBe(true);
    expect((await stage.read(15 * MiB, 4)).toString()).toBe('tail');
    expect((await stage.read(20 * MiB, 16)).equals(Buffer.alloc(16))).toBe(true);
    resetOps(b);
    await stage.publish();
    expect(ops(b).UploadPartCopy).toBe(1);
    expect(getRanges()).toEqual([]);
    expect((await stored(b, '/t.bin')).equals(model)).toBe(true);
    // Down to below the old size only: no base range left → a plain upload (no base pinned).
    await stage.truncate(3);
    resetOps(b);
    await stage.publish();
    expect(ops(b).UploadPartCopy ?? 0).toBe(0);
    expect((await stored(b, '/t.bin')).equals(model.subarray(0, 3))).toBe(true);
    await stage.discard();
  });

  it('random writes across part boundaries match a byte model, in reads and in the published object', async () => {
    const b = backend({ blockSize: 1 * MiB });
    const size = 26 * MiB + 12345;
    const model = pattern(size, 21);
    await putBig(b, '/r.bin', model);
    const stage = new WriteStage(env.tempDir(), b, '/r.bin', false);
    const r = rng(99);
    let cur = Buffer.from(model);
    for (let i = 0; i < 40; i++) {
      const op = r(10);
      if (op === 0) {
        const n = r(cur.length + 2 * MiB);
        await stage.truncate(n);
        const next = Buffer.alloc(n);
        cur.copy(next, 0, 0, Math.min(n, cur.length));
        cur = next;
      } else {
        // Writes near a 5 MiB part boundary half of the time.
        const boundary = (1 + r(5)) * 5 * MiB;
        const off = op < 5 ? Math.max(0, boundary - r(64 * 1024)) : r(cur.length + 1024);
        const len = 1 + r(op < 3 ? 2 * MiB : 70_000);
        const data = pattern(len, 1000 + i);
        await stage.write(off, data);
        if (off + len > cur.length) {
          const next = Buffer.alloc(off + len);
          cur.copy(next);
          cur = next;
        }
        data.copy(cur, off);
      }
      expect(stage.size).toBe(cur.length);
      const ro = r(Math.max(1, cur.length));
      const rl = r(3 * MiB);
      expect((await stage.read(ro, rl)).equals(cur.subarray(ro, Math.min(cur.length, ro + rl)))).toBe(true);
    }
    await stage.publish();
    expect((await stored(b, '/r.bin')).equals(cur)).toBe(true);
    expect(await openUploads(b)).toBe(0);
    await stage.discard();
  });

  it('a base replaced by another writer fails the publish with ESTALE; their object stays whole', async () => {
    const b = backend();
    const size = 30 * MiB;
    await putBig(b, '/c.bin', pattern(size, 5));
    const theirs = pattern(size, 6);
    // Copy path: the change sits after the first part, so the first range is an UploadPartCopy
    // pinned to the old ETag (412 on s3rver now).
    const s1 = new WriteStage(env.tempDir(), b, '/c.bin', false);
    await s1.write(20 * MiB, Buffer.from('mine'));
    await env.rawPut(b.keys.fileKey('/c.bin'), theirs);
    await rejectsWith(s1.publish(), 'ESTALE');
    expect(s1.dirty).toBe(true);
    expect((await stored(b, '/c.bin')).equals(theirs)).toBe(true);
    expect(await openUploads(b)).toBe(0);
    // Reads of clean ranges refuse too (never the other version's bytes under ours).
    await rejectsWith(s1.read(0, 10), 'ESTALE');
    expect((await s1.read(20 * MiB, 4)).toString()).toBe('mine');
    await s1.discard();

    // Read path: a change at offset 0 tops its part up with ranged GETs of the base: another ETag.
    b.invalidate('/');
    await putBig(b, '/d.bin', pattern(size, 8));
    const s2 = new WriteStage(env.tempDir(), b, '/d.bin', false);
    await s2.write(0, Buffer.from('head'));
    const theirs2 = pattern(size, 9);
    await env.rawPut(b.keys.fileKey('/d.bin'), theirs2);
    await rejectsWith(s2.publish(), 'ESTALE');
    expect((await stored(b, '/d.bin')).equals(theirs2)).toBe(true);
    expect(await openUploads(b)).toBe(0);
    await s2.discard();
  });

  it('through the VFS: a large file opened, patched and closed costs only the touched part; a conflicting close fails', async () => {
    const b = backend();
    // Wrapped like the gateway wraps it: the patch capability must survive the instrumentation.
    const wrapped = instrumentBackend(b, new Metrics({ defaultMetrics: false }), 'patch');
    expect(wrapped.createPatchWriter).toBeTypeOf('function');
    expect(wrapped.readVersion).toBeTypeOf('function');
    const ve = makeVfsEnv(wrapped);
    try {
      const s = ve.session();
      const size = 24 * MiB;
      const model = pattern(size, 31);
      await putBig(b, '/v.bin', model);
      resetOps(b);
      const h = await s.open('s', '/v.bin', { access: RW, owner: 'o', expect: 'file' });
      await s.write(h, 12 * MiB, Buffer.from('patched'));
      model.write('patched', 12 * MiB);
      expect((await s.read(h, 12 * MiB - 2, 11)).equals(model.subarray(12 * MiB - 2, 12 * MiB + 9))).toBe(true);
      await s.close(h);
      expect(ops(b).UploadPartCopy).toBe(2);
      expect(overlaps(getRanges(), 0, 12 * MiB - 4 * MiB)).toBe(false);
      expect((await stored(b, '/v.bin')).equals(model)).toBe(true);

      const h2 = await s.open('s', '/v.bin', { access: RW, owner: 'o', expect: 'file' });
      await s.write(h2, 15 * MiB, Buffer.from('late'));
      await env.rawPut(b.keys.fileKey('/v.bin'), Buffer.from('someone else'));
      await rejectsWith(s.close(h2), 'ESTALE');
      expect((await stored(b, '/v.bin')).toString()).toBe('someone else');
    } finally {
      await ve.destroy();
    }
  });

  it('snapshot + restore over the same temp file publishes the same object after a "crash"', async () => {
    const b = backend();
    const size = 18 * MiB;
    const model = pattern(size, 41);
    await putBig(b, '/j.bin', model);
    const dir = env.tempDir();
    const stage = new WriteStage(dir, b, '/j.bin', false);
    await stage.write(7 * MiB, Buffer.from('journaled'));
    await stage.truncate(17 * MiB);
    await stage.sync();
    const snap = JSON.parse(JSON.stringify(stage.snapshot())) as StageSnapshot;
    model.write('journaled', 7 * MiB);
    const expected = model.subarray(0, 17 * MiB);
    // The process "dies": no discard, the temp file stays; a new backend instance picks up.
    const b2 = env.backend({ partSize: 5 * MiB, prefix: b.keys.prefix.replace(/\/$/, '') });
    const restored = WriteStage.restore(dir, b2, '/j.bin', snap);
    expect(restored.dirty).toBe(true);
    expect(restored.size).toBe(17 * MiB);
    expect((await restored.read(7 * MiB, 9)).toString()).toBe('journaled');
    await restored.publish();
    expect((await stored(b2, '/j.bin')).equals(expected)).toBe(true);
    // Restoring the same snapshot again: the base is gone (we replaced it) → ESTALE, nothing published.
    const again = WriteStage.restore(dir, b2, '/j.bin', snap);
    await again.write(0, Buffer.from('z'));
    await rejectsWith(again.publish(), 'ESTALE');
    expect((await stored(b2, '/j.bin')).equals(expected)).toBe(true);
    await again.discard();
    await restored.discard();
    await stage.discard();
    expect(() => WriteStage.restore(dir, b2, '/j.bin', { ...snap, extents: [[5, 2]] })).toThrow(/malformed/);
  });

  it('writes that land while a publish runs stay dirty and go out with the next publish', async () => {
    const b = backend();
    const size = 16 * MiB;
    const model = pattern(size, 45);
    await putBig(b, '/p.bin', model);
    const stage = new WriteStage(env.tempDir(), b, '/p.bin', false);
    await stage.write(MiB, Buffer.from('first'));
    model.write('first', MiB);
    const publishing = stage.publish();
    await stage.write(12 * MiB, Buffer.from('second'));
    await publishing;
    const after1 = await stored(b, '/p.bin');
    expect(after1.subarray(MiB, MiB + 5).toString()).toBe('first');
    expect(stage.dirty).toBe(true);
    expect(stage.snapshot().extents).toEqual([[12 * MiB, 12 * MiB + 6]]);
    model.write('second', 12 * MiB);
    await stage.publish();
    expect(stage.dirty).toBe(false);
    expect((await stored(b, '/p.bin')).equals(model)).toBe(true);
    await stage.discard();
  });

  it('small files keep the whole-file stage (one PUT, no copies)', async () => {
    const b = backend();
    await putBig(b, '/s.bin', pattern(3 * MiB, 2));
    const stage = new WriteStage(env.tempDir(), b, '/s.bin', false);
    await stage.write(5, Buffer.from('x'));
    expect(stage.snapshot().mode).toBe('whole');
    resetOps(b);
    await stage.publish();
    expect(ops(b).UploadPartCopy ?? 0).toBe(0);
    expect(ops(b).PutObject).toBe(1);
    await stage.discard();
  });
});

describe('multipart copy (copy(), rename, metadata rewrite)', () => {
  it('copy() above multipartCopyThreshold is UploadPartCopy parts pinned to the source ETag', async () => {
    const b = backend({ multipartCopyThreshold: 5 * MiB });
    const data = pattern(12 * MiB + 5, 51);
    await putBig(b, '/src.bin', data);
    await b.setMetadata('/src.bin', { mode: 0o600 });
    const before = await b.stat('/src.bin');
    resetOps(b);
    const st = await b.copy('/src.bin', '/dst.bin');
    expect(ops(b).UploadPartCopy).toBe(3);
    expect(ops(b).CopyObject ?? 0).toBe(0);
    expect(st).toMatchObject({ size: data.length, mode: before.mode, mtimeNs: before.mtimeNs });
    expect((await stored(b, '/dst.bin')).equals(data)).toBe(true);
    // Below the threshold: one CopyObject.
    await putBig(b, '/small.bin', pattern(MiB, 1));
    resetOps(b);
    await b.copy('/small.bin', '/small2.bin');
    expect(ops(b).CopyObject).toBe(1);
    expect(ops(b).UploadPartCopy ?? 0).toBe(0);
  });

  it('rename through the VFS uses the multipart copy and keeps content, mode and mtime', async () => {
    const b = backend({ multipartCopyThreshold: 5 * MiB });
    const ve = makeVfsEnv(b);
    try {
      const s = ve.session();
      const data = pattern(11 * MiB, 61);
      await putBig(b, '/old.bin', data);
      await s.setattr('s', '/old.bin', { mode: 0o640, mtimeNs: 1_600_000_000_123_456_789n });
      resetOps(b);
      await s.rename('s', '/old.bin', '/new.bin');
      expect(ops(b).UploadPartCopy).toBe(3);
      expect(await env.rawHead(b.keys.fileKey('/old.bin'))).toBe(false);
      expect((await stored(b, '/new.bin')).equals(data)).toBe(true);
      const st = await b.stat('/new.bin');
      expect(st.mode! & 0o7777).toBe(0o640);
      expect(st.mtimeNs).toBe(1_600_000_000_123_456_789n);
    } finally {
      await ve.destroy();
    }
  });

  it('a source replaced between two parts of a multipart copy: 412, upload aborted, copied again whole', async () => {
    const b = backend({ multipartCopyThreshold: 5 * MiB, maxConcurrentParts: 1 });
    const srcKey = b.keys.fileKey('/mid.bin');
    await putBig(b, '/mid.bin', pattern(16 * MiB, 73));
    const theirs = pattern(16 * MiB, 74);
    const t = b.transport;
    const orig = t.uploadPartCopy.bind(t);
    let calls = 0;
    let failures = 0;
    t.uploadPartCopy = async (...args: Parameters<typeof orig>) => {
      calls++;
      try {
        const r = await orig(...args);
        // Another client replaces the source right after our first part was copied.
        if (calls === 1) await env.rawPut(srcKey, theirs);
        return r;
      } catch (e) {
        failures++;
        throw e;
      }
    };
    try {
      await b.copy('/mid.bin', '/mid2.bin');
    } finally {
      t.uploadPartCopy = orig;
    }
    expect(failures).toBe(1); // part 2 of the first attempt: x-amz-copy-source-if-match failed
    expect(calls).toBe(2 + 4); // then a fresh lookup and all 4 parts of the new version
    expect((await stored(b, '/mid2.bin')).equals(theirs)).toBe(true);
    expect(await openUploads(b)).toBe(0);
  });

  it('a copy from a stale cached view of the source is refused by if-match and redone from a fresh lookup', async () => {
    const b = backend({ multipartCopyThreshold: 5 * MiB });
    await putBig(b, '/m.bin', pattern(16 * MiB, 71));
    await b.stat('/m.bin');
    // Another client replaces the source; our cached ETag is now stale. The first attempt gets 412
    // and copy() looks again: the result is a whole copy of the new version.
    const theirs = pattern(16 * MiB, 72);
    await env.rawPut(b.keys.fileKey('/m.bin'), theirs);
    await b.copy('/m.bin', '/m2.bin');
    expect((await stored(b, '/m2.bin')).equals(theirs)).toBe(true);
    expect(await openUploads(b)).toBe(0);
  });

  it('a stage keeps its base across a rename or chmod that rewrote the object with another ETag', async () => {
    // CopyObject of a multipart object: the same bytes under a plain-MD5 ETag (as on S3).
    const b = backend();
    const size = 22 * MiB;
    const model = pattern(size, 81);
    await putBig(b, '/a.bin', model);
    const stage = new WriteStage(env.tempDir(), b, '/a.bin', false);
    await stage.write(3 * MiB, Buffer.from('abc'));
    const etagBefore = (await b.stat('/a.bin')).nativeId;
    // chmod: in-place multipart copy (a new multipart ETag, same bytes).
    await b.setMetadata('/a.bin', { mode: 0o600 });
    // rename: copy + unlink, the VFS then moves the stage.
    await b.copy('/a.bin', '/b.bin');
    await b.unlink('/a.bin');
    stage.path = '/b.bin';
    expect((await b.stat('/b.bin')).nativeId).not.toBe(etagBefore);
    model.write('abc', 3 * MiB);
    expect((await stage.read(3 * MiB - 1, 5)).equals(model.subarray(3 * MiB - 1, 3 * MiB + 4))).toBe(true);
    resetOps(b);
    await stage.publish();
    expect(ops(b).UploadPartCopy).toBeGreaterThanOrEqual(1);
    expect((await stored(b, '/b.bin')).equals(model)).toBe(true);
    expect((await b.stat('/b.bin')).mode! & 0o7777).toBe(0o600);
    await stage.discard();
  });
});

describe('s3rver UploadPartCopy and completion rules (test helper)', () => {
  it('copies ranges, honours if-match, rejects bad ranges and parts under 5 MiB', async () => {
    const b = backend();
    const key = b.keys.fileKey('/x.bin');
    const data = pattern(6 * MiB, 91);
    await env.rawPut(key, data);
    const head = await b.transport.head(key);
    const t = b.transport;
    const id = await t.createUpload(`${key}.copy`, {}, undefined);
    const e1 = await t.uploadPartCopy(`${key}.copy`, id, 1, key, 0, 5 * MiB, undefined, head!.etag);
    expect(e1).toMatch(/^"[0-9a-f]{32}"$/);
    await rejectsWith(t.uploadPartCopy(`${key}.copy`, id, 2, key, 0, 10, undefined, '"0123456789abcdef0123456789abcdef"'), 'EEXIST');
    await rejectsWith(t.uploadPartCopy(`${key}.copy`, id, 2, key, 6 * MiB - 1, 6 * MiB + 1), 'EIO');
    await rejectsWith(t.uploadPartCopy(`${key}.copy`, 'ffff', 2, key, 0, 10), 'ENOENT');
    await rejectsWith(t.uploadPartCopy(`${key}.copy`, id, 2, `${key}.missing`, 0, 10), 'ENOENT');
    const e2 = await t.uploadPartCopy(`${key}.copy`, id, 2, key, 5 * MiB, 6 * MiB);
    const etag = await t.completeUpload(`${key}.copy`, id, [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }], false, 6 * MiB);
    expect(etag).toMatch(/-2"$/);
    expect((await env.rawGet(`${key}.copy`))!.equals(data)).toBe(true);
    // A part under 5 MiB that is not the last: EntityTooSmall (HTTP 400).
    const id2 = await t.createUpload(`${key}.bad`, {}, undefined);
    const p1 = await t.uploadPartCopy(`${key}.bad`, id2, 1, key, 0, MiB);
    const p2 = await t.uploadPartCopy(`${key}.bad`, id2, 2, key, MiB, 2 * MiB);
    await rejectsWith(t.completeUpload(`${key}.bad`, id2, [{ PartNumber: 1, ETag: p1 }, { PartNumber: 2, ETag: p2 }], false, 2 * MiB), 'EIO');
    await t.abortUpload(`${key}.bad`, id2);
  });
});
