/**
 * A pack to S3 killed mid-shard leaves a multipart upload (parts stored, no object): the next pack
 * aborts it. The recorded case: the checkpoint names the upload, the resumed run aborts it and the
 * set verifies. The unrecorded case (a crash before the checkpoint named it; the checkpoint deleted
 * here): a younger upload is reported and left alone, `--abort-uploads-older-than 0` aborts it.
 * On s3rver, whose ListMultipartUploads and AbortMultipartUpload come from test/helpers/s3rver.ts;
 * stock s3rver has neither (501 / 405): there the pack warns and the parts stay.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { startStockS3rver } from '../helpers/s3rver-stock.ts';
import { BIN, NODE, cleanEnv, killQuietly, runCli } from '../cli/helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-s3-kill-'));
let s3: S3rverHandle;
let client: S3Client;
const env = cleanEnv({ AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
const src = join(tmp, 'src');
/** One 48 MiB shard (6 parts of the writer's default 8 MiB), uncompressed so the bytes are what they are. */
const packArgs = (dest: string, h: S3rverHandle = s3): string[] => ['shard', 'pack', src, dest, '--shard-size', '64MiB', '--codec', 'none', '--workers', '0', '--progress', 'none', '--s3-endpoint', h.endpoint];

beforeAll(async () => {
  s3 = await startS3rver();
  client = s3.client();
  mkdirSync(join(src, 'd'), { recursive: true });
  for (let i = 0; i < 48; i++) writeFileSync(join(src, 'd', `f${String(i).padStart(2, '0')}.bin`), randomBytes(1024 * 1024));
  writeFileSync(join(src, 'small.txt'), 'small');
});
afterAll(async () => {
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function uploads(prefix: string): Promise<{ key: string; id: string }[]> {
  const r = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Uploads ?? []).map((u) => ({ key: u.Key as string, id: u.UploadId as string }));
}

async function checkpoint(prefix: string, c: S3Client = client): Promise<{ partial?: { name: string; id: string } } | undefined> {
  try {
    const r = await c.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}pack-checkpoint.json` }));
    return JSON.parse(await r.Body!.transformToString()) as { partial?: { name: string; id: string } };
  } catch {
    return undefined;
  }
}

/** Parts of an upload s3rver holds completely (files named by part number, 8 MiB: the writer's default part). */
function storedParts(h: S3rverHandle, id: string): number {
  const dir = join(h.dir, h.bucket, '._S3rver_uploads', id);
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).filter((n) => /^\d+$/.test(n) && statSync(join(dir, n), { throwIfNoEntry: false })?.size === 8 * 1024 * 1024).length;
}

/** Starts a pack and SIGKILLs it once the checkpoint names an upload that has a stored part; returns its UploadId. */
async function killMidShard(h: S3rverHandle, dest: string, prefix: string): Promise<string> {
  const child = spawn(NODE, [BIN, ...packArgs(dest, h)], { env, stdio: 'ignore' });
  const c = h === s3 ? client : h.client();
  try {
    let found: string | undefined;
    for (let i = 0; i < 3000 && found === undefined && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const id = (await checkpoint(prefix, c))?.partial?.id;
      if (id !== undefined && storedParts(h, id) >= 1) found = id;
    }
    expect(child.exitCode, 'the pack ended before a part was stored and recorded').toBeNull();
    expect(found).toBeDefined();
    process.kill(child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(child.signalCode).toBe('SIGKILL');
    return found!;
  } finally {
    killQuietly(child);
  }
}

async function expectVerified(dest: string, h: S3rverHandle = s3): Promise<string> {
  const v = await runCli(['shard', 'verify', dest, '--progress', 'none', '--s3-endpoint', h.endpoint], { env, timeoutMs: 120_000 });
  expect(v.code, v.stdout + v.stderr).toBe(0);
  expect(v.stdout).toMatch(/generation 1: 1 shards, 49 files \(48\.0 MiB\) verified, 0 problems/);
  return v.stdout;
}

it('the resumed pack aborts the multipart upload its checkpoint recorded, and the set verifies', async () => {
  const prefix = 'sets/recorded/';
  const dest = `s3://${s3.bucket}/${prefix}`;
  const id = await killMidShard(s3, dest, prefix);
  // Still there after the kill: parts stored, nothing lists it as an object.
  const left = { key: `${prefix}shards/g000001-000001.shard`, id };
  expect(await uploads(prefix)).toEqual([left]);
  expect(storedParts(s3, left.id)).toBeGreaterThanOrEqual(1);

  const r = await runCli(packArgs(dest), { env, timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/aborted 1 unfinished shard upload left by an interrupted run/);
  expect(r.stdout).toMatch(/generation 1: 1 shards written, 49 files/);
  expect(r.stderr).not.toMatch(/left alone/);
  expect(await uploads(prefix)).toEqual([]);
  expect(existsSync(join(s3.dir, s3.bucket, '._S3rver_uploads', left.id))).toBe(false);
  expect(await checkpoint(prefix)).toBeUndefined();
  await expectVerified(dest);
}, 300_000);

it('an upload no checkpoint names is left while younger than the age, and aborted by --abort-uploads-older-than 0', async () => {
  const prefix = 'sets/unrecorded/';
  const dest = `s3://${s3.bucket}/${prefix}`;
  const left = { key: `${prefix}shards/g000001-000001.shard`, id: await killMidShard(s3, dest, prefix) };
  expect(await uploads(prefix)).toEqual([left]);
  // As if the run had died before its checkpoint named the upload.
  await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `${prefix}pack-checkpoint.json` }));

  const r = await runCli(packArgs(dest), { env, timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).not.toMatch(/aborted/);
  expect(r.stderr).toMatch(/1 unfinished shard upload under .* \(g000001-000001\.shard started [^)]+\) younger than 24 h left alone/);
  expect(await uploads(prefix)).toEqual([left]);
  // verify reports it (a note, not a problem: a writer may be running).
  expect(await expectVerified(dest)).toContain(`note: unfinished upload of g000001-000001.shard (${left.id}, started `);

  const again = await runCli([...packArgs(dest), '--abort-uploads-older-than', '0'], { env, timeoutMs: 120_000 });
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toMatch(/aborted 1 unfinished shard upload/);
  expect(again.stdout).toMatch(/up to date/);
  expect(await uploads(prefix)).toEqual([]);
  expect(await expectVerified(dest)).not.toContain('unfinished upload');
}, 300_000);

it('stock s3rver (no ListMultipartUploads, no AbortMultipartUpload): the pack says the upload cannot be cleaned up, and still completes', async () => {
  const stock = await startStockS3rver();
  try {
    const prefix = 'sets/stock/';
    const dest = `s3://${stock.bucket}/${prefix}`;
    const id = await killMidShard(stock, dest, prefix);
    const r = await runCli(packArgs(dest, stock), { env, timeoutMs: 180_000 });
    expect(r.code, r.stderr + stock.logTail()).toBe(0);
    expect(r.stdout).not.toMatch(/aborted/);
    expect(r.stderr).toMatch(/unfinished shard uploads under s3:\/\/portico-test\/sets\/stock\/ cannot be cleaned up: the S3 store does not implement (ListMultipartUploads|AbortMultipartUpload)/);
    expect(r.stdout).toMatch(/generation 1: 1 shards written, 49 files/);
    // The parts stay in the store: nothing can remove them through the S3 API there.
    expect(storedParts(stock, id)).toBeGreaterThanOrEqual(1);
    await expectVerified(dest, stock);
  } finally {
    await stock.stop();
  }
}, 300_000);
