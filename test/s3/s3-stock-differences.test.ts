/**
 * Where stock s3rver 3.7 (the npm package as its own process, without test/helpers/s3rver.ts's
 * fixes) answers differently from S3, one check per difference, each with what the gateway does
 * about it. The same list, with the reasons, is in backends/s3/README.md ("S3-compatible stores:
 * optional features and differences").
 */
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../backends/s3/s3-backend.ts';
import type { S3BackendOptions } from '../../backends/s3/config.ts';
import { makeVfsEnv, RW } from '../helpers/vfs-env.ts';
import { S3RVER_CREDENTIALS } from '../helpers/s3rver.ts';
import { startStockS3rver, type StockS3rverHandle } from '../helpers/s3rver-stock.ts';
import { readFile, writeFile } from '../conformance/vfs-conformance.ts';
import { names, pattern, put, rejectsWith, text } from './fixture.ts';

const MiB = 1024 * 1024;
let s3: StockS3rverHandle;
let raw: S3Client;
const opened: S3Backend[] = [];
let n = 0;

beforeAll(async () => {
  s3 = await startStockS3rver();
  raw = s3.client();
}, 30_000);
afterAll(async () => {
  for (const b of opened) await b.close().catch(() => undefined);
  await s3?.stop();
});

function backend(o: Partial<S3BackendOptions> = {}): S3Backend {
  const b = new S3Backend({ bucket: s3.bucket, prefix: `d${++n}`, endpoint: s3.endpoint, ...S3RVER_CREDENTIALS, retryBaseMs: 5, retryMaxMs: 50, ...o });
  opened.push(b);
  return b;
}

async function rawPut(key: string, body: Buffer | string, extra: Record<string, unknown> = {}): Promise<string> {
  return (await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ...extra }))).ETag ?? '';
}

async function rawGet(b: S3Backend, path: string): Promise<string> {
  return (await b.read(path, 0, 1 << 20)).toString();
}

describe('stock s3rver: missing APIs (501 / 405)', () => {
  it('ListMultipartUploads 501 and AbortMultipartUpload 405: recovery is skipped, aborts stop, the circuit stays closed', async () => {
    const b = backend({ circuitFailureThreshold: 1, partSize: 5 * MiB });
    expect(await b.recover()).toBe(0);
    expect(b.transport.features.unavailable().get('multipartListing')).toMatch(/HTTP 501 NotImplemented/);
    const w = await b.createWriter('/big', { sizeHint: 12 * MiB });
    await w.write(pattern(6 * MiB, 1));
    await w.abort();
    expect(b.transport.features.unavailable().get('multipartAbort')).toMatch(/HTTP 405 MethodNotAllowed/);
    expect(b.transport.breaker.state).toBe('closed');
    await put(b, '/f', 'fine');
    expect(await text(b, '/f')).toBe('fine');
  });

  it('UploadPartCopy 501: multipart copies and patched large files stream the unchanged ranges through the gateway, exact', async () => {
    const b = backend({ multipartCopyThreshold: 5 * MiB });
    const data = pattern(12 * MiB, 2);
    await rawPut(b.keys.fileKey('/big'), data);
    await b.copy('/big', '/copy');
    expect((await b.read('/copy', 0, 12 * MiB)).equals(data)).toBe(true);
    expect(b.transport.features.has('uploadPartCopy')).toBe(false);
    const ve = makeVfsEnv(b);
    try {
      const s = ve.session();
      const model = pattern(20 * MiB, 3);
      await rawPut(b.keys.fileKey('/v.bin'), model);
      b.invalidate('/v.bin'); // written beside the gateway in a directory it knows (copy created /copy there)
      const h = await s.open('s', '/v.bin', { access: RW, owner: 'o', expect: 'file' });
      await s.write(h, 10 * MiB, Buffer.from('patched'));
      model.write('patched', 10 * MiB);
      await s.close(h);
      expect((await readFile(s, '/v.bin')).equals(model)).toBe(true);
    } finally {
      await ve.destroy();
    }
  });
});

