/**
 * Boots the real gateway stack in-process (metadata store, local users, backends, VFS, sessions,
 * the WebDAV plugin) on 127.0.0.1 and a free port, for tests that drive it with real clients.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import type { ProtocolDescriptor } from '../../src/server/plugin.ts';
import { webdavProtocol, type WebdavPlugin } from '../../protocols/webdav/plugin.ts';
import { freePort } from '../cli/helpers.ts';

export interface DavStack {
  gateway: Gateway;
  port: number;
  /** http://127.0.0.1:PORT */
  origin: string;
  tmp: string;
  /** Directory of the local share ("disk"), when one was configured. */
  diskDir: string;
  addUser(name: string, password: string, groups?: string[]): Promise<void>;
  /** keep: leave the state and data in place (restart tests pass `tmp` to the next startDav). */
  stop(opts?: { keep?: boolean }): Promise<void>;
}

export interface DavStackOptions {
  /** Extra share definitions (besides "mem" on memory: and "disk" on a local directory). */
  shares?: Record<string, unknown>[];
  webdav?: Record<string, unknown>;
  /** Further config overrides (dotted keys). */
  config?: Record<string, unknown>;
  log?: Writable;
  /** Reuse a previous stack's directory (state and data survive: a restart). */
  tmp?: string;
}

class Sink extends Writable {
  override _write(_c: Buffer, _e: string, cb: () => void): void {
    cb();
  }
}

export async function startDav(opts: DavStackOptions = {}): Promise<DavStack> {
  const tmp = opts.tmp ?? mkdtempSync(join(tmpdir(), 'portico-dav-'));
  const diskDir = join(tmp, 'disk');
  mkdirSync(diskDir, { recursive: true });
  const port = await freePort();
  const config = loadConfig({
    env: {},
    overrides: {
      'server.stateDir': join(tmp, 'state'),
      'admin.port': 0,
      'auth.bcryptRounds': 4,
      'log.level': opts.log ? 'debug' : 'silent',
      'log.format': 'json',
      'log.audit.enabled': false,
      'protocols.nfs.port': 0,
      'protocols.smb.port': 0,
      'protocols.webdav.port': port,
      'protocols.webdav.listen': '127.0.0.1',
      ...Object.fromEntries(Object.entries(opts.webdav ?? {}).map(([k, v]) => [`protocols.webdav.${k}`, v])),
      ...opts.config,
      shares: [{ name: 'mem', source: 'memory:' }, { name: 'disk', source: diskDir }, ...(opts.shares ?? [])],
    },
  });
  const registry = new Map<string, ProtocolDescriptor>([['webdav', webdavProtocol]]);
  const logger = createLogger(config.log, { destination: opts.log ?? new Sink() });
  const gateway = new Gateway(config, { registry, logger, audit: logger, stderr: new Sink() });
  await gateway.start();
  const plugin = gateway.plugins.find((p) => p.name === 'webdav') as WebdavPlugin;
  const bound = plugin.address()!.port;
  return {
    gateway,
    port: bound,
    origin: `http://127.0.0.1:${bound}`,
    tmp,
    diskDir,
    addUser: async (name, password, groups = []) => {
      await gateway.users!.addUser({ name, password, groups });
    },
    stop: async (o = {}) => {
      await gateway.stop(0);
      if (!o.keep) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * One DAV stack for the calling test file (or describe block) with the given local users (name ->
 * password): started before its tests and handed to `set`, stopped after them.
 */
export function useDav(set: (stack: DavStack) => void, users: Record<string, string>, opts: DavStackOptions = {}): void {
  let stack: DavStack | undefined;
  beforeAll(async () => {
    stack = await startDav(opts);
    for (const [name, password] of Object.entries(users)) await stack.addUser(name, password);
    set(stack);
  });
  afterAll(async () => {
    await stack?.stop();
  });
}

export interface DavResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** One raw HTTP request (no URL normalisation: the path is sent exactly as given). */
export function dav(
  stack: { port: number },
  method: string,
  path: string,
  o: { headers?: Record<string, string | number>; body?: string | Buffer; auth?: [string, string] | null } = {},
): Promise<DavResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...o.headers };
    if (o.auth) headers.Authorization = `Basic ${Buffer.from(`${o.auth[0]}:${o.auth[1]}`).toString('base64')}`;
    if (o.body !== undefined) headers['Content-Length'] = Buffer.byteLength(o.body);
    const req = httpRequest({ host: '127.0.0.1', port: stack.port, method, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (killed after timeoutMs). */
export function run(cmd: string, args: string[], o: { input?: string; cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(o.input ?? '');
  });
}
