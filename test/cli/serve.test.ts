import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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

async function waitForHealth(port: number, proc: ChildProcess, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`serve exited early with code ${proc.exitCode}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`/health did not answer 200 within ${deadlineMs} ms`);
}

function exited(proc: ChildProcess, ms: number): Promise<number | string | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

describe('portico serve', () => {
  it('starts, creates the first admin once, answers /health and /ready, exits 0 on SIGTERM', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'portico-serve-'));
    const data = join(tmp, 'data');
    const state = join(tmp, 'state');
    const adminPort = await freePort();
    const args = [BIN, 'serve', data, '--state', state, '--admin-port', String(adminPort), '--webdav-port', '0', '--nfs-port', '0', '--smb-port', '0'];
    const proc = (child = spawn(NODE, args, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));

    await waitForHealth(adminPort, proc, 15_000);
    expect(existsSync(data)).toBe(true);

    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toContain('portico_backend_requests_total{backend="data",op="check",status="ok"} 1');

    expect(stderr).toContain('username: admin');
    const m = /password: (\S{20})\s/.exec(stderr);
    expect(m).not.toBeNull();
    expect(stderr).toContain('portico user passwd admin');
    // The password goes to stderr once and never into the (JSON) log on stdout.
    expect(stdout).not.toContain(m![1]!);
    expect(stdout.split('\n').filter((l) => l !== '').every((l) => JSON.parse(l) !== null)).toBe(true);

    proc.kill('SIGTERM');
    expect(await exited(proc, 10_000)).toBe(0);
    expect(stdout).toContain('portico stopped');

    // The admin user is in the store; a second start does not create or print another password.
    const list = await runCli(['user', 'list', '--state', state]);
    expect(list.stdout).toMatch(/\nadmin\s/);
    const again = (child = spawn(NODE, args, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr2 = '';
    again.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr2 += d));
    await waitForHealth(adminPort, again, 15_000);
    again.kill('SIGINT');
    expect(await exited(again, 10_000)).toBe(0);
    expect(stderr2).not.toContain('password:');
  }, 60_000);

  it('exits 2 with a one-line-per-issue message for a bad flag value', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'portico-serve-'));
    const r = await runCli(['serve', join(tmp, 'd'), '--state', join(tmp, 's'), '--admin-port', '70000', '--webdav-port', '0', '--nfs-port', '0', '--smb-port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('admin.port');
    expect(r.stderr).toContain('command line');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
