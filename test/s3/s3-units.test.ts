/** Pure pieces of the S3 backend: key mapping, metadata encoding, backoff, circuit breaker, config. */
import { describe, expect, it } from 'vitest';
import { KeyMap, dirStat, encodeMeta, fileStat, formatTime, hasOrderHazard, inheritedMeta, parseTime } from '../../backends/s3/keys.ts';
import { CircuitBreaker, TruncatedBodyError, backoffMs, classify } from '../../backends/s3/retry.ts';
import { parseS3Source, parseSize } from '../../backends/s3/config.ts';
import { createBackend } from '../../backends/index.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { MetaCache } from '../../backends/s3/meta-cache.ts';
import { S3Meters } from '../../backends/s3/s3-metrics.ts';

const defaults = { fileMode: 0o644, dirMode: 0o755, uid: 0, gid: 0 };

describe('keys', () => {
  it('maps paths under a normalised prefix and enforces the 1024-byte key limit', () => {
    const k = new KeyMap('/team/share/');
    expect(k.prefix).toBe('team/share/');
    expect(k.fileKey('/a/b.txt')).toBe('team/share/a/b.txt');
    expect(k.dirKey('/a')).toBe('team/share/a/');
    expect(k.dirKey('/')).toBe('team/share/');
    expect(k.pathOf('team/share/a/b/')).toBe('/a/b');
    expect(new KeyMap(undefined).fileKey('/x')).toBe('x');
    expect(() => k.fileKey('/' + 'x'.repeat(1020))).toThrowError(expect.objectContaining({ code: 'ENAMETOOLONG' }));
    expect(() => k.fileKey('/')).toThrowError(expect.objectContaining({ code: 'EISDIR' }));
  });

  it('detects names whose UTF-8 and UTF-16 orders differ', () => {
    expect(hasOrderHazard('plain-ascii_é')).toBe(false);
    expect(hasOrderHazard('\uff21')).toBe(true);
    expect(hasOrderHazard('😀')).toBe(true);
  });

  it('round-trips nanosecond times and reads s3fs / rclone formats', () => {
    const t = 1_700_000_000_123_456_789n;
    expect(formatTime(t)).toBe('1700000000.123456789');
    expect(parseTime(formatTime(t))).toBe(t);
    expect(parseTime('1700000000')).toBe(1_700_000_000_000_000_000n);
    expect(parseTime('1700000000.5')).toBe(1_700_000_000_500_000_000n);
    expect(parseTime('garbage')).toBeUndefined();
    expect(parseTime(undefined)).toBeUndefined();
  });

  it('encodes mode with file-type bits (s3fs) and keeps foreign metadata', () => {
    const m = encodeMeta('file', { other: 'kept' }, { mode: 0o4751, uid: 1000, gid: 100, mtimeNs: 5n, birthtimeNs: 7n });
    expect(m).toMatchObject({ other: 'kept', mode: String(0o104751), uid: '1000', gid: '100', mtime: '0.000000005', btime: '0.000000007' });
    expect(encodeMeta('dir', {}, { mode: 0o700 }).mode).toBe(String(0o040700));
    expect(inheritedMeta({ mode: '1', mtime: '2', atime: '3', btime: '4' })).toEqual({ mode: '1', btime: '4' });
  });

  it('derives stats: explicit metadata wins, LastModified otherwise, defaults for strangers', () => {
    const lm = new Date(1_600_000_000_000);
    const plain = fileStat('f', { size: 3, etag: '"e"', lastModified: lm, meta: {} }, defaults, 0n);
    expect(plain).toMatchObject({ type: 'file', size: 3, mode: 0o644, uid: 0, nativeId: '"e"' });
    expect(plain.mtimeNs).toBe(1_600_000_000_000_000_000n);
    expect(plain.ctimeNs).toBe(plain.mtimeNs);
    const rich = fileStat('f', { size: 3, etag: '"e"', lastModified: lm, meta: { mode: '33261', uid: '5', mtime: '1.5', btime: '1' } }, defaults, 0n);
    expect(rich).toMatchObject({ mode: 0o755, uid: 5, mtimeNs: 1_500_000_000n, birthtimeNs: 1_000_000_000n });
    expect(rich.ctimeNs).toBe(1_600_000_000_000_000_000n);
    const bad = fileStat('f', { size: 0, etag: '', lastModified: lm, meta: { mode: '-1', uid: 'x' } }, defaults, 0n);
    expect(bad).toMatchObject({ mode: 0o644, uid: 0 });
    const d = dirStat('d', undefined, defaults, 42n);
    expect(d).toMatchObject({ type: 'dir', mode: 0o755, mtimeNs: 42n, size: 0 });
  });
});

