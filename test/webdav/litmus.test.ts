/**
 * litmus (the WebDAV conformance suite: basic, copymove, props, locks, http) against the real
 * gateway stack, on the memory backend and on the local-disk backend. Every suite must report
 * 0 failures and no warnings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startDav, type DavStack } from './helpers.ts';

const SUITES = ['basic', 'copymove', 'props', 'locks', 'http'];

let stack: DavStack;
let work: string;

beforeAll(async () => {
  stack = await startDav();
  await stack.addUser('alice', 'litmus-secret');
  work = mkdtempSync(join(tmpdir(), 'portico-litmus-'));
});

afterAll(async () => {
  await stack?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Summary {
  suite: string;
  run: number;
  passed: number;
  failed: number;
}

function summaries(out: string): Summary[] {
  const re = /<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g;
  return [...out.matchAll(re)].map((m) => ({ suite: m[1]!, run: Number(m[2]), passed: Number(m[3]), failed: Number(m[4]) }));
}

describe('litmus', () => {
  for (const share of ['mem', 'disk']) {
    it(`passes every suite on share "${share}"`, async () => {
      const r = await run('litmus', [`${stack.origin}/${share}/`, 'alice', 'litmus-secret'], { cwd: work, timeoutMs: 120_000 });
      const lines = r.stdout.split('\n').filter((l) => l.startsWith('<- summary') || /warning/i.test(l));
      console.log(`litmus on ${share}:\n${lines.join('\n')}`);
      const s = summaries(r.stdout);
      expect(s.map((x) => x.suite)).toEqual(SUITES);
      for (const x of s) {
        expect(x.failed, `${x.suite}: ${r.stdout}`).toBe(0);
        expect(x.passed).toBe(x.run);
      }
      expect(s.reduce((n, x) => n + x.passed, 0)).toBe(104);
      expect(r.stdout).not.toMatch(/WARNING/);
      expect(r.code).toBe(0);
    }, 180_000);
  }
});
