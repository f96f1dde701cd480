/**
 * `portico serve shard+file:///dir` from the command line: the gateway process serves a packed set
 * over WebDAV (curl reads a file, PUT is 403 naming the shard set), and exits 0 on SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { pack } from '../../backends/shard/pack.ts';
import { LocalShardStore } from '../../backends/shard/store.ts';
import { BIN, NODE, ROOT, cleanEnv, freePort, killQuietly } from '../cli/helpers.ts';
import { makeTree } from './tree.ts';

let child: ChildProcess | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'portico-shard-serve-'));
afterAll(() => {
  killQuietly(child);
  rmSync(tmp, { recursive: true, force: true });
});

it('serves a shard set read-only from the command line', async () => {
  const { files } = makeTree(join(tmp, 'src'), 50, { seed: 51 });
  await pack(join(tmp, 'src'), new LocalShardStore(join(tmp, 'set')), { workers: 0 });
  const [adminPort, davPort] = [await freePort(), await freePort()];
  const args = [BIN, 'serve', `shard+${pathToFileURL(join(tmp, 'set')).href}`, '--state', join(tmp, 'state'), '--admin-port', String(adminPort), '--webdav-port', String(davPort), '--listen', '127.0.0.1', '--nfs-port', '0', '--smb-port', '0'];
  const proc = (child = spawn(NODE, args, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  proc.stdout!.resume();
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
    const ok = await fetch(`http://127.0.0.1:${adminPort}/ready`).then((r) => r.status === 200, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const password = /password: (\S{20})\s/.exec(stderr)?.[1];
  expect(password).toBeDefined();
  const f = files.find((x) => x.data.length > 0 && /^\/[\w.-]+$/.test(x.path))!;
  const get = spawnSync('curl', ['-sS', '-f', '-u', `admin:${password}`, `http://127.0.0.1:${davPort}/data${f.path}`], { encoding: 'buffer' });
  expect(get.status, get.stderr.toString()).toBe(0);
  expect(get.stdout.equals(f.data)).toBe(true);
  const put = spawnSync('curl', ['-sS', '-u', `admin:${password}`, '-T', '-', '-w', '\n%{http_code}', `http://127.0.0.1:${davPort}/data/new.txt`], { input: 'x', encoding: 'utf8' });
  expect(put.stdout).toMatch(/read-only shard set[\s\S]*\n403$/);
  proc.kill('SIGTERM');
  const code = await new Promise((r) => proc.once('exit', (c, s) => r(c ?? s)));
  expect(code).toBe(0);
}, 60_000);
