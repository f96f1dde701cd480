/**
 * litmus (the WebDAV conformance suite) on an s3:// share served by stock s3rver 3.7: the npm
 * package run as its own process without test/helpers/s3rver.ts's fixes, under
 * --openssl-legacy-provider (its DES continuation tokens). A second S3 implementation beside the
 * patched helper (test/s3/s3-litmus.test.ts). The gateway starts as a user's would: its start-up
 * recovery meets stock s3rver's 501 to ListMultipartUploads, which must switch that feature off
 * (one log line, a metric) and leave the circuit closed, so every suite passes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startDav, type DavStack } from '../webdav/helpers.ts';
import { S3RVER_CREDENTIALS } from '../helpers/s3rver.ts';
import { startStockS3rver, type StockS3rverHandle } from '../helpers/s3rver-stock.ts';

let s3: StockS3rverHandle;
let stack: DavStack;
let work: string;

beforeAll(async () => {
  s3 = await startStockS3rver();
  stack = await startDav({
    shares: [{ name: 's3', source: `s3://${s3.bucket}/litmus-share`, options: { endpoint: s3.endpoint, ...S3RVER_CREDENTIALS } }],
  });
  await stack.addUser('alice', 'litmus-secret');
  work = mkdtempSync(join(tmpdir(), 'portico-s3-stock-litmus-'));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await s3?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('litmus on an s3:// share served by stock s3rver', () => {
  it('passes every suite; the missing multipart listing leaves the circuit closed', async () => {
    const r = await run('litmus', [`${stack.origin}/s3/`, 'alice', 'litmus-secret'], { cwd: work, timeoutMs: 240_000 });
    const summaries = [...r.stdout.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)].map((m) => ({
      suite: m[1]!,
      run: Number(m[2]),
      passed: Number(m[3]),
      failed: Number(m[4]),
    }));
    console.log(`litmus on stock s3rver:\n${r.stdout.split('\n').filter((l) => l.startsWith('<- summary') || /warning|FAIL/i.test(l)).join('\n')}`);
    expect(summaries.map((x) => x.suite)).toEqual(['basic', 'copymove', 'props', 'locks', 'http']);
    for (const x of summaries) expect(x.failed, `${x.suite}: ${r.stdout}`).toBe(0);
    expect(summaries.reduce((n, x) => n + x.passed, 0)).toBe(104);
    expect(r.code).toBe(0);
    const metrics = await stack.gateway.metrics.metricsText();
    expect(metrics).toContain('portico_s3_feature_available{share="s3",feature="multipartListing"} 0');
    expect(metrics).toMatch(/portico_s3_circuit_state\{backend="s3"\} 0/);
  }, 300_000);
});
