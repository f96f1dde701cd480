/**
 * Assembles one Portico process: metadata store -> auth -> backends -> VFS -> sessions ->
 * protocol plugins -> admin endpoint, and takes it down in the reverse order.
 *
 * First-run policy (no local user exists yet), from `auth.firstRun`:
 * - 'create-admin': create user `admin` with a random password and print it ONCE to stderr. It is
 *   never logged (logs are shipped and retained; stderr of a first interactive run is not).
 * - 'loopback-only': force every protocol listener to 127.0.0.1 so an unconfigured server is
 *   never reachable from the network, and log a warning saying so.
 *
 * Shutdown (SIGTERM/SIGINT via installSignalHandlers): plugins stop accepting and get
 * `server.shutdownGraceMs` for in-flight work, then sessions end, the VFS publishes staged writes
 * (shares with `writeBack: async` journal them; pending uploads get `writeBack.shutdownDrainMs` and
 * the rest resumes at the next start) and closes the backends, and the store closes. A second
 * signal exits with status 1 at once.
 */
import { randomInt } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createBackend } from '../../backends/index.ts';
import { localNativeAvailability } from '../../backends/local/native.ts';
import { LocalUserStore } from '../auth/local-users.ts';
import { buildAuthenticator } from '../auth/ldap-authenticator.ts';
import { loadOrCreateSecret } from '../auth/secret-box.ts';
import { Throttle } from '../auth/throttle.ts';
import type { PorticoConfig } from '../config/schema.ts';
import { createAuditLogger, createLogger, type Logger } from '../log/logger.ts';
import { Metrics } from '../metrics/metrics.ts';
import { join } from 'node:path';
import { adminToken } from './admin-token.ts';
import { DurableLocks } from '../locks/lock-persistence.ts';
import { ClientRecords } from '../locks/client-records.ts';
import { DurableHandles } from '../locks/durable-handles.ts';
import { VfsError } from '../vfs/errors.ts';
import { SessionManager } from '../session/session-manager.ts';
import { MetadataStore } from '../store/metadata-store.ts';
import type { Backend } from '../vfs/backend.ts';
import { Vfs } from '../vfs/vfs.ts';
import { buildVolumeStack, type VolumeStack } from '../vfs/volume-stack.ts';
import { registerQuotaMetrics } from '../vfs/quota.ts';
import { AdminServer } from './admin-server.ts';
import { protocolRegistry, type ProtocolAvailability, type ProtocolDescriptor, type ProtocolPlugin } from './plugin.ts';

export interface GatewayOptions {
  logger?: Logger;
  audit?: Logger;
  metrics?: Metrics;
  /** Protocol registry to start plugins from (default: the process-wide `protocolRegistry`). */
  registry?: Map<string, ProtocolDescriptor>;
  /** Where the first-run admin password box is printed (default process.stderr). */
  stderr?: NodeJS.WritableStream;
}

export const FIRST_ADMIN_USER = 'admin';
const PASSWORD_LENGTH = 20;
/** No 0/O, 1/l/I: the password is read off a terminal and typed by a person. */
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

export function randomPassword(length = PASSWORD_LENGTH): string {
  let out = '';
  for (let i = 0; i < length; i++) out += PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)];
  return out;
}

/** Whether a protocol entry asks to run: port != 0, or (FUSE) a mountpoint is set. */
export function protocolEnabled(config: PorticoConfig, name: string): boolean {
  const entry = (config.protocols as Record<string, Record<string, unknown> | undefined>)[name];
  if (!entry) return false;
  if ('mountpoint' in entry) return typeof entry.mountpoint === 'string' && entry.mountpoint !== '';
  return entry.port !== 0;
}

/** A copy of `config` where the default and every protocol listen address is 127.0.0.1. */
export function loopbackOnly(config: PorticoConfig): PorticoConfig {
  const protocols: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(config.protocols)) {
    protocols[name] = 'mountpoint' in entry ? entry : { ...entry, listen: '127.0.0.1' };
  }
  return { ...config, server: { ...config.server, listen: '127.0.0.1' }, protocols: protocols as PorticoConfig['protocols'] };
}

