/**
 * The shard commands against an S3 set on s3rver, as a user runs them: pack with --s3-endpoint
 * (credentials from the AWS_* environment, as the SDK reads them), ls, verify, an incremental pack.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.ts';
import { cleanEnv, runCli } from '../cli/helpers.ts';
import { makeTree } from './tree.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-cli-s3-'));
let s3: S3rverHandle | undefined;
afterAll(async () => {
  await s3?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

it('packs, lists, verifies and updates a set on s3rver from the command line', async () => {
  s3 = await startS3rver();
  const { files } = makeTree(join(tmp, 'src'), 150, { seed: 81 });
  const env = cleanEnv({ AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
  const dest = `s3://${s3.bucket}/sets/one`;
  const ep = ['--s3-endpoint', s3.endpoint];
  const p = await runCli(['shard', 'pack', join(tmp, 'src'), dest, '--shard-size', '64KiB', '--progress', 'plain', ...ep], { env, timeoutMs: 120_000 });
  expect(p.code, p.stderr).toBe(0);
  expect(p.stdout).toMatch(new RegExp(`generation 1: \\d+ shards written, ${files.length} files`));
  const ls = await runCli(['shard', 'ls', dest, '/', ...ep], { env });
  expect(ls.code, ls.stderr).toBe(0);
  const top = files.find((f) => f.path.split('/').length === 2)!;
  expect(ls.stdout).toContain(top.path.slice(1));
  const v = await runCli(['shard', 'verify', dest, '--progress', 'none', ...ep], { env, timeoutMs: 120_000 });
  expect(v.code, v.stdout + v.stderr).toBe(0);
  expect(v.stdout).toMatch(new RegExp(`${files.length} files .* verified, 0 problems`));
  writeFileSync(join(tmp, 'src', 'added.txt'), 'added later');
  const again = await runCli(['shard', 'pack', join(tmp, 'src'), dest, '--progress', 'none', ...ep], { env, timeoutMs: 120_000 });
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toMatch(/generation 2: 1 shards written, 1 files/);
  const ls2 = await runCli(['shard', 'ls', dest, '/', ...ep], { env });
  expect(ls2.stdout).toMatch(/file\s+11\s+added\.txt\s+g000002-000001\.shard/);
}, 180_000);
