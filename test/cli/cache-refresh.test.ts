/**
 * `portico cache refresh` against a running gateway: the CLI derives the admin token from the
 * state directory's secret; the admin endpoint refuses callers without it, and answers 404 for an
 * unknown share.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, NODE, ROOT, cleanEnv, freePort, killQuietly, runCli } from './helpers.ts';

let child: ChildProcess | undefined;
let tmp: string | undefined;
afterEach(() => {
  killQuietly(child);
  child = undefined;
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
});

describe('portico cache refresh', () => {
  it('refreshes through the admin endpoint with the derived token, and only with it', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'portico-cache-'));
    const data = join(tmp, 'data');
    const state = join(tmp, 'state');
    mkdirSync(data);
    const adminPort = await freePort();
    const config = join(tmp, 'portico.yaml');
    writeFileSync(config, `server:\n  stateDir: ${state}\nadmin:\n  port: ${adminPort}\nprotocols:\n  webdav: { port: 0 }\n  nfs: { port: 0 }\n  smb: { port: 0 }\nshares:\n  - name: data\n    source: ${data}\n`);
    const proc = (child = spawn(NODE, [BIN, 'serve', '--config', config], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
    const end = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${adminPort}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > end) throw new Error('gateway did not start');
      await new Promise((r) => setTimeout(r, 100));
    }

    const noToken = await fetch(`http://127.0.0.1:${adminPort}/cache/refresh?share=data&path=/`, { method: 'POST' });
    expect(noToken.status).toBe(401);
    const badToken = await fetch(`http://127.0.0.1:${adminPort}/cache/refresh?share=data`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
    expect(badToken.status).toBe(401);

    const ok = await runCli(['cache', 'refresh', 'data/some/dir', '--config', config]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('refreshed data:/some/dir');

    const missing = await runCli(['cache', 'refresh', 'nosuch', '--config', config]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('404');

    const hostile = await runCli(['cache', 'refresh', 'data/../etc', '--config', config]);
    expect(hostile.code).not.toBe(0);
    expect(hostile.stderr).toContain('400');
  });
});
