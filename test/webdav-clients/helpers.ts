/**
 * Shared pieces of the real-client WebDAV tests: a server to talk to, a way to run client programs
 * without blocking the event loop, and file trees with their hashes.
 *
 * The server is the real Portico gateway (src/server/gateway.ts) in this process, with the WebDAV
 * listener on a free 127.0.0.1 port, a local-directory share named "share" and one local user.
 * WEBDAV_CLIENTS_TARGET=apache runs the very same tests against Apache mod_dav with Basic auth
 * (bench/peers/peers.ts) instead: it is the reference that validates the harness and the clients on
 * this machine, so a failure seen only with Portico is Portico's.
 *
 * Client programs always run through async spawn: the server shares this event loop, so a
 * synchronous child process (execFileSync) would deadlock against it.
 */
import '../../protocols/index.ts';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { LocalUserStore } from '../../src/auth/local-users.ts';
import { loadOrCreateSecret } from '../../src/auth/secret-box.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { chownTree, freePort, makeTraversable, startApache, userIds } from '../../bench/peers/peers.ts';

export type TargetKind = 'portico' | 'apache';

export const TARGET: TargetKind = process.env.WEBDAV_CLIENTS_TARGET === 'apache' ? 'apache' : 'portico';

export const DAV_USER = 'alice';
/** Plain characters only: the password travels through rclone obscure, .netrc and davfs2 secrets. */
export const DAV_PASS = 'S3cret-pass_1';

