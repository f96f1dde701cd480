/**
 * What every operation sees: the server (exports, handle codec, client state, the session
 * manager) and the COMPOUND's own context (credential's principal, current and saved filehandle,
 * the 4.1 session's client, the current stateid). Shared helpers for the operations live here.
 */
import { randomBytes } from 'node:crypto';
import type { Principal } from '../../../src/auth/authenticator.ts';
import type { Session } from '../../../src/session/session.ts';
import type { SessionManager } from '../../../src/session/session-manager.ts';
import type { Logger } from '../../../src/log/logger.ts';
import type { FileAttr, StatFsResult } from '../../../src/vfs/types.ts';
import type { Handle } from '../../../src/vfs/vfs.ts';
import { nfsstatOf, type Nfs4ErrorContext } from '../errors.ts';
import { NFS4ERR } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { ChangeInfo4, Stateid4 } from '../xdr4/common.ts';
import { clientAccess, clientRule, type ClientAccess, type NfsExport, type NfsExports } from './exports.ts';
import type { Fh, FhCodec } from './filehandle.ts';
import type { Mapping, PrincipalMap } from './principals.ts';
import type { Credential } from '../rpc.ts';
import { IdMap } from './idmap.ts';
import { Seqids40 } from './seqid40.ts';
import { StateTable, type LockState, type NfsClient, type OpenState } from './state.ts';

export const LEASE_SECONDS = 90;
/** A session channel's request/response size beyond its largest WRITE/READ data: the headers. */
export const MSG_HEADROOM = 32 * 1024;

export class NfsServer {
  readonly sessions: SessionManager;
  readonly exports: NfsExports;
  readonly fh: FhCodec;
  readonly principals: PrincipalMap;
  readonly state = new StateTable();
  readonly logger: Logger | undefined;
  /** WRITE/COMMIT verifier: new on every start, so clients resend unstable writes after a restart. */
  readonly writeVerifier = randomBytes(8);
  /** The views for calls that belong to no client (4.0 lookups before SETCLIENTID, anonymous stateids). */
  readonly base: Session;
  /** Verifiers of exclusive creates (EXCLUSIVE4/4_1): a retransmitted create opens the file it made. */
  readonly exclusive = new Map<bigint, string>();
  /** Bound of `exclusive` (oldest forgotten first: a retransmission comes within seconds). */
  static readonly MAX_EXCLUSIVE = 10_000;
  /** 4.0 open-owner and lock-owner seqids and their replies (RFC 7530 §9.1.7). */
  readonly seqids40 = new Seqids40();
  private readonly statfsCache = new Map<string, { at: number; v: Promise<StatFsResult> }>();
  private readonly rootIds = new Map<string, bigint>();
  /** Most operations in a COMPOUND (protocols.nfs.maxCompoundOps); sessions negotiate at most this. */
  readonly maxCompoundOps: number;
  /** owner / owner_group strings: numeric, or name@domain (protocols.nfs.idmapDomain). */
  readonly idmap: IdMap;

  constructor(o: { sessions: SessionManager; exports: NfsExports; fh: FhCodec; principals: PrincipalMap; logger?: Logger; maxCompoundOps?: number; idmapDomain?: string | undefined }) {
    this.maxCompoundOps = o.maxCompoundOps ?? 100;
    this.idmap = new IdMap(o.sessions.authenticator, o.idmapDomain);
    this.sessions = o.sessions;
    this.exports = o.exports;
    this.fh = o.fh;
    this.principals = o.principals;
    this.logger = o.logger;
    this.base = o.sessions.openSession({ principal: o.principals.anonymous, protocol: 'nfs', clientAddress: 'nfs' });
  }

  private readonly baseViews = new WeakMap<Principal, Session>();

  /** The base state as a call's principal, one view per principal object (they are cached 2 s). */
  baseView(p: Principal): Session {
    let v = this.baseViews.get(p);
    if (!v) {
      v = this.base.as(p);
      this.baseViews.set(p, v);
    }
    return v;
  }

  statfs(view: Session, share: string): Promise<StatFsResult> {
    const hit = this.statfsCache.get(share);
    const now = Date.now();
    if (hit && now - hit.at < 1000) return hit.v;
    const v = view.statfs(share);
    v.catch(() => this.statfsCache.delete(share));
    this.statfsCache.set(share, { at: now, v });
    return v;
  }