function firstRunBox(user: string, password: string): string {
  const lines = [
    'Portico first run: no user existed, so an administrator account was created.',
    '',
    `  username: ${user}`,
    `  password: ${password}`,
    '',
    'This password is shown only this once and is not logged. Change it with:',
    `  portico user passwd ${user}`,
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const bar = `+${'-'.repeat(width + 2)}+`;
  return ['', bar, ...lines.map((l) => `| ${l.padEnd(width)} |`), bar, ''].join('\n') + '\n';
}

export class Gateway {
  /** The effective config (after the loopback-only policy, if it applied). */
  config: PorticoConfig;
  readonly logger: Logger;
  readonly audit: Logger;
  readonly metrics: Metrics;
  /** Shares made read-only by their backend (capabilities.readOnly), with the reason clients are told. */
  private readonly readOnlyReasons = new Map<string, string>();
  /** Each share's backend as its volume calls it: the top of its stack (buildVolumeStack). */
  readonly backends = new Map<string, Backend>();
  readonly plugins: ProtocolPlugin[] = [];
  store: MetadataStore | undefined;
  users: LocalUserStore | undefined;
  vfs: Vfs | undefined;
  sessions: SessionManager | undefined;
  admin: AdminServer | undefined;
  private readonly registry: Map<string, ProtocolDescriptor>;
  private readonly stderr: NodeJS.WritableStream;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | undefined;
  private durableLocks: DurableLocks | undefined;
  private clientRecords: ClientRecords | undefined;
  /** Shares whose start-up recovery (backend.recover()) is still running: /ready waits for them. */
  private readonly recovering = new Set<string>();
  private authenticator: ReturnType<typeof buildAuthenticator> | undefined;

  constructor(config: PorticoConfig, opts: GatewayOptions = {}) {
    this.config = config;
    this.logger = opts.logger ?? createLogger(config.log);
    this.audit = opts.audit ?? createAuditLogger(config.log);
    this.metrics = opts.metrics ?? new Metrics();
    this.registry = opts.registry ?? protocolRegistry;
    this.stderr = opts.stderr ?? process.stderr;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`gateway already ${this.state}`);
    this.state = 'starting';
    try {
      await this.startInner();
      this.state = 'running';
    } catch (e) {
      await this.stop(0).catch((err: unknown) => this.logger.error({ err }, 'cleanup after failed start'));
      throw e;
    }
  }

  private async startInner(): Promise<void> {
    const { server, auth } = this.config;
    const store = (this.store = MetadataStore.open(server.stateDir));
    // Checkpoints' fsyncs off the event loop every protocol shares (src/store/checkpointer.ts).
    store.checkpointInBackground();
    const secret = loadOrCreateSecret(server.stateDir, auth.secretKey);
    const users = (this.users = new LocalUserStore(store, { secret, bcryptRounds: auth.bcryptRounds }));
    // With a directory configured, "no local user" does not mean nobody can log in: no first-run
    // admin (nor loopback-only listeners) then; directory users are the accounts.
    if (users.count() === 0 && auth.ldap === null) await this.applyFirstRunPolicy(users);
    // Local users, and the directory when auth.ldap is set (src/auth/ldap-authenticator.ts).
    const authenticator = (this.authenticator = buildAuthenticator(auth, users, {
      throttle: new Throttle(auth.throttle),
      logger: this.logger.child({ component: 'ldap' }),
      registry: this.metrics.registry,
    }));

    const s3Ca = this.config.s3.tls.ca;
    const stacks = new Map<string, VolumeStack>();
    for (const share of this.config.shares) {
      // S3 shares also get the metrics registry, a logger, a state directory (disk block cache,
      // upload journal) and the config's s3.tls.ca unless they name their own CA; the other
      // backends ignore these keys.
      const backend = await createBackend(share.source, {
        ...(s3Ca !== null && share.options.tls === undefined ? { tls: { ca: s3Ca }, tlsCaSource: 's3.tls.ca' } : {}),
        ...share.options,
        metrics: this.metrics,
        metricsLabel: share.name,
        logger: this.logger.child({ component: 's3', share: share.name }),
        stateDir: join(server.stateDir, 's3', share.name),
      });
      // A backend that cannot be written (a shard set) makes its share read-only: the ACL then
      // refuses writes with EROFS in every protocol, before anything reaches the backend.
      if (backend.capabilities.readOnly === true) {
        share.readOnly = true;
        this.readOnlyReasons.set(share.name, `the share is a read-only ${backend.kind === 'shard' ? 'shard set' : `${backend.kind} backend`}`);
      }
      // The share's backend stack, in one place (src/vfs/volume-stack.ts has the order and why):
      // storage, metrics, deferred creates (object stores), tree-move guard (no atomic rename).
      const stack = buildVolumeStack(backend, { metrics: this.metrics, metricsLabel: share.name });
      stacks.set(share.name, stack);
      this.backends.set(share.name, stack.backend);
    }
    // Local shares without their native helper work, without exchange of names, fallocate, a hole
    // map or in-kernel range copies (backends/local/native/README.md): said once, with the remedy.
    const localNative = localNativeAvailability();
    if (!localNative.available && [...stacks.values()].some((st) => st.storage.kind === 'local')) {
      this.logger.info({ reason: localNative.reason, enable: localNative.enable }, `local shares run without their native helper: ${localNative.reason}; enable with: ${localNative.enable}`);
    }
    const stageDir = join(server.stateDir, 'stage');
    const vfs = (this.vfs = new Vfs({
      store,
      stageDir,
      writeBackDir: join(server.stateDir, 'writeback'),
      metricsRegistry: this.metrics.registry,
      logger: this.logger.child({ component: 'write-back' }),
      treeMoves: { logger: this.logger.child({ component: 'tree-move' }) },
      attrCacheMs: server.attrCacheMs,
    }));
    this.durableLocks = new DurableLocks(vfs.locks, store, this.logger);
    const restored = this.durableLocks.start();
    if (restored > 0) this.logger.info({ locks: restored }, 'restored WebDAV locks');
    // Leases, durable handles and the grace period after a restart (src/locks/), for every protocol.
    const { leaseBreakTimeoutMs, durableHandleMaxMs, graceMs } = this.config.locks;
    vfs.leases.configure({ breakTimeoutMs: leaseBreakTimeoutMs });
    DurableHandles.of(vfs).configure({ maxTimeoutMs: durableHandleMaxMs });
    this.clientRecords = ClientRecords.install(vfs, { graceMs });
    const grace = this.clientRecords.status();
    if (grace.active) this.logger.info({ clients: grace.pending, graceMs }, 'grace period: clients may reclaim the opens and locks they held');
    for (const share of this.config.shares) {
      vfs.addVolume(share.name, stacks.get(share.name)!, {
        caseSensitive: share.caseSensitive,
        readOnly: share.readOnly,
        writeBack: share.writeBack,
        // The source names the counter: a share pointed elsewhere is scanned again, and so is a
        // memory: share at every start (its content did not survive the last one).
        ...(share.quota !== undefined ? { quota: { ...share.quota, source: share.source.startsWith('memory:') ? `${share.source}#${process.pid}:${Date.now()}` : share.source } } : {}),
      });
    }
    registerQuotaMetrics(this.metrics.registry, () => vfs.volumeNames().flatMap((n) => vfs.volume(n).quota ?? []));
    // Before serving: stages journaled by async write-back before the last stop (or crash) are
    // reopened (the files read as their staged content meanwhile); every other stage file of a
    // previous run is dead (its handles died) and removed. Their uploads start once interrupted
    // directory moves below hold the ones inside a moving tree.
    await vfs.recoverWriteBack({ deferUploads: true });
    // Then directory renames a crash interrupted (object stores: journaled copy + delete) are
    // finished, so every share serves whole trees; one that fails again keeps retrying in the
    // background and its tree refuses changes (EBUSY) meanwhile.
    const moves = await vfs.resumeTreeMoves();
    if (moves.resumed + moves.retrying + moves.quarantined > 0) this.logger.info({ ...moves }, 'interrupted directory renames');
    vfs.startWriteBackUploads();
    for (const [name, backend] of this.backends) {
      if (!backend.recover) continue;
      // In the background: a large tree must not delay start-up. /ready answers 503 until it has
      // finished (or failed, or was skipped because the store lacks the APIs it needs).
      this.recovering.add(name);
      backend.recover().then(
        (n) => n > 0 && this.logger.info({ share: name, removed: n }, 'removed leftovers of interrupted writes'),
        (err: unknown) => this.logger.warn({ share: name, err }, 'startup recovery failed'),
      ).finally(() => this.recovering.delete(name));
    }
    this.sessions = new SessionManager({
      vfs,
      shares: this.config.shares.map((sh) => {
        const reason = this.readOnlyReasons.get(sh.name);
        return reason === undefined ? sh : { ...sh, readOnlyReason: reason };
      }),
      authenticator,
      metrics: this.metrics,
      audit: this.audit,
      logger: this.logger,
    });

    // Optional protocols this machine cannot run are said once, with the command that enables them.
    for (const [name, a] of Object.entries(this.availability())) {
      if (!a.available) this.logger.info({ protocol: name, reason: a.reason, enable: a.enable }, `${name} unavailable: ${a.reason}; enable with: ${a.enable}`);
    }
    for (const name of Object.keys(this.config.protocols)) {
      if (!protocolEnabled(this.config, name)) continue;
      const descriptor = this.registry.get(name);
      if (!descriptor) {
        this.logger.info({ protocol: name }, `protocol ${name} not built yet`);
        continue;
      }
      const plugin = descriptor.create();
      await plugin.start({
        config: this.config,
        sessions: this.sessions,
        logger: this.logger.child({ protocol: name }),
        metrics: this.metrics,
      });
      this.plugins.push(plugin);
      this.logger.info({ protocol: name }, plugin.describe());
    }

    if (this.config.admin.port !== 0) {
      this.admin = new AdminServer({
        listen: this.config.admin.listen,
        port: this.config.admin.port,
        metrics: this.metrics,
        plugins: () => this.plugins,
        backends: () => this.backends,
        // A directory none of whose URLs answers is reported (local users still log in meanwhile).
        starting: () => [
          ...[...this.recovering].map((name) => ({ kind: 'share' as const, name, reason: 'start-up recovery running' })),
          ...directoryNotReady(this.authenticator?.directory?.state()),
        ],
        logger: this.logger.child({ component: 'admin' }),
        token: adminToken(secret),
        availability: () => this.availability(),
        refreshCache: async (share, path) => {
          const name = this.config.shares.find((s) => s.name.toLowerCase() === share.toLowerCase())?.name;
          if (!name || !this.vfs) throw new VfsError('ENOENT', `no share named ${share}`);
          this.vfs.invalidate(name, path);
          // Outside changes may have moved the share's usage: its quota counter is scanned again.
          void this.vfs.volume(name).quota?.rescan();
          this.logger.info({ share: name, path }, 'cache refreshed');
        },
      });
      const a = await this.admin.start();
      this.logger.info({ component: 'admin' }, `admin on http://${hostPort(a)} (/health /ready /metrics)`);
    }
    this.logger.info({ shares: this.config.shares.map((s) => s.name) }, 'portico started');
  }

  private async applyFirstRunPolicy(users: LocalUserStore): Promise<void> {
    if (this.config.auth.firstRun === 'create-admin') {
      const password = randomPassword();
      await users.addUser({ name: FIRST_ADMIN_USER, password });
      this.stderr.write(firstRunBox(FIRST_ADMIN_USER, password));
      this.logger.warn({ user: FIRST_ADMIN_USER }, 'first run: created user admin (password printed on stderr once)');
    } else {
      this.config = loopbackOnly(this.config);
      this.logger.warn(
        'no user exists and auth.firstRun is loopback-only: every protocol listens on 127.0.0.1 only; add a user with `portico user add NAME` and restart',
      );
    }
  }

  /** The admin endpoint's bound address (undefined when disabled or not started). */
  adminAddress(): AddressInfo | undefined {
    return this.admin?.address();
  }

  /** Idempotent; concurrent calls share one shutdown. */
  stop(graceMs: number = this.config.server.shutdownGraceMs): Promise<void> {
    if (!this.stopping) this.stopping = this.stopInner(graceMs);
    return this.stopping;
  }

  private async stopInner(graceMs: number): Promise<void> {
    this.state = 'stopping';
    // Before the front-ends end their clients: the records keep what clients held (to reclaim).
    this.clientRecords?.freeze();
    const errors: unknown[] = [];
    const attempt = async (what: string, fn: () => Promise<void> | void): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
        this.logger.error({ err }, `shutdown: ${what} failed`);
      }
    };
    // Plugins first (stop accepting, drain), concurrently so the grace period is not multiplied.
    await Promise.all(this.plugins.map((p) => attempt(`stopping ${p.name}`, () => p.stop(graceMs))));
    this.plugins.length = 0;
    await attempt('admin server', () => this.admin?.stop());
    await attempt('sessions', () => this.sessions?.closeAll());
    await attempt('saving WebDAV locks', () => this.durableLocks?.stop());
    if (this.vfs) await attempt('vfs', () => this.vfs!.shutdown());
    // Without a VFS (failed start) the backends were never handed over: close them here.
    else for (const b of this.backends.values()) await attempt('backend', () => b.close());
    await attempt('client records', () => this.clientRecords?.stop());
    await attempt('directory connections', () => this.authenticator?.close?.());
    await attempt('metadata store', () => this.store?.close());
    this.state = 'stopped';
    this.logger.info('portico stopped');
    if (errors.length > 0) throw new AggregateError(errors, 'shutdown had errors');
  }

  /**
   * SIGTERM/SIGINT: graceful stop then exit(0) (exit(1) if shutdown failed); a second signal exits(1)
   * immediately. Returns a function that removes the handlers. `exit` and `signals` are replaceable
   * for tests.
   */
  /** Optional protocols (ProtocolDescriptor.availability) and whether they can run here (/health). */
  availability(): Record<string, ProtocolAvailability> {
    const out: Record<string, ProtocolAvailability> = {};
    for (const d of this.registry.values()) if (d.availability) out[d.name] = d.availability();
    return out;
  }

  installSignalHandlers(
    exit: (code: number) => void = (code) => process.exit(code),
    signals: Pick<NodeJS.EventEmitter, 'on' | 'off'> = process,
  ): () => void {
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        exit(1);
        return;
      }
      received = true;
      this.logger.info({ signal }, 'shutting down (send the signal again to exit immediately)');
      this.stop().then(
        () => exit(0),
        () => exit(1),
      );
    };
    signals.on('SIGTERM', onSignal);
    signals.on('SIGINT', onSignal);
    return () => {
      signals.off('SIGTERM', onSignal);
      signals.off('SIGINT', onSignal);
    };
  }
}

function hostPort(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** /ready entries for the directory: only when every URL is down (one answering URL serves logins). */
function directoryNotReady(state: { url: string; up: boolean; lastError: string | undefined }[] | undefined): { kind: 'directory'; name: string; reason: string }[] {
  if (state === undefined || state.some((s) => s.up)) return [];
  return state.map((s) => ({ kind: 'directory' as const, name: s.url, reason: `unreachable: ${s.lastError ?? 'no answer'}` }));
}
