/**
 * The tests' s3rver helper (test/helpers/s3rver.ts) must answer a PUT whose spool file cannot be
 * written with an error, and keep running: an unhandled write-stream 'error' once crashed a whole
 * test process (ERR_STREAM_DESTROYED). A key whose last segment fits a file name but not the
 * helper's temporary name beside it (255 bytes) makes the spool file fail to open while the body
 * is still arriving.
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { PutObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';

let s3: S3rverHandle;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3.stop();
});

async function slowPut(key: string): Promise<number> {
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from('abcd');
    await new Promise((r) => setTimeout(r, 200));
    yield Buffer.from('efgh');
  }
  try {
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: Readable.from(body()), ContentLength: 8 }));
    return 200;
  } catch (e) {
    return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? -1;
  }
}

it('a PUT whose spool file cannot be opened fails that request; the server keeps serving', async () => {
  const key = `d/${'k'.repeat(230)}`;
  const status = await slowPut(key);
  expect(status === -1 || status >= 400).toBe(true);
  const c = s3.client();
  await c.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'after', Body: 'still up' }));
  const r = await c.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'after' }));
  expect(await r.Body?.transformToString()).toBe('still up');
});