  /** The share root's id (its persistent id never changes; kept once known). */
  async rootId(view: Session, share: string): Promise<bigint> {
    const known = this.rootIds.get(share);
    if (known !== undefined) return known;
    const a = await view.getattr(share, '/');
    this.rootIds.set(share, a.id);
    return a.id;
  }

  /** Ends a client: its opens and locks go with its core ClientState. */
  async endClient(c: NfsClient): Promise<void> {
    if (c.ended) return;
    c.ended = true;
    this.state.clients.delete(c.clientid);
    for (const s of c.sessions.values()) this.state.sessions.delete(s.idHex);
    c.sessions.clear();
    for (const o of c.opens.values()) {
      this.state.states.delete(o.key);
      for (const l of o.locks) this.state.states.delete(l.key);
    }
    c.opens.clear();
    await c.session.end().catch((e) => this.logger?.warn({ err: e }, 'nfs: ending a client failed'));
  }

  /** Lease expiry (RFC 8881 §8.3): clients silent for two lease periods lose their state. */
  async expire(now = Date.now()): Promise<void> {
    for (const c of [...this.state.clients.values()]) {
      if (now - c.lastRenew > 2 * LEASE_SECONDS * 1000) await this.endClient(c);
    }
  }

  async close(): Promise<void> {
    for (const c of [...this.state.clients.values()]) await this.endClient(c);
    await this.base.end();
  }
}

export interface OpContext {
  srv: NfsServer;
  minor: number;
  /** The call's credential, and the client entry mapping `principal` was made with (undefined: the server's). */
  cred: Credential;
  mapping?: Mapping | undefined;
  principal: Principal;
  /** The stateless view: this call's principal on the server's base state. */
  view: Session;
  clientAddress: string;
  /** 4.1+: the client of the SEQUENCE's session. */
  client?: NfsClient | undefined;
  /** 4.1+: the SEQUENCE asked for the reply to be kept in the slot (sa_cachethis). */
  cacheThis?: boolean | undefined;
  cur?: Fh | undefined;
  saved?: Fh | undefined;
  /** 4.1 current stateid (RFC 8881 §16.2.3.1.2). */
  currentStateid?: Stateid4 | undefined;
  /**
   * The attributes LOOKUP just read of the handle it made current, for the GETATTR that follows in
   * the same COMPOUND (Linux sends PUTFH LOOKUP GETFH GETATTR): one gate call instead of two. Only
   * GETFH may come between (the dispatcher drops it before any other operation).
   */
  known?: { fh: Fh; attr: FileAttr } | undefined;
}

export type FileFh = Extract<Fh, { kind: 'file' }>;

export const ok = <R>(op: number, res?: R): OpResult => ({ op, status: NFS4ERR.OK, res } as OpResult);
export const fail = (op: number, status: number): OpResult => ({ op, status } as OpResult);
export const failWith = (op: number, e: unknown, ctx: Nfs4ErrorContext = 'default'): OpResult => ({ op, status: nfsstatOf(e, ctx) } as OpResult);

/** What this call's client address may do in an export (`shares[].nfs.clients`). */
export function accessIn(c: OpContext, exp: NfsExport): ClientAccess {
  return exp.clients ? clientAccess(exp, c.clientAddress) : 'rw';
}

/** The mapping an export's client entry sets for this call (undefined: the server's). */
export function mappingIn(c: OpContext, exp: NfsExport): Mapping | undefined {
  return exp.clients ? clientRule(exp, c.clientAddress)?.mapping : undefined;
}

/** This call's principal in an export (its client entry may map differently). */
export async function principalIn(c: OpContext, exp: NfsExport): Promise<Principal> {
  const m = mappingIn(c, exp);
  return m === c.mapping ? c.principal : c.srv.principals.of(c.cred, m);
}

/**
 * Maps the credential again when the current filehandle is in an export whose client entry
 * maps otherwise than the principal in force (and back on leaving it): operations then run
 * as the export's principal. Nothing to do for exports without client lists.
 */