describe('retry policy', () => {
  it('full-jitter backoff stays within [0, min(cap, base * 2^n))', () => {
    for (let n = 1; n < 12; n++) {
      expect(backoffMs(n, 100, 2000, () => 0.999999)).toBeLessThan(Math.min(2000, 100 * 2 ** n));
      expect(backoffMs(n, 100, 2000, () => 0)).toBe(0);
    }
  });

  it('classifies answers, throttling, server and transport failures', () => {
    const http = (status: number, name: string): unknown => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
    expect(classify(http(404, 'NotFound'), false)).toMatchObject({ kind: 'client', retryable: false });
    expect(classify(http(403, 'AccessDenied'), false)).toMatchObject({ kind: 'client', retryable: false });
    expect(classify(http(503, 'SlowDown'), false)).toMatchObject({ kind: 'throttle', retryable: true });
    expect(classify(http(429, 'TooManyRequests'), false)).toMatchObject({ kind: 'throttle', retryable: true });
    expect(classify(http(500, 'InternalError'), false)).toMatchObject({ kind: 'server', retryable: true });
    expect(classify(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), false)).toMatchObject({ kind: 'network', retryable: true });
    expect(classify(new TruncatedBodyError('short'), false)).toMatchObject({ kind: 'network', retryable: true });
    expect(classify(new Error('whatever'), true)).toMatchObject({ kind: 'timeout', retryable: true });
    // A 200 whose XML body could not be parsed (cut or garbled): retried.
    expect(classify(http(200, 'Error'), false)).toMatchObject({ kind: 'network', retryable: true });
  });

  it('circuit breaker: opens after N failures, fails fast, probes once after the cooldown, closes on success', () => {
    let now = 0;
    const states: string[] = [];
    const cb = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1000, now: () => now, onChange: (s) => states.push(s) });
    for (let i = 0; i < 2; i++) {
      expect(cb.allow()).toBe(true);
      cb.failure();
    }
    expect(cb.state).toBe('closed');
    cb.success();
    for (let i = 0; i < 3; i++) cb.failure();
    expect(cb.state).toBe('open');
    expect(cb.allow()).toBe(false);
    now = 999;
    expect(cb.allow()).toBe(false);
    now = 1000;
    expect(cb.allow()).toBe(true);
    expect(cb.state).toBe('half-open');
    expect(cb.allow()).toBe(false);
    cb.failure();
    expect(cb.state).toBe('open');
    // Doubled cooldown after a failed probe.
    now = 2999;
    expect(cb.allow()).toBe(false);
    now = 3000;
    expect(cb.allow()).toBe(true);
    cb.success();
    expect(cb.state).toBe('closed');
    expect(cb.allow()).toBe(true);
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });
});

