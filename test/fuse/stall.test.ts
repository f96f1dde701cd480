/**
 * A stalled backend through the mount (issue 13): S3 reads that never get an answer (fault proxy
 * in front of s3rver) end as EIO for the reader within the share's request timeout and retries,
 * and the mount stays usable: once the store answers again the same file reads whole.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { fuseUnusable, mountPoints, removeTmp, sh, startFuseStack, type FuseStack } from './helpers.ts';

const unusable = fuseUnusable();
if (unusable) console.warn(`FUSE stall tests skipped: ${unusable}`);

describe.skipIf(unusable !== undefined)('FUSE mount of an S3 share whose store stalls', () => {
  let s3: S3rverHandle;
  let proxy: FaultProxy;
  let stack: FuseStack;
  let tmp: string;

  beforeAll(async () => {
    s3 = await startS3rver();
    proxy = await startFaultProxy(s3.endpoint);
    tmp = mkdtempSync(join(tmpdir(), 'portico-fuse-stall-'));
    stack = await startFuseStack({
      tmp,
      fuse: { share: 'st' },
      shares: [
        {
          name: 'st',
          source: `s3://${s3.bucket}/stall`,
          options: { endpoint: `http://127.0.0.1:${proxy.port}`, ...S3RVER_CREDENTIALS, requestTimeoutMs: 1000, maxAttempts: 2, retryBaseMs: 50, retryMaxMs: 100, metaTtlMs: 0 },
        },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
    if (stack && mountPoints().has(stack.mnt)) await sh('fusermount3', ['-u', '-z', stack.mnt]);
    await proxy?.stop();
    await s3?.stop();
    if (tmp) removeTmp(tmp);
  }, 60_000);

  it('a hung GetObject is EIO to the reader, and the mount reads again once the store answers', async () => {
    // Put by another S3 client: Portico has never read it (no block cache, no kernel pages).
    await s3.client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'stall/f.txt', Body: 'stored by another client' }));
    proxy.inject({ kind: 'hang', times: Infinity, match: (r) => r.op === 'GetObject' });
    const t0 = Date.now();
    const failed = await sh('cat', [join(stack.mnt, 'f.txt')], { timeout: 60_000 }).then(
      () => undefined,
      (e: { stderr?: string }) => e.stderr ?? 'failed',
    );
    expect(failed).toContain('Input/output error');
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(proxy.count('GetObject')).toBeGreaterThan(0);
    proxy.clearFaults();
    expect((await sh('cat', [join(stack.mnt, 'f.txt')], { timeout: 60_000 })).stdout).toBe('stored by another client');
    expect((await sh('ls', [stack.mnt])).stdout.trim()).toBe('f.txt');
  }, 120_000);
});