export async function enterExport(c: OpContext): Promise<void> {
  const cur = c.cur;
  const want = cur?.kind === 'file' && cur.exp.clients ? mappingIn(c, cur.exp) : undefined;
  if (want === c.mapping) return;
  c.principal = await c.srv.principals.of(c.cred, want);
  c.view = c.srv.baseView(c.principal);
  c.mapping = want;
}

/** The current filehandle, or NOFILEHANDLE. */
export function curFh(c: OpContext): Fh | number {
  return c.cur ?? NFS4ERR.NOFILEHANDLE;
}

/** The client's view as this call's principal. */
export function clientView(c: OpContext, client: NfsClient): Session {
  return client.viewAs(c.principal);
}

/** The view for a file operation: the client's when known (its handles), else the base one. */
export function viewFor(c: OpContext): Session {
  return c.client ? clientView(c, c.client) : c.view;
}

export async function attrOf(c: OpContext, fh: FileFh): Promise<FileAttr> {
  return c.view.getattrById(fh.share, fh.id);
}

/**
 * change_info4 of a directory around a change: its change attribute before and after (not atomic).
 * `before`: the value the operation read already (its directory type check), so the directory is
 * not asked twice — under concurrent creates in one directory each ask is a stat, since every
 * create drops the directory's cached attributes.
 */
export async function changeAround<T>(c: OpContext, dir: FileFh, fn: () => Promise<T>, known?: bigint): Promise<{ value: T; cinfo: ChangeInfo4 }> {
  const before = known ?? (await attrOf(c, dir)).change;
  const value = await fn();
  const after = (await attrOf(c, dir).catch(() => undefined))?.change ?? before + 1n;
  return { value, cinfo: { atomic: false, before, after } };
}

const ZERO12 = Buffer.alloc(12);
const ONES12 = Buffer.alloc(12, 0xff);

export type ResolvedStateid =
  | { kind: 'special' }
  | { kind: 'open'; open: OpenState }
  | { kind: 'lock'; lock: LockState; open: OpenState }
  | { kind: 'error'; status: number };

/**
 * A stateid as an open or lock state (RFC 8881 §8.2): the all-zero and all-ones stateids are the
 * anonymous and READ-bypass ones; seqid 1 with zeros is 4.1's current stateid; a stateid of an
 * earlier server instance is STALE_STATEID; an unknown one BAD_STATEID; a seqid older than the
 * state's OLD_STATEID, newer BAD_STATEID (4.1 seqid 0 means "the current one").
 */
export function resolveStateid(c: OpContext, s: Stateid4): ResolvedStateid {
  let sid = s;
  if (sid.seqid === 1 && sid.other.equals(ZERO12) && c.minor > 0) {
    if (!c.currentStateid) return { kind: 'error', status: NFS4ERR.BAD_STATEID };
    sid = c.currentStateid;
  }
  if ((sid.seqid === 0 && sid.other.equals(ZERO12)) || (sid.seqid === 0xffffffff && sid.other.equals(ONES12))) return { kind: 'special' };
  if (!StateTable.otherIsCurrentBoot(sid.other)) return { kind: 'error', status: NFS4ERR.STALE_STATEID };
  const st = c.srv.state.states.get(sid.other.toString('hex'));
  if (!st) return { kind: 'error', status: NFS4ERR.BAD_STATEID };
  if (c.client && st.client !== c.client) return { kind: 'error', status: NFS4ERR.BAD_STATEID };
  if (!(c.minor > 0 && sid.seqid === 0)) {
    if (sid.seqid > st.seqid) return { kind: 'error', status: NFS4ERR.BAD_STATEID };
    if (sid.seqid < st.seqid) return { kind: 'error', status: NFS4ERR.OLD_STATEID };
  }
  st.client.lastRenew = Date.now();
  return st.kind === 'open' ? { kind: 'open', open: st } : { kind: 'lock', lock: st, open: st.open };
}

/** A handle of an open state with the access wanted (read or write), if it has one. */
export function handleWith(open: OpenState, want: 'read' | 'write'): Handle | undefined {
  return open.handles.find((h) => !h.closed && h.access[want]) ?? undefined;
}

export const stateidOf = (st: { seqid: number; other: Buffer }): Stateid4 => ({ seqid: st.seqid, other: st.other });
