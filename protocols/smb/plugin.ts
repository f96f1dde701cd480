/**
 * The SMB2/3 protocol plugin: the server of server/ (connection loop and commands over the wire
 * layer) on protocols.smb.port/listen, over the gateway's SessionManager. Shares are those whose
 * `protocols` include `smb` (or name none), plus IPC$ for share listing.
 *
 * Config (protocols.smb): `signing` required|enabled (default required: every request after
 * SESSION_SETUP must be signed or encrypted); `encrypt` off|desired|required (default off: encrypted
 * when the client asks; desired: every SMB3 session told to encrypt; required: and unencrypted
 * access refused, 2.x clients get no session). Per share, `shares[].smb.encrypt` (the same three
 * values; absent = the global) sets TREE_CONNECT's SHAREFLAG_ENCRYPT_DATA (server/share-policy.ts).
 */
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProtocolContext, ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';
import { SmbServer } from './server/server.ts';
import { shareEncryptModes } from './server/share-policy.ts';

export interface SmbOptions {
  port: number;
  listen: string;
  signingRequired: boolean;
  encrypt: 'off' | 'desired' | 'required';
  /** `shares[].smb.encrypt` where written (server/share-policy.ts). */
  shareEncrypt: Map<string, 'off' | 'desired' | 'required'>;
}

export function smbOptions(config: ProtocolContext['config']): SmbOptions {
  const o = config.protocols.smb as { port: number; listen?: string; signing?: 'required' | 'enabled'; encrypt?: 'off' | 'desired' | 'required' };
  const encrypt = o.encrypt === 'desired' || o.encrypt === 'required' ? o.encrypt : 'off';
  return { port: o.port, listen: o.listen ?? config.server.listen, signingRequired: o.signing !== 'enabled', encrypt, shareEncrypt: shareEncryptModes(config.shares) };
}

/**
 * The server GUID (MS-SMB2 3.3.1.5), kept in <stateDir>/smb-server-guid so clients see the same
 * server across restarts (Windows keys its connection and lease state by it).
 */
export function loadOrCreateServerGuid(stateDir: string): Buffer {
  const file = join(stateDir, 'smb-server-guid');
  try {
    const b = readFileSync(file);
    if (b.length === 16) return b;
  } catch {
    // first start: made below
  }
  const guid = randomBytes(16);
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(`${file}.tmp`, guid, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return guid;
}

export class SmbPlugin implements ProtocolPlugin {
  readonly name = 'smb';
  private srv: SmbServer | undefined;
  private bound: AddressInfo | undefined;
  private where = 'smb (not started)';

  ready(): boolean {
    return this.bound !== undefined;
  }

  describe(): string {
    return `smb on ${this.where}`;
  }

  address(): AddressInfo | undefined {
    return this.bound;
  }

  get server(): SmbServer | undefined {
    return this.srv;
  }

  async start(ctx: ProtocolContext): Promise<void> {
    const o = smbOptions(ctx.config);
    const srv = (this.srv = new SmbServer({ sessions: ctx.sessions, logger: ctx.logger, signingRequired: o.signingRequired, encrypt: o.encrypt, shareEncrypt: o.shareEncrypt, serverGuid: loadOrCreateServerGuid(ctx.config.server.stateDir) }));
    try {
      this.bound = await srv.listen(o.port, o.listen);
    } catch (e) {
      // Port 445 needs privileges: the other protocols keep serving and /ready names smb as not listening.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EADDRINUSE') throw e;
      this.where = `${o.listen}:${o.port} (not listening: ${code})`;
      ctx.logger.error(
        { err: e, port: o.port },
        code === 'EACCES'
          ? `smb cannot bind ${o.listen}:${o.port}: give node CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)), or listen elsewhere with --smb-port (e.g. 4445; in Docker map -p 445:4445)`
          : `smb cannot bind ${o.listen}:${o.port}: the port is in use (a Samba smbd?); stop it or choose another with --smb-port`,
      );
      return;
    }
    this.where = `${o.listen}:${this.bound.port}`;
  }

  async stop(_graceMs: number): Promise<void> {
    const srv = this.srv;
    this.bound = undefined;
    this.srv = undefined;
    await srv?.close();
  }
}

export const smbProtocol: ProtocolDescriptor = {
  name: 'smb',
  defaultPort: 445,
  create: () => new SmbPlugin(),
};
