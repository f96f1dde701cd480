/**
 * Reference WebDAV servers as child processes: Apache mod_dav, nginx (dav + dav_ext) and
 * `rclone serve webdav`, each serving one directory as `/share/` on 127.0.0.1:PORT from a private
 * config in its own temp dir, stopped by PID. Used by bench/webdav-bench.ts (without auth) and by
 * test/webdav-clients (Apache with Basic auth, as the reference that validates the client harness).
 *
 * Apache and nginx refuse to serve as root, so their workers run as www-data: the caller makes the
 * served tree writable by www-data (`chownTree`). The private temp dir is chowned too (mod_dav_fs
 * opens its lock DB from the worker; nginx writes request bodies to client_body_temp_path there).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

export interface PeerAuth {
  user: string;
  pass: string;
}

export interface PeerServer {
  name: string;
  /** Base URL of the served directory, with a trailing slash: http://127.0.0.1:PORT/share/ */
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  auth: PeerAuth | undefined;
  /** The server's private temp dir (config, logs, pid file). */
  tmp: string;
  /** Last lines of the server's own error log / output, for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

/**
 * A port nothing listens on: the kernel's pick, or with BENCH_PORT_RANGE=LOW-HIGH the next free one
 * in that range (on a machine shared by several engineers, each keeps to a range of their own).
 */
let nextInRange = 0;
export async function freePort(): Promise<number> {
  const range = /^(\d+)-(\d+)$/.exec(process.env.BENCH_PORT_RANGE ?? '');
  if (!range) return listenOnce(0);
  const [low, high] = [Number(range[1]), Number(range[2])];
  for (let tries = 0; tries <= high - low; tries++) {
    const port = low + ((nextInRange++ + process.pid) % (high - low + 1));
    const got = await listenOnce(port).catch(() => undefined);
    if (got !== undefined) return got;
  }
  throw new Error(`BENCH_PORT_RANGE ${low}-${high}: no free port`);
}

