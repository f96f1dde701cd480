/**
 * Builds a real VFS + session stack over a backend for tests: a metadata store in a temp state
 * directory, one share named "s", and sessions for principals the test chooses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { afterEach } from 'vitest';
import { LocalBackend, type LocalBackendOptions } from '../../backends/local/local-backend.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/vfs/backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { Vfs } from '../../src/vfs/vfs.ts';
import { buildVolumeStack } from '../../src/vfs/volume-stack.ts';
import { SessionManager, type SessionMetrics, type ShareDefinition } from '../../src/session/session-manager.ts';
import type { Logger } from 'pino';
import { PassThrough } from 'node:stream';
import { createAuditLogger } from '../../src/log/logger.ts';
import { refuseAllLogins, type Authenticator, type Principal } from '../../src/auth/authenticator.ts';
import type { Session } from '../../src/session/session.ts';

export const alice: Principal = { user: 'alice', uid: 1001, gid: 1001, groups: ['staff'], guest: false };
export const bob: Principal = { user: 'bob', uid: 1002, gid: 1002, groups: ['finance'], guest: false };
export const guest: Principal = { user: 'guest', uid: 65534, gid: 65534, groups: [], guest: true };

/**
 * An audit logger (JSON, as the gateway's) whose entries land parsed in `lines`, in order: what a
 * test of the session gate's audit trail reads.
 */
export function auditCapture(): { audit: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  const audit = createAuditLogger({ level: 'info', format: 'json', audit: { enabled: true, file: '-' } }, { destination: sink });
  return { audit, lines };
}

/** Principals are handed in directly: these tests are about the VFS, not about passwords. */
export const noPasswords: Authenticator = refuseAllLogins;

export interface VfsEnv {
  vfs: Vfs;
  store: MetadataStore;
  sessions: SessionManager;
  stateDir: string;
  session(p?: Principal, protocol?: string): Session;
  /** Closes everything but keeps state and backend content (for restart tests). */
  stop(): Promise<void>;
  /** stop() and delete the state directory. */
  destroy(): Promise<void>;
}

export interface VfsEnvOptions {
  stateDir?: string;
  share?: Partial<ShareDefinition>;
  caseSensitive?: boolean;
  metrics?: SessionMetrics;
  audit?: Logger;
}

export function makeVfsEnv(backend: Backend, opts: VfsEnvOptions = {}): VfsEnv {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'portico-state-'));
  const store = MetadataStore.open(stateDir);
  const vfs = new Vfs({ store, stageDir: join(stateDir, 'stage') });
  const caseSensitive = opts.caseSensitive ?? opts.share?.caseSensitive ?? true;
  vfs.addVolume('s', buildVolumeStack(backend), { caseSensitive });
  const sessions = new SessionManager({
    vfs,
    shares: [{ name: 's', caseSensitive, ...opts.share }],
    authenticator: noPasswords,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.audit ? { audit: opts.audit } : {}),
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await sessions.closeAll();
    // The backend outlives a "restart" in tests that reopen it: only close handles and locks here.
    for (const h of vfs.openHandles()) await vfs.close(h).catch(() => undefined);
    // Write-back: timers stopped and the journal's file closed (its entries stay for the next start,
    // as at a gateway's shutdown); left open, the GC closed it with a DEP0137 warning per stop.
    await vfs.writeBack.close();
    vfs.locks.close();
    store.close();
  };
  return {
    vfs,
    store,
    sessions,
    stateDir,
    session: (p = alice, protocol = 'test') => sessions.openSession({ principal: p, protocol, clientAddress: '127.0.0.1' }),
    stop,
    destroy: async () => {
      await stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export const RW = { read: true, write: true, delete: false };
export const RO = { read: true, write: false, delete: false };

/**
 * Stacks a test file makes and drops after each test: `local()` builds one over a fresh temporary
 * directory on the local backend (removed afterwards), `track()` adopts any other (a restart over
 * the same state, another backend). Registers its own afterEach.
 */
export function useVfsEnvs(prefix: string): { local(opts?: VfsEnvOptions, backend?: LocalBackendOptions): { root: string; env: VfsEnv }; track(env: VfsEnv): VfsEnv } {
  const envs: VfsEnv[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const e of envs.splice(0)) await e.destroy();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const track = (env: VfsEnv): VfsEnv => {
    envs.push(env);
    return env;
  };
  return {
    local(opts: VfsEnvOptions = {}, backend?: LocalBackendOptions) {
      const root = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(root);
      return { root, env: track(makeVfsEnv(new LocalBackend(root, backend), opts)) };
    },
    track,
  };
}