describe('stock s3rver: answers that differ', () => {
  it('CopyObject onto an existing key keeps that key\'s old ETag: found once, then the old object is deleted before such copies', async () => {
    const b = backend();
    const ve = makeVfsEnv(b);
    try {
      const s = ve.session();
      await writeFile(s, '/a', 'AAAA');
      await writeFile(s, '/b', 'B');
      await s.rename('s', '/a', '/b');
      expect((await readFile(s, '/b')).toString()).toBe('AAAA');
      expect(b.transport.features.unavailable().get('copyEtags')).toMatch(/answered its previous ETag/);
      await writeFile(s, '/c', 'CC');
      await s.rename('s', '/c', '/b');
      expect((await readFile(s, '/b')).toString()).toBe('CC');
    } finally {
      await ve.destroy();
    }
    // The store's own answer, for the record: the copy reports the replaced object's MD5.
    const k = 'raw/copy-etag';
    const old = await rawPut(`${k}-dst`, 'old content');
    await rawPut(`${k}-src`, 'new content');
    const r = await raw.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: `${k}-dst`, CopySource: `${s3.bucket}/${k}-src`, MetadataDirective: 'REPLACE', Metadata: { x: '1' } }));
    expect(r.CopyObjectResult?.ETag).toBe(old);
  });

  it('If-None-Match on PUT and x-amz-copy-source-if-match are ignored; exclusive creates still fail with EEXIST (HEAD under the key lock)', async () => {
    await rawPut('raw/cond', 'one');
    await rawPut('raw/cond', 'two', { IfNoneMatch: '*' });
    const c = await raw.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: 'raw/cond2', CopySource: `${s3.bucket}/raw/cond`, CopySourceIfMatch: '"0123456789abcdef0123456789abcdef"' }));
    expect(c.CopyObjectResult?.ETag).toBeDefined();
    const b = backend();
    await put(b, '/x', 'first', { exclusive: true });
    await rejectsWith(put(b, '/x', 'second', { exclusive: true }), 'EEXIST');
    expect(await rawGet(b, '/x')).toBe('first');
  });

  it('an implied directory holding only subdirectories is missing from delimited listings (a lookup before the listing finds it)', async () => {
    const b = backend();
    await rawPut(b.keys.fileKey('/top/sub/file'), 'x');
    await rawPut(b.keys.fileKey('/plain'), 'x');
    expect((await b.stat('/top')).type).toBe('dir');
    expect(await names(b, '/')).toEqual(['plain']);
    // A complete listing is taken as the directory's membership for metaTtlMs: the name then
    // misses until the TTL, like any name another client adds after a listing.
    const fresh = backend({ prefix: b.keys.prefix.replace(/\/$/, '') });
    expect(await names(fresh, '/')).toEqual(['plain']);
    await rejectsWith(fresh.stat('/top'), 'ENOENT');
    expect((await fresh.stat('/top/sub/file')).type).toBe('file');
    // Made through the gateway, a directory has a marker and lists.
    await b.mkdir('/made');
    await b.mkdir('/made/sub');
    expect(await names(b, '/')).toEqual(['made', 'plain']);
  });

  it('multipart objects get a plain MD5 ETag, and CompleteMultipartUpload accepts parts under 5 MiB', async () => {
    const key = 'raw/mpu';
    const id = (await raw.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }))).UploadId!;
    const e1 = (await raw.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId: id, PartNumber: 1, Body: Buffer.from('small ') }))).ETag!;
    const e2 = (await raw.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId: id, PartNumber: 2, Body: Buffer.from('parts') }))).ETag!;
    const done = await raw.send(new CompleteMultipartUploadCommand({ Bucket: s3.bucket, Key: key, UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
    expect(done.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    expect((await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }))).ContentLength).toBe(11);
  });
});

describe('stock s3rver without --openssl-legacy-provider', () => {
  it('every truncated ListObjectsV2 is 500 (DES continuation tokens): to the gateway a failing store - EIO after retries, the circuit opens', async () => {
    const bare = await startStockS3rver({ legacyProvider: false });
    try {
      const c = bare.client();
      for (const k of ['p/d/a', 'p/d/b']) await c.send(new PutObjectCommand({ Bucket: bare.bucket, Key: k, Body: 'x' }));
      await expect(c.send(new ListObjectsV2Command({ Bucket: bare.bucket, Prefix: 'p/d/', MaxKeys: 1 }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
      const b = new S3Backend({ bucket: bare.bucket, prefix: 'p', endpoint: bare.endpoint, ...S3RVER_CREDENTIALS, retryBaseMs: 5, retryMaxMs: 20, maxAttempts: 3, circuitFailureThreshold: 3 });
      try {
        // stat of a directory without a marker probes it with MaxKeys 1: truncated as soon as it holds two keys.
        await rejectsWith(b.stat('/d'), 'EIO');
        expect(b.transport.breaker.state).toBe('open');
      } finally {
        await b.close();
      }
    } finally {
      await bare.stop();
    }
  });
});
