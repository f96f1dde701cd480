/**
 * Boots the real gateway (metadata store, local users, backends, VFS, sessions) with the NFS and
 * WebDAV plugins on 127.0.0.1 and free ports, for tests that drive NFS with real clients and check
 * the result over WebDAV or the session. Shares: "mem" (memory:) and "disk" (a local directory).
 * A local user "root" with uid 0 exists (squash none), so clients running as root act as it.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import type { ProtocolDescriptor } from '../../src/server/plugin.ts';
import { webdavProtocol, type WebdavPlugin } from '../../protocols/webdav/plugin.ts';
import { nfsProtocol, type NfsPlugin } from '../../protocols/nfs/plugin.ts';
import { smbProtocol, type SmbPlugin } from '../../protocols/smb/plugin.ts';
import { freePort } from '../cli/helpers.ts';

export interface NfsStack {
  gateway: Gateway;
  nfs: NfsPlugin;
  nfsPort: number;
  davPort: number;
  /** With `smb: true`: the SMB server's port (127.0.0.1), else 0. */
  smbPort: number;
  tmp: string;
  diskDir: string;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

class Sink extends Writable {
  override _write(_c: Buffer, _e: string, cb: () => void): void {
    cb();
  }
}

export async function startNfs(opts: { shares?: Record<string, unknown>[]; config?: Record<string, unknown>; tmp?: string; nfsPort?: number; log?: Writable; smb?: boolean; users?: { name: string; uid: number; gid?: number; groups?: string[] }[] } = {}): Promise<NfsStack> {
  const tmp = opts.tmp ?? mkdtempSync(join(tmpdir(), 'portico-nfs-'));
  const diskDir = join(tmp, 'disk');
  mkdirSync(diskDir, { recursive: true });
  const davPort = await freePort();
  const nfsPort = opts.nfsPort ?? (await freePort());
  // SMB as well (the boot of test/smb/gateway.ts) for tests that cross NFS, SMB and WebDAV.
  const smbPort = opts.smb === true ? await freePort() : 0;
  const config = loadConfig({
    env: {},
    overrides: {
      'server.stateDir': join(tmp, 'state'),
      'admin.port': 0,
      'auth.bcryptRounds': 4,
      'log.level': opts.log ? 'debug' : 'silent',
      'log.format': 'json',
      'log.audit.enabled': false,
      'protocols.smb.port': smbPort,
      'protocols.smb.listen': '127.0.0.1',
      'protocols.webdav.port': davPort,
      'protocols.webdav.listen': '127.0.0.1',
      'protocols.nfs.port': nfsPort,
      'protocols.nfs.listen': '127.0.0.1',
      'protocols.nfs.squash': 'none',
      ...opts.config,
      shares: [{ name: 'mem', source: 'memory:' }, { name: 'disk', source: diskDir }, ...(opts.shares ?? [])],
    },
  });
  const registry = new Map<string, ProtocolDescriptor>([
    ['webdav', webdavProtocol],
    ['nfs', nfsProtocol],
    ...(opts.smb === true ? [['smb', smbProtocol] as const] : []),
  ]);
  const logger = createLogger(config.log, { destination: opts.log ?? new Sink() });
  const gateway = new Gateway(config, { registry, logger, audit: logger, stderr: new Sink() });
  await gateway.start();
  for (const u of opts.users ?? [{ name: 'root', uid: 0 }]) {
    if (!gateway.users!.getUser(u.name)) await gateway.users!.addUser({ name: u.name, password: 'Secret-Pass1', uid: u.uid, gid: u.gid ?? u.uid, groups: u.groups ?? [] });
  }
  const nfs = gateway.plugins.find((p) => p.name === 'nfs') as NfsPlugin;
  const dav = gateway.plugins.find((p) => p.name === 'webdav') as WebdavPlugin;
  return {
    gateway,
    nfs,
    nfsPort: nfs.address()!.port,
    davPort: dav.address()!.port,
    smbPort: opts.smb === true ? (gateway.plugins.find((p) => p.name === 'smb') as SmbPlugin).address()!.port : 0,
    tmp,
    diskDir,
    stop: async (o = {}) => {
      await gateway.stop(0);
      if (!o.keep) rmSync(tmp, { recursive: true, force: true });
    },
  };
}