function listenOnce(want: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(want, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Replaces every {{KEY}} of a template in this directory; an unknown placeholder is an error. */
export function renderTemplate(name: string, vars: Record<string, string>): string {
  const text = readFileSync(join(HERE, name), 'utf8');
  return text.replace(/\{\{([A-Z_]+)\}\}/g, (_, k: string) => {
    const v = vars[k];
    if (v === undefined) throw new Error(`${name}: no value for {{${k}}}`);
    return v;
  });
}

export function userIds(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) return undefined;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** chown -R (without following symlinks). */
export function chownTree(path: string, uid: number, gid: number): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  chownSync(path, uid, gid);
  if (st.isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
}

/** Lets www-data (the Apache/nginx worker user) reach `dir`: every ancestor gets o+x. */
export function makeTraversable(dir: string): void {
  const parts = dir.split('/').filter(Boolean);
  let p = '';
  for (const part of parts) {
    p += '/' + part;
    const mode = lstatSync(p).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(p, mode | 0o005);
  }
}

/** Polls an HTTP OPTIONS on url until any answer comes (or the child dies / time runs out). */
export async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 20_000, logTail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before answering ${url}\n${logTail()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(url, { method: 'OPTIONS', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(true));
      });
      req.on('error', () => resolve(false));
      req.setTimeout(2000, () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no answer from ${url} after ${timeoutMs} ms\n${logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

function tailOf(file: string, extra: string): string {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // not written yet
  }
  return (text + extra).split('\n').slice(-30).join('\n');
}

interface SpawnedPeer {
  name: string;
  port: number;
  tmp: string;
  auth: PeerAuth | undefined;
  cmd: string;
  args: string[];
  errorLog: string | undefined;
  env?: NodeJS.ProcessEnv;
}

async function launch(p: SpawnedPeer): Promise<PeerServer> {
  const child = spawn(p.cmd, p.args, { stdio: ['ignore', 'pipe', 'pipe'], env: p.env ?? process.env });
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString('utf8')).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  await spawned;
  const logTail = (): string => (p.errorLog ? tailOf(p.errorLog, output) : output.split('\n').slice(-30).join('\n'));
  const url = `http://127.0.0.1:${p.port}/share/`;
  const server: PeerServer = {
    name: p.name,
    url,
    port: p.port,
    pid: child.pid!,
    child,
    auth: p.auth,
    tmp: p.tmp,
    logTail,
    stop: async () => {
      await stopChild(child);
      rmSync(p.tmp, { recursive: true, force: true });
    },
  };
  try {
    await waitForHttp(url, child, 20_000, logTail);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

function peerTmp(name: string): string {
  const tmp = mkdtempSync(join(tmpdir(), `portico-peer-${name}-`));
  makeTraversable(tmp);
  return tmp;
}

function wwwData(): { uid: number; gid: number } {
  const ids = userIds('www-data');
  if (!ids) throw new Error('user www-data does not exist (it comes with Debian base-passwd)');
  return ids;
}

export interface PeerOptions {
  /** Directory served as /share/. Apache/nginx need it writable by www-data (chownTree). */
  dir: string;
  port?: number;
  /** Basic auth (Apache and rclone only); undefined = no auth. */
  auth?: PeerAuth;
}

/** Apache 2.4 mod_dav/mod_dav_fs, `apache2 -X -f CONF` (one process, threaded MPM event). */
export async function startApache(o: PeerOptions): Promise<PeerServer> {
  const tmp = peerTmp('apache');
  const port = o.port ?? (await freePort());
  let auth = '';
  if (o.auth) {
    // {SHA} is one of the formats mod_authn_file reads; no htpasswd binary needed.
    const sha = createHash('sha1').update(o.auth.pass).digest('base64');
    writeFileSync(join(tmp, 'htpasswd'), `${o.auth.user}:{SHA}${sha}\n`, { mode: 0o644 });
    auth = [
      '  AuthType Basic',
      '  AuthName "dav"',
      `  AuthUserFile "${tmp}/htpasswd"`,
      '  Require valid-user',
    ].join('\n');
  } else {
    auth = '  Require all granted';
  }
  const conf = join(tmp, 'apache2.conf');
  writeFileSync(conf, renderTemplate('apache-dav.conf', { TMP: tmp, PORT: String(port), DIR: o.dir, AUTH: auth }));
  const { uid, gid } = wwwData();
  chownSync(tmp, uid, gid);
  return launch({ name: 'apache', port, tmp, auth: o.auth, cmd: 'apache2', args: ['-X', '-f', conf], errorLog: join(tmp, 'error.log') });
}

/** nginx with dav_methods + dav_ext_methods, `daemon off` (master + workers), no auth. */
export async function startNginx(o: PeerOptions): Promise<PeerServer> {
  if (o.auth) throw new Error('the nginx peer runs without auth');
  const tmp = peerTmp('nginx');
  const port = o.port ?? (await freePort());
  const conf = join(tmp, 'nginx.conf');
  writeFileSync(conf, renderTemplate('nginx-dav.conf', { TMP: tmp, PORT: String(port), DIR: o.dir.replace(/\/+$/, '') }));
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(tmp, d));
  const { uid, gid } = wwwData();
  chownTree(tmp, uid, gid);
  return launch({ name: 'nginx', port, tmp, auth: undefined, cmd: 'nginx', args: ['-p', tmp, '-c', conf, '-e', join(tmp, 'error.log')], errorLog: join(tmp, 'error.log') });
}

/** `rclone serve webdav DIR` with --baseurl /share (runs as the caller). */
export async function startRcloneServe(o: PeerOptions): Promise<PeerServer> {
  const tmp = peerTmp('rclone');
  const port = o.port ?? (await freePort());
  const args = ['serve', 'webdav', o.dir, '--addr', `127.0.0.1:${port}`, '--baseurl', '/share', '--config', join(tmp, 'rclone.conf'), '--log-level', 'ERROR'];
  if (o.auth) args.push('--user', o.auth.user, '--pass', o.auth.pass);
  return launch({ name: 'rclone', port, tmp, auth: o.auth, cmd: 'rclone', args, errorLog: undefined });
}

/**
 * bench/peers/node-floor.ts on the Node that runs Portico: node:http answering every GET with a
 * fixed 4 KiB body from memory (the floor of any server on Node's HTTP stack).
 */
export async function startNodeFloor(o: { port?: number } = {}): Promise<PeerServer> {
  const tmp = peerTmp('node-floor');
  const port = o.port ?? (await freePort());
  const root = fileURLToPath(new URL('../..', import.meta.url));
  return launch({
    name: 'node-floor', port, tmp, auth: undefined, errorLog: undefined,
    cmd: join(root, 'node_modules', '.bin', 'node'),
    args: [join(root, 'bench', 'peers', 'node-floor.ts'), String(port)],
  });
}

/** Debian packages among `pkgs` that are not installed. */
export function missingPackages(pkgs: readonly string[]): string[] {
  return pkgs.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return r.status !== 0 || !r.stdout.includes('install ok installed');
  });
}

/**
 * apt-get installs what is missing (one `apt-get update` first). Returns the packages that are still
 * missing afterwards with apt's reason; the caller skips those peers and says so.
 */
export function aptInstall(pkgs: readonly string[], log: (line: string) => void): Map<string, string> {
  const failed = new Map<string, string>();
  const missing = missingPackages(pkgs);
  if (missing.length === 0) return failed;
  log(`installing missing peers with apt-get: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const run = (args: string[]): { status: number | null; out: string } => {
    const [cmd, ...rest] = [...sudo, ...args] as [string, ...string[]];
    const r = spawnSync(cmd, rest, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024 });
    return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
  };
  run(['apt-get', 'update', '-qq']);
  // One at a time: a package apt does not know must not keep the others from installing.
  for (const p of missing) {
    const r = run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', p]);
    if (r.status !== 0 || missingPackages([p]).length > 0) {
      failed.set(p, r.out.trim().split('\n').filter((l) => /^E:/.test(l)).join(' ') || `apt-get exited ${r.status}`);
    }
  }
  return failed;
}
