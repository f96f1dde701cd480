/**
 * WebDAV served from an S3 bucket (a real S3-compatible server, s3rver, over HTTP), checked with
 * litmus: every suite of the WebDAV conformance suite must pass on an s3:// share as it does on
 * memory and local disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startDav, type DavStack } from '../webdav/helpers.ts';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.ts';

let s3: S3rverHandle;
let stack: DavStack;
let work: string;

beforeAll(async () => {
  s3 = await startS3rver();
  stack = await startDav({
    shares: [{ name: 's3', source: `s3://${s3.bucket}/litmus-share`, options: { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS } }],
  });
  await stack.addUser('alice', 'litmus-secret');
  work = mkdtempSync(join(tmpdir(), 'portico-s3-litmus-'));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await s3?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('litmus on an s3:// share', () => {
  it('passes every suite', async () => {
    const r = await run('litmus', [`${stack.origin}/s3/`, 'alice', 'litmus-secret'], { cwd: work, timeoutMs: 240_000 });
    const summaries = [...r.stdout.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)].map((m) => ({
      suite: m[1]!,
      run: Number(m[2]),
      passed: Number(m[3]),
      failed: Number(m[4]),
    }));
    console.log(`litmus on s3:\n${r.stdout.split('\n').filter((l) => l.startsWith('<- summary') || /warning|FAIL/i.test(l)).join('\n')}`);
    expect(summaries.map((x) => x.suite)).toEqual(['basic', 'copymove', 'props', 'locks', 'http']);
    for (const x of summaries) expect(x.failed, `${x.suite}: ${r.stdout}`).toBe(0);
    expect(summaries.reduce((n, x) => n + x.passed, 0)).toBe(104);
    expect(r.code).toBe(0);
  }, 300_000);
});
