/**
 * The NFSv4 protocol plugin: the RPC server (record marking, RPC, COMPOUND: the wire layer) on
 * protocols.nfs.port/listen, with the dispatcher of server/ over the gateway's SessionManager.
 *
 * Config (protocols.nfs): `squash` none|root|all (default root) and `anonUid`/`anonGid` (default
 * 65534) for the anonymous principal (server/principals.ts); the wire bounds (`maxRecordBytes`,
 * `maxCompoundOps`, `maxReadBytes`, `maxWriteBytes`, `maxConnections`, `maxRequestsPerConnection`,
 * `idleTimeoutMs`; defaults in NFS_DEFAULTS, src/config/schema.ts), `idmapDomain` for owners as
 * name@domain (server/idmap.ts). File handles are checked with a key
 * derived from the server's secret (auth.secretKey or <stateDir>/secret.key), so they stay valid
 * across restarts.
 */
import type { AddressInfo } from 'node:net';
import type { ProtocolContext, ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';
import { NFS_DEFAULTS } from '../../src/config/schema.ts';
import { loadOrCreateSecret } from '../../src/auth/secret-box.ts';
import { RpcServer } from './rpc-server.ts';
import { nfs4Program } from './nfs4-program.ts';
import { NfsExports } from './server/exports.ts';
import { FhCodec } from './server/filehandle.ts';
import { PrincipalMap, type Squash } from './server/principals.ts';
import { LEASE_SECONDS, NfsServer } from './server/context.ts';
import { createDispatcher } from './server/dispatcher.ts';

export interface NfsOptions {
  port: number;
  listen: string;
  squash: Squash;
  anonUid: number;
  anonGid: number;
  maxRecordBytes: number;
  maxCompoundOps: number;
  maxReadBytes: number;
  maxWriteBytes: number;
  maxConnections: number;
  maxRequestsPerConnection: number;
  idleTimeoutMs: number;
  /** owner strings as name@domain (absent: numeric, server/idmap.ts). */
  idmapDomain: string | undefined;
}

type NfsConfig = { port: number; listen?: string } & Partial<Omit<NfsOptions, 'port' | 'listen'>>;

export function nfsOptions(config: ProtocolContext['config']): NfsOptions {
  const o = config.protocols.nfs as NfsConfig;
  return {
    port: o.port,
    listen: o.listen ?? config.server.listen,
    squash: o.squash ?? NFS_DEFAULTS.squash,
    anonUid: o.anonUid ?? NFS_DEFAULTS.anonUid,
    anonGid: o.anonGid ?? NFS_DEFAULTS.anonGid,
    maxRecordBytes: o.maxRecordBytes ?? NFS_DEFAULTS.maxRecordBytes,
    maxCompoundOps: o.maxCompoundOps ?? NFS_DEFAULTS.maxCompoundOps,
    maxReadBytes: o.maxReadBytes ?? NFS_DEFAULTS.maxReadBytes,
    maxWriteBytes: o.maxWriteBytes ?? NFS_DEFAULTS.maxWriteBytes,
    maxConnections: o.maxConnections ?? NFS_DEFAULTS.maxConnections,
    maxRequestsPerConnection: o.maxRequestsPerConnection ?? NFS_DEFAULTS.maxRequestsPerConnection,
    idleTimeoutMs: o.idleTimeoutMs ?? NFS_DEFAULTS.idleTimeoutMs,
    idmapDomain: o.idmapDomain,
  };
}

export class NfsPlugin implements ProtocolPlugin {
  readonly name = 'nfs';
  private rpc: RpcServer | undefined;
  private srv: NfsServer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private where = 'nfs (not started)';
  private listening = false;

  ready(): boolean {
    return this.listening;
  }

  describe(): string {
    return `nfs on ${this.where}`;
  }

  address(): AddressInfo | undefined {
    return this.bound;
  }

  private bound: AddressInfo | undefined;

  /** The server's state (tests). */
  get server(): NfsServer | undefined {
    return this.srv;
  }

  async start(ctx: ProtocolContext): Promise<void> {
    const o = nfsOptions(ctx.config);
    const exports = NfsExports.fromConfig(ctx.config, { maxRead: o.maxReadBytes, maxWrite: o.maxWriteBytes });
    const secret = loadOrCreateSecret(ctx.config.server.stateDir, ctx.config.auth.secretKey);
    const srv = (this.srv = new NfsServer({
      sessions: ctx.sessions,
      exports,
      fh: new FhCodec(secret, exports),
      principals: new PrincipalMap(ctx.sessions.authenticator, { squash: o.squash, anonUid: o.anonUid, anonGid: o.anonGid }),
      logger: ctx.logger,
      maxCompoundOps: o.maxCompoundOps,
      idmapDomain: o.idmapDomain,
    }));
    const rpc = (this.rpc = new RpcServer([nfs4Program(createDispatcher(srv), { maxOps: o.maxCompoundOps })], {
      logger: ctx.logger,
      maxRecordBytes: o.maxRecordBytes,
      maxConnections: o.maxConnections,
      maxOutstanding: o.maxRequestsPerConnection,
      idleTimeoutMs: o.idleTimeoutMs,
    }));
    this.bound = await rpc.listen(o.port, o.listen);
    this.listening = true;
    this.where = `${o.listen}:${this.bound.port}`;
    this.timer = setInterval(() => void srv.expire(), (LEASE_SECONDS * 1000) / 3);
    this.timer.unref();
  }

  async stop(_graceMs: number): Promise<void> {
    this.listening = false;
    if (this.timer) clearInterval(this.timer);
    await this.rpc?.close();
    await this.srv?.close();
    this.rpc = undefined;
    this.srv = undefined;
  }
}

export const nfsProtocol: ProtocolDescriptor = {
  name: 'nfs',
  defaultPort: 2049,
  create: () => new NfsPlugin(),
};
