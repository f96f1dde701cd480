/**
 * Creates sessions and owns what they share: the share table (ACLs, which protocols expose which
 * share), the authenticator, metrics and the audit log. Protocol servers get one SessionManager.
 */
import type { Logger } from 'pino';
import { VfsError } from '../vfs/errors.ts';
import type { Vfs } from '../vfs/vfs.ts';
import { ShareAcl, type ShareAclConfig } from '../acl/acl.ts';
import type { AuthContext, Authenticator, Principal } from '../auth/authenticator.ts';
import { Session, type SessionHost, type SessionInit } from './session.ts';

export interface ShareDefinition extends ShareAclConfig {
  /** Protocols that expose the share (default: all). */
  protocols?: string[];
}

/** The slice of Metrics the session layer uses. */
export interface SessionMetrics {
  observeRequest(protocol: string, op: string, status: string, seconds: number): void;
  addBytes(protocol: string, direction: 'read' | 'write', n: number): void;
  authFailure?(protocol: string, reason: string): void;
  sessionsOpen?: { inc(labels: { protocol: string }): void; dec(labels: { protocol: string }): void };
}

export interface SessionManagerOptions {
  vfs: Vfs;
  shares: ShareDefinition[];
  authenticator: Authenticator;
  metrics?: SessionMetrics;
  /** Audit logger: one JSON entry per change. */
  audit?: Logger;
  logger?: Logger;
}

interface ShareEntry {
  acl: ShareAcl;
  protocols: Set<string> | undefined;
  volume: string;
}

export class SessionManager implements SessionHost {
  readonly vfs: Vfs;
  readonly authenticator: Authenticator;
  readonly logger: Logger | undefined;
  private readonly shares = new Map<string, ShareEntry>();
  private readonly metrics: SessionMetrics | undefined;
  private readonly auditLog: Logger | undefined;
  private readonly sessions = new Set<Session>();

  constructor(o: SessionManagerOptions) {
    this.vfs = o.vfs;
    this.authenticator = o.authenticator;
    this.metrics = o.metrics;
    this.auditLog = o.audit;
    this.logger = o.logger;
    for (const s of o.shares) {
      // Share names are case-insensitive (Windows \\server\Share): keyed lower-case.
      this.shares.set(s.name.toLowerCase(), {
        acl: new ShareAcl(s),
        protocols: s.protocols ? new Set(s.protocols) : undefined,
        volume: s.name,
      });
    }
  }

  /** Authenticates a password login and counts failures. */
  async authenticate(user: string, password: string, ctx: AuthContext): Promise<Principal> {
    try {
      return await this.authenticator.authenticate(user, password, ctx);
    } catch (e) {
      if (e instanceof VfsError) this.metrics?.authFailure?.(ctx.protocol, e.code);
      throw e;
    }
  }

  openSession(init: SessionInit): Session {
    const s = new Session(this, init);
    this.sessions.add(s);
    this.metrics?.sessionsOpen?.inc({ protocol: init.protocol });
    return s;
  }

  /** Shares a principal may see through a protocol (share enumeration, WebDAV root listing). */
  sharesFor(principal: Principal, protocol: string): string[] {
    const out: string[] = [];
    for (const e of this.shares.values()) {
      if (e.protocols && !e.protocols.has(protocol)) continue;
      if (e.acl.visibleTo(principal)) out.push(e.volume);
    }
    return out;
  }

  acl(share: string, protocol: string): { acl: ShareAcl; volume: string } {
    const e = this.shares.get(share.toLowerCase());
    // A share hidden from a protocol is indistinguishable from a missing one.
    if (!e || (e.protocols && !e.protocols.has(protocol))) throw new VfsError('ENOENT', `no share named ${share}`);
    return e;
  }

  observe(protocol: string, op: string, status: string, seconds: number): void {
    this.metrics?.observeRequest(protocol, op, status, seconds);
  }

  bytes(protocol: string, direction: 'read' | 'write', n: number): void {
    this.metrics?.addBytes(protocol, direction, n);
  }

  audit(entry: Record<string, unknown>): void {
    this.auditLog?.info(entry, 'audit');
  }

  detach(session: Session): void {
    if (this.sessions.delete(session)) this.metrics?.sessionsOpen?.dec({ protocol: session.protocol });
  }

  openSessions(): number {
    return this.sessions.size;
  }

  /** Ends every session (shutdown). */
  async closeAll(): Promise<void> {
    for (const s of [...this.sessions]) await s.end();
  }
}
