/**
 * The NFS servers of bench/nfs-bench.ts as child processes, each serving one directory as `/share`
 * over NFSv4.1 on 127.0.0.1 and a free port, with everything private to a temp dir, stopped by PID:
 *
 * - Portico as a user starts it: a YAML config (one local-directory share "share", NFS only,
 *   `squash: none`, the default audit trail to a file), `portico user add root --uid 0`, `portico
 *   serve --config`.
 * - nfs-ganesha (Debian `nfs-ganesha` + `nfs-ganesha-vfs`): `ganesha.nfsd -F -f CONF -L LOG -p PID`
 *   with its own config (FSAL_VFS export of the directory at pseudo path /share, NFSv4 only, minor
 *   versions 1 and 2, TCP only, no NLM/RQUOTA, graceless, numeric owners, no root squash, its
 *   recovery directory in the temp dir). It touches no system state: no rpcbind is running here, so
 *   its registration fails ("Cannot register NFS V4 on TCP", a MAJ line in its log, not fatal), and
 *   its D-Bus and Kerberos set-up fail the same harmless way. It runs as root (FSAL_VFS opens files
 *   by handle: CAP_DAC_READ_SEARCH).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, stopChild } from './peers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = join(ROOT, 'node_modules', '.bin', 'node');
const BIN = join(ROOT, 'bin', 'portico.js');
export const GANESHA = '/usr/bin/ganesha.nfsd';
const GANESHA_PLUGINS = ['/usr/lib/x86_64-linux-gnu/ganesha', '/usr/lib/aarch64-linux-gnu/ganesha', '/usr/lib/ganesha'];

export interface NfsServerProcess {
  name: string;
  port: number;
  pid: number;
  tmp: string;
  logTail(): string;
  stop(): Promise<void>;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PORTICO_')) env[k] = v;
  return env;
}

/** Resolves once something accepts TCP connections on the port (or the child died / time ran out). */
async function waitForPort(port: number, child: ChildProcess, timeoutMs: number, logTail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before listening on ${port}\n${logTail()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms\n${logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function spawnKept(cmd: string, args: string[], env?: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString('utf8')).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

/** `bin`: another tree's bin/portico.js (a baseline measured in the same run, named `name`). */
export async function startPorticoNfs(dir: string, bin = BIN, name = 'portico'): Promise<NfsServerProcess> {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-nfs-bench-portico-'));
  const port = await freePort();
  const conf = join(tmp, 'portico.yaml');
  mkdirSync(join(tmp, 'state'));
  writeFileSync(
    conf,
    stringify({
      server: { listen: '127.0.0.1', stateDir: join(tmp, 'state'), shutdownGraceMs: 2000 },
      admin: { port: 0 },
      log: { level: 'warn', format: 'json', audit: { enabled: true, file: join(tmp, 'audit.log') } },
      protocols: { nfs: { port, listen: '127.0.0.1', squash: 'none' }, webdav: { port: 0 }, smb: { port: 0 } },
      shares: [{ name: 'share', source: dir }],
    }),
  );
  const add = spawnSync(NODE, [bin, 'user', 'add', 'root', '--uid', '0', '--gid', '0', '--password-stdin', '--config', conf], { env: cleanEnv(), input: 'bench-password-1\n', encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`portico user add failed (${add.status}): ${add.stdout}${add.stderr}`);
  // BENCH_PORTICO_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof": node options for Portico (profiling);
  // BENCH_BASE_NODE_ARGS: the baseline's ("base"), when they should differ (A/B of a node option).
  const args = name === 'base' ? (process.env.BENCH_BASE_NODE_ARGS ?? process.env.BENCH_PORTICO_NODE_ARGS) : process.env.BENCH_PORTICO_NODE_ARGS;
  const nodeArgs = (args ?? '').split(' ').filter(Boolean);
  const { child, output } = spawnKept(NODE, [...nodeArgs, bin, 'serve', '--config', conf], cleanEnv());
  const logTail = (): string => output().split('\n').slice(-30).join('\n');
  const server: NfsServerProcess = {
    name,
    port,
    pid: child.pid!,
    tmp,
    logTail,
    stop: async () => {
      await stopChild(child, 10_000);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    await waitForPort(port, child, 30_000, logTail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

export function ganeshaConfig(o: { port: number; dir: string; recovery: string; plugins: string }): string {
  return `# nfs-bench: private nfs-ganesha instance (NFSv4.1/4.2 over TCP on 127.0.0.1 only)
NFS_CORE_PARAM {
  Protocols = 4;
  NFS_Port = ${o.port};
  Bind_addr = 127.0.0.1;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
  Plugins_Dir = "${o.plugins}";
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 {
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = "${o.recovery}";
  Minor_Versions = 1, 2;
  Only_Numeric_Owners = true;
}
EXPORT {
  Export_Id = 1;
  Path = "${o.dir}";
  Pseudo = "/share";
  Access_Type = RW;
  Squash = No_Root_Squash;
  Protocols = 4;
  Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`;
}

export async function startGanesha(dir: string): Promise<NfsServerProcess> {
  if (!existsSync(GANESHA)) throw new Error(`${GANESHA} missing (apt-get install nfs-ganesha nfs-ganesha-vfs)`);
  const plugins = GANESHA_PLUGINS.find((p) => existsSync(join(p, 'libfsalvfs.so')));
  if (!plugins) throw new Error('libfsalvfs.so missing (apt-get install nfs-ganesha-vfs)');
  const tmp = mkdtempSync(join(tmpdir(), 'portico-nfs-bench-ganesha-'));
  const port = await freePort();
  mkdirSync(join(tmp, 'recovery'));
  const conf = join(tmp, 'ganesha.conf');
  const log = join(tmp, 'ganesha.log');
  writeFileSync(conf, ganeshaConfig({ port, dir, recovery: join(tmp, 'recovery'), plugins }));
  const { child, output } = spawnKept(GANESHA, ['-F', '-f', conf, '-L', log, '-p', join(tmp, 'ganesha.pid'), '-N', 'NIV_EVENT']);
  const logTail = (): string => {
    let text = '';
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      // not written yet
    }
    return (text + output()).split('\n').slice(-30).join('\n');
  };
  const server: NfsServerProcess = {
    name: 'ganesha',
    port,
    pid: child.pid!,
    tmp,
    logTail,
    stop: async () => {
      await stopChild(child, 15_000);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    await waitForPort(port, child, 30_000, logTail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}
