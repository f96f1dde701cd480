/**
 * A pack to S3 killed mid-shard leaves a multipart upload (parts stored, no object): the next pack
 * aborts it. The recorded case: the checkpoint names the upload, the resumed run aborts it and the
 * set verifies. The unrecorded case (a crash before the checkpoint named it; the checkpoint deleted
 * here): a younger upload is reported and left alone, `--abort-uploads-older-than 0` aborts it.
 * On s3rver, whose ListMultipartUploads and AbortMultipartUpload come from test/helpers/s3rver.ts.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { BIN, NODE, cleanEnv, killQuietly, runCli } from '../cli/helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-s3-kill-'));
let s3: S3rverHandle;
let client: S3Client;
const env = cleanEnv({ AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
const src = join(tmp, 'src');
/** One 48 MiB shard (6 parts of the writer's default 8 MiB), uncompressed so the bytes are what they are. */
const packArgs = (dest: string): string[] => ['shard', 'pack', src, dest, '--shard-size', '64MiB', '--codec', 'none', '--workers', '0', '--progress', 'none', '--s3-endpoint', s3.endpoint];

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

async function checkpoint(prefix: string): Promise<{ partial?: { name: string; id: string } } | undefined> {
  try {
    const r = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}pack-checkpoint.json` }));
    return JSON.parse(await r.Body!.transformToString()) as { partial?: { name: string; id: string } };
  } catch {
    return undefined;
  }
}

/** Parts s3rver has stored completely for an upload (its files named by part number). */
function storedParts(id: string): number {
  const dir = join(s3.dir, s3.bucket, '._S3rver_uploads', id);
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^\d+$/.test(n)).length : 0;
}

/** Starts a pack and SIGKILLs it once an upload has a stored part and the checkpoint names it. */
async function killMidShard(dest: string, prefix: string): Promise<{ key: string; id: string }> {
  const child = spawn(NODE, [BIN, ...packArgs(dest)], { env, stdio: 'ignore' });
  try {
    let found: { key: string; id: string } | undefined;
    for (let i = 0; i < 3000 && found === undefined && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const [u] = await uploads(prefix);
      if (u === undefined || storedParts(u.id) < 1) continue;
      if ((await checkpoint(prefix))?.partial?.id === u.id) found = u;
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

async function expectVerified(dest: string): Promise<string> {
  const v = await runCli(['shard', 'verify', dest, '--progress', 'none', '--s3-endpoint', s3.endpoint], { env, timeoutMs: 120_000 });
  expect(v.code, v.stdout + v.stderr).toBe(0);
  expect(v.stdout).toMatch(/generation 1: 1 shards, 49 files \(48\.0 MiB\) verified, 0 problems/);
  return v.stdout;
}

it('the resumed pack aborts the multipart upload its checkpoint recorded, and the set verifies', async () => {
  const prefix = 'sets/recorded/';
  const dest = `s3://${s3.bucket}/${prefix}`;
  const left = await killMidShard(dest, prefix);
  expect(left.key).toBe(`${prefix}shards/g000001-000001.shard`);
  // Still there after the kill: parts stored, nothing lists it as an object.
  expect(await uploads(prefix)).toEqual([left]);
  expect(storedParts(left.id)).toBeGreaterThanOrEqual(1);

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
  const left = await killMidShard(dest, prefix);
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
