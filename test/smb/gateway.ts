/**
 * Boots the real gateway (metadata store, local users, backends, VFS, sessions) with the SMB and
 * WebDAV plugins on 127.0.0.1 and free ports, for tests that drive the SMB server with real
 * clients and check the result over WebDAV or the session. The same boot as test/nfs/gateway.ts
 * with the protocol set as a parameter. Shares: "mem" (memory:) and "disk" (a local directory).
 * A local user "alice" (password "pw-Alice-1") exists.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import type { ProtocolDescriptor } from '../../src/server/plugin.ts';
import { webdavProtocol, type WebdavPlugin } from '../../protocols/webdav/plugin.ts';
import { smbProtocol, type SmbPlugin } from '../../protocols/smb/plugin.ts';
import { freePort } from '../cli/helpers.ts';

export const ALICE = { name: 'alice', password: 'pw-Alice-1', uid: 1001 };

export interface SmbStack {
  gateway: Gateway;
  smb: SmbPlugin;
  smbPort: number;
  davPort: number;
  tmp: string;
  diskDir: string;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

class Sink extends Writable {
  override _write(_c: Buffer, _e: string, cb: () => void): void {
    cb();
  }
}

export async function startSmb(opts: { config?: Record<string, unknown>; shares?: Record<string, unknown>[]; log?: Writable; tmp?: string; smbPort?: number } = {}): Promise<SmbStack> {
  const tmp = opts.tmp ?? mkdtempSync(join(tmpdir(), 'portico-smb-'));
  const diskDir = join(tmp, 'disk');
  mkdirSync(diskDir, { recursive: true });
  const davPort = await freePort();
  const smbPort = opts.smbPort ?? (await freePort());
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
      'protocols.webdav.port': davPort,
      'protocols.webdav.listen': '127.0.0.1',
      'protocols.smb.port': smbPort,
      'protocols.smb.listen': '127.0.0.1',
      ...opts.config,
      shares: [{ name: 'mem', source: 'memory:' }, { name: 'disk', source: diskDir }, ...(opts.shares ?? [])],
    },
  });
  const registry = new Map<string, ProtocolDescriptor>([
    ['webdav', webdavProtocol],
    ['smb', smbProtocol],
  ]);
  const logger = createLogger(config.log, { destination: opts.log ?? new Sink() });
  const gateway = new Gateway(config, { registry, logger, audit: logger, stderr: new Sink() });
  await gateway.start();
  if (!gateway.users!.getUser(ALICE.name)) await gateway.users!.addUser({ name: ALICE.name, password: ALICE.password, uid: ALICE.uid, gid: ALICE.uid, groups: [] });
  const smb = gateway.plugins.find((p) => p.name === 'smb') as SmbPlugin;
  const dav = gateway.plugins.find((p) => p.name === 'webdav') as WebdavPlugin;
  return {
    gateway,
    smb,
    smbPort: smb.address()!.port,
    davPort: dav.address()!.port,
    tmp,
    diskDir,
    stop: async (o = {}) => {
      await gateway.stop(0);
      if (!o.keep) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export const HAVE_SMBCLIENT = spawnSync('smbclient', ['--version']).status === 0;

/** Runs smbclient with a private smb.conf (the machine's own must not change what it offers). */
export function smbclient(args: string[], o: { cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-smbclient-'));
  const conf = join(dir, 'smb.conf');
  writeFileSync(conf, '[global]\n  workgroup = WORKGROUP\n');
  return new Promise((resolve, reject) => {
    const child = spawn('smbclient', ['-s', conf, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(o.cwd ? { cwd: o.cwd } : {}) });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, out });
    });
  });
}
