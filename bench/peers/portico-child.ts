/**
 * Portico as a child process for the WebDAV bench, started the way a user starts it: a YAML config
 * (one local-directory share named "share", WebDAV on 127.0.0.1:PORT, the other protocols and the
 * admin port off, the audit trail to a file as the peers write access logs), `portico user add
 * --password-stdin`, then `portico serve --config`. Default auth settings (bcrypt cost 12): the bench
 * measures what a deployment gets. A child rather than in-process so the bench client never shares
 * its event loop, and so /proc/PID/status shows the server's own memory.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, stopChild, waitForHttp, type PeerServer } from './peers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const BIN = join(ROOT, 'bin', 'portico.js');

/** The caller's environment without PORTICO_* (they would change the config). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTICO_')) env[k] = v;
  return env;
}

function runPortico(args: string[], input: string, bin = BIN): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [bin, ...args], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(input);
  });
}

export interface PorticoChildOptions {
  dir: string;
  user: string;
  pass: string;
  port?: number;
  /** The share's backend options (`shares[].options`), e.g. `{ fsync: false }`. */
  shareOptions?: Record<string, unknown>;
  /** Server name in results (default 'portico'). */
  name?: string;
  /** Merged over `protocols` (e.g. `{ smb: { port, listen } }` for the SMB bench). */
  protocols?: Record<string, unknown>;
  /** Extra arguments for node before the script (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Another tree's bin/portico.js (a baseline build measured in the same run); default this tree's. */
  bin?: string;
}

export async function startPorticoChild(o: PorticoChildOptions): Promise<PeerServer> {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-peer-portico-'));
  const port = o.port ?? (await freePort());
  const conf = join(tmp, 'portico.yaml');
  mkdirSync(join(tmp, 'state'));
  writeFileSync(
    conf,
    stringify({
      server: { listen: '127.0.0.1', stateDir: join(tmp, 'state'), shutdownGraceMs: 2000 },
      admin: { port: 0 },
      log: { level: 'warn', format: 'json', audit: { enabled: true, file: join(tmp, 'audit.log') } },
      protocols: { webdav: { port }, nfs: { port: 0 }, smb: { port: 0 }, ...o.protocols },
      shares: [{ name: 'share', source: o.dir, ...(o.shareOptions ? { options: o.shareOptions } : {}) }],
    }),
  );
  const add = await runPortico(['user', 'add', o.user, '--password-stdin', '--config', conf], `${o.pass}\n`, o.bin);
  if (add.code !== 0) throw new Error(`portico user add failed (${add.code}): ${add.out}`);

  const child = spawn(NODE, [...(o.nodeArgs ?? []), o.bin ?? BIN, 'serve', '--config', conf], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const logTail = (): string => output.split('\n').slice(-30).join('\n');
  const server: PeerServer = {
    name: o.name ?? 'portico',
    url: `http://127.0.0.1:${port}/share/`,
    port,
    pid: child.pid!,
    child,
    auth: { user: o.user, pass: o.pass },
    tmp,
    logTail,
    stop: async () => {
      await stopChild(child, 10_000);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    await waitForHttp(server.url, child, 30_000, logTail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** VmRSS and VmHWM of a process in bytes (undefined once it is gone). */
export function memoryOf(pid: number, readFile: (p: string) => string): { rss: number; hwm: number } | undefined {
  let text: string;
  try {
    text = readFile(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