export interface DavServer {
  kind: TargetKind;
  /** The share's base URL with a trailing slash: http://127.0.0.1:PORT/share/ */
  url: string;
  port: number;
  user: string;
  pass: string;
  /** The directory the share serves: what the server really stored. */
  dataDir: string;
  /** Recent server log lines, for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

class TailSink extends Writable {
  private lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l !== '') this.lines.push(l);
    if (this.lines.length > 200) this.lines = this.lines.slice(-100);
    cb();
  }
  tail(): string {
    return this.lines.slice(-40).join('\n');
  }
}

/** Starts the target server (Portico unless WEBDAV_CLIENTS_TARGET=apache) over a fresh directory. */
export async function startDavServer(): Promise<DavServer> {
  return TARGET === 'apache' ? startApacheTarget() : startPortico();
}

async function startPortico(): Promise<DavServer> {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-davc-'));
  const dataDir = join(tmp, 'data');
  const stateDir = join(tmp, 'state');
  mkdirSync(dataDir);
  const port = await freePort();
  const config = loadConfig({
    env: {},
    overrides: {
      'server.stateDir': stateDir,
      'server.listen': '127.0.0.1',
      'server.shutdownGraceMs': 1000,
      'admin.port': 0,
      'auth.bcryptRounds': 4,
      'log.level': 'warn',
      'log.audit.enabled': false,
      'protocols.webdav.port': port,
      'protocols.nfs.port': 0,
      'protocols.smb.port': 0,
      shares: [{ name: 'share', source: dataDir }],
    },
  });
  // The user exists before the first start, so the first-run policy never creates `admin`.
  const store = MetadataStore.open(stateDir);
  try {
    const secret = loadOrCreateSecret(stateDir, config.auth.secretKey);
    await new LocalUserStore(store, { secret, bcryptRounds: 4 }).addUser({ name: DAV_USER, password: DAV_PASS });
  } finally {
    store.close();
  }
  const sink = new TailSink();
  const gateway = new Gateway(config, { logger: createLogger(config.log, { destination: sink }), stderr: sink });
  await gateway.start();
  const cleanup = async (): Promise<void> => {
    try {
      await gateway.stop(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  if (!gateway.plugins.some((p) => p.name === 'webdav')) {
    await cleanup();
    throw new Error('Portico started without a WebDAV listener (protocol "webdav" is not registered in protocols/index.ts)');
  }
  return {
    kind: 'portico',
    url: `http://127.0.0.1:${port}/share/`,
    port,
    user: DAV_USER,
    pass: DAV_PASS,
    dataDir,
    logTail: () => sink.tail(),
    stop: cleanup,
  };
}

async function startApacheTarget(): Promise<DavServer> {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-davc-apache-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(dataDir);
  makeTraversable(dataDir);
  const www = userIds('www-data');
  if (!www) throw new Error('no www-data user for Apache');
  chownTree(dataDir, www.uid, www.gid);
  const peer = await startApache({ dir: dataDir, auth: { user: DAV_USER, pass: DAV_PASS } });
  return {
    kind: 'apache',
    url: peer.url,
    port: peer.port,
    user: DAV_USER,
    pass: DAV_PASS,
    dataDir,
    logTail: () => peer.logTail(),
    stop: async () => {
      try {
        await peer.stop();
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    },
  };
}

/** Names of a server-side directory, without mod_dav_fs's private `.DAV` property store. */
export function serverNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n !== '.DAV')
    .sort();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

/** Runs a program to completion without blocking the event loop (SIGKILL after timeoutMs). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** run() that throws (with the program's output) unless it exits 0. */
export async function mustRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`);
  }
  return r;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `portico-${prefix}-`));
}

/** Writes `bytes` of random data in 1 MiB chunks (never the whole file in memory). */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  const chunk = 1024 * 1024;
  for (let left = bytes; left > 0; left -= chunk) {
    if (!out.write(randomBytes(Math.min(chunk, left)))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await finished(out);
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * sha256 of every regular file under root, by '/'-separated relative path (directories are implied by
 * the paths; `ignore` drops names such as `.DAV` or `lost+found`).
 */
export async function hashTree(root: string, ignore: (name: string) => boolean = () => false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (ignore(e.name)) continue;
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(join(dir, e.name), r);
      else if (e.isFile()) out.set(r, await sha256File(join(dir, e.name)));
    }
  };
  await walk(root, '');
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Names that exercise URL encoding: spaces, NFC accents, CJK, emoji, and characters that are
 * special in URLs ('%', '#', '&', '+', ';', '=', '\'') or in XML hrefs ('&').
 */
export const AWKWARD_NAMES = [
  'plain.txt',
  'with space.txt',
  '  leading and trailing  .dat',
  'café crème.txt',
  'Ünïcødé – dash.bin',
  '日本語のファイル.txt',
  'emoji 🎉 party.dat',
  '100% done.txt',
  'hash #1.txt',
  "a&b+c;d=e 'q'.txt",
  '[brackets] (parens) {braces}.txt',
].map((n) => n.normalize('NFC'));

export interface TreeOptions {
  /** Total regular files (the big file included). */
  files: number;
  /** Size of one extra-large file at `big/large file.bin`; 0 = none. */
  bigFileBytes: number;
}

/**
 * A generated tree: nested directories (up to 4 deep) with awkward names, files of mixed sizes
 * (0 B, 1 B, a few KiB, up to ~3 MiB) and random content. Every directory holds at least one file
 * (rclone does not copy empty directories by default). Returns the relative file paths.
 */
export async function makeTree(root: string, opts: TreeOptions): Promise<string[]> {
  const dirs = ['', 'docs', 'docs/sub dir', 'docs/sub dir/déjà vu', 'docs/sub dir/déjà vu/四层', 'media', 'media/photos 2024', 'empty-ish', 'big'];
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  const sizes = [0, 1, 17, 4096, 4097, 65_536, 100_000, 1_048_576, 3_000_001];
  const files: string[] = [];
  let i = 0;
  if (opts.bigFileBytes > 0) {
    await writeRandomFile(join(root, 'big', 'large file.bin'), opts.bigFileBytes);
    files.push('big/large file.bin');
  }
  while (files.length < opts.files) {
    const dir = dirs[i % (dirs.length - 1)] as string;
    const base = AWKWARD_NAMES[i % AWKWARD_NAMES.length] as string;
    const name = `${String(i).padStart(3, '0')} ${base}`;
    const rel = dir === '' ? name : `${dir}/${name}`;
    // Mostly small files, as real trees are; a few larger ones.
    const size = sizes[(i * 7) % sizes.length] as number;
    writeFileSync(join(root, rel), size > 0 ? randomBytes(size) : Buffer.alloc(0));
    files.push(rel);
    i++;
  }
  return files;
}

/** An href/URL path for a share-relative path: each segment percent-encoded. */
export function urlFor(base: string, rel: string): string {
  return base + rel.split('/').map(encodeURIComponent).join('/');
}