describe('s3:// sources', () => {
  it('parses bucket, prefix, endpoint from options or AWS_ENDPOINT_URL_S3, path-style by default with an endpoint', () => {
    const a = parseS3Source('s3://bucket/some/prefix', {}, {});
    expect(a).toMatchObject({ bucket: 'bucket', prefix: 'some/prefix', region: 'us-east-1', forcePathStyle: false });
    expect(a.endpoint).toBeUndefined();
    const b = parseS3Source('s3://bucket', {}, { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' });
    expect(b).toMatchObject({ bucket: 'bucket', prefix: '', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, region: 'eu-west-1' });
    const c = parseS3Source('s3://b/p', { endpoint: 'https://s3.example', forcePathStyle: false, blockSize: '1MiB', metaTtlMs: 0, accessKeyId: 'k', secretAccessKey: 's', defaultFileMode: '0600' }, {});
    expect(c).toMatchObject({ endpoint: 'https://s3.example', forcePathStyle: false, blockSize: 1024 * 1024, metaTtlMs: 0, accessKeyId: 'k', defaultFileMode: 0o600 });
    expect(parseSize('x', '10GiB')).toBe(10 * 1024 ** 3);
  });

  it('refuses malformed sources and options with EINVAL', () => {
    const bad = (f: () => unknown): void => {
      try {
        f();
      } catch (e) {
        expect(isVfsError(e, 'EINVAL')).toBe(true);
        return;
      }
      throw new Error('accepted');
    };
    bad(() => parseS3Source('s3://', {}, {}));
    bad(() => parseS3Source('s3://b', { partSize: '1MiB' }, {}));
    bad(() => parseS3Source('s3://b', { accessKeyId: 'only-one' }, {}));
    bad(() => parseS3Source('s3://b', { endpoint: 'ftp://x' }, {}));
    bad(() => parseS3Source('s3://b', { listMetadata: 'sometimes' }, {}));
  });

  it('createBackend builds an S3 backend for s3:// sources', async () => {
    const b = await createBackend('s3://bucket/prefix', { endpoint: 'http://127.0.0.1:1', accessKeyId: 'a', secretAccessKey: 'b' });
    expect(b.kind).toBe('s3');
    expect(b.capabilities).toMatchObject({ atomicRename: false, serverSideCopy: true, randomWrites: false, emptyDirectories: true, maxNameBytes: 1024 });
    expect(b.rename).toBeUndefined();
    expect(typeof b.copy).toBe('function');
    await b.close();
  });
});

describe('directory membership (meta-cache.ts)', () => {
  const cache = (): MetaCache => new MetaCache({ ttlMs: 60_000 }, new S3Meters(undefined, 'unit'));

  it('a listing raced by our own write is completed with the names we touched since it started', () => {
    const m = cache();
    expect(m.wantsMembership('p/d/')).toBe(true);
    const since = m.now();
    // Our PUT of p/d/new lands while the listing (which did not see it) is in flight.
    m.forgetListing('p/d/', 'new');
    m.setComplete('p/d/', ['old'], since);
    expect(m.wantsMembership('p/d/')).toBe(false);
    expect(m.knownMissing('p/d/new')).toBe(false);
    expect(m.knownMissing('p/d/old')).toBe(false);
    expect(m.knownMissing('p/d/other')).toBe(true);
  });

  it('a raced listing is dropped when the names touched since are no longer known; a large directory is not listed again', () => {
    const m = cache();
    const since = m.now();
    m.forgetListing('p/d/');
    m.setComplete('p/d/', ['old'], since);
    expect(m.knownMissing('p/d/other')).toBe(false);
    expect(m.wantsMembership('p/d/')).toBe(true);
    m.setLarge('p/d/');
    expect(m.wantsMembership('p/d/')).toBe(false);
    m.invalidate('p/d/x');
    expect(m.wantsMembership('p/d/')).toBe(true);
  });

  it('with the cache off (TTL 0) nothing is learned', () => {
    const m = new MetaCache({ ttlMs: 0 }, new S3Meters(undefined, 'unit'));
    expect(m.wantsMembership('p/d/')).toBe(false);
    m.setComplete('p/d/', [], m.now());
    expect(m.knownMissing('p/d/x')).toBe(false);
  });
});
