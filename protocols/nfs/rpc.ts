/**
 * ONC RPC version 2 messages (RFC 5531): the call header a server reads, the credentials it
 * understands (AUTH_NONE, AUTH_SYS of appendix A) and every reply it can send.
 *
 * `decodeCall` is total: any record gives a call, a ready rejection (with the xid, so the client
 * is answered instead of left waiting) or a drop (fewer than 8 bytes, or a REPLY sent to a
 * server: nothing to answer). The order of checks follows RFC 5531 §9 and the Linux server:
 * rpcvers first (the rest of the header may be another format), then the credential, then
 * program, version and procedure (the server's job, `rpc-server.ts`).
 */
import { XdrError, XdrReader, XdrWriter } from './xdr.ts';

export const RPC_VERSION = 2;

export const MSG = { CALL: 0, REPLY: 1 } as const;
export const REPLY_STAT = { ACCEPTED: 0, DENIED: 1 } as const;

export const ACCEPT = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;

export const REJECT = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

export const AUTH_STAT = {
  OK: 0,
  BADCRED: 1,
  REJECTEDCRED: 2,
  BADVERF: 3,
  REJECTEDVERF: 4,
  TOOWEAK: 5,
  INVALIDRESP: 6,
  FAILED: 7,
  KERB_GENERIC: 8,
  TIMEEXPIRE: 9,
  TKT_FILE: 10,
  DECODE: 11,
  NET_ADDR: 12,
  RPCSEC_GSS_CREDPROBLEM: 13,
  RPCSEC_GSS_CTXPROBLEM: 14,
} as const;

export const AUTH_FLAVOR = { NONE: 0, SYS: 1, SHORT: 2, DH: 3, RPCSEC_GSS: 6 } as const;

/** RFC 5531 §8.2: opaque_auth bodies are at most 400 bytes. */
export const MAX_AUTH_BYTES = 400;
/** RFC 5531 appendix A: machinename<255>, gids<16>. */
export const MAX_MACHINE_NAME = 255;
export const MAX_AUTH_SYS_GIDS = 16;

export interface OpaqueAuth {
  flavor: number;
  body: Buffer;
}

export interface AuthSys {
  stamp: number;
  machineName: string;
  uid: number;
  gid: number;
  gids: number[];
}

export type Credential = { flavor: typeof AUTH_FLAVOR.NONE } | { flavor: typeof AUTH_FLAVOR.SYS; sys: AuthSys };

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  cred: Credential;
  /** The raw credential as sent (flavor and body), for logs and future flavors. */
  rawCred: OpaqueAuth;
  verf: OpaqueAuth;
  /** The procedure's arguments: the rest of the record (a subarray, not a copy). */
  args: Buffer;
}

/** Reply bodies a server sends, one per RFC 5531 reply arm. */
export type RpcReply =
  | { kind: 'success' }
  | { kind: 'prog_unavail' }
  | { kind: 'prog_mismatch'; low: number; high: number }
  | { kind: 'proc_unavail' }
  | { kind: 'garbage_args' }
  | { kind: 'system_err' }
  | { kind: 'rpc_mismatch'; low: number; high: number }
  | { kind: 'auth_error'; stat: number };

export type DecodedCall =
  | { kind: 'call'; call: RpcCall }
  | { kind: 'reject'; xid: number; reply: RpcReply; reason: string }
  | { kind: 'drop'; reason: string };

function readAuth(r: XdrReader): OpaqueAuth {
  const flavor = r.u32();
  const body = r.opaque(MAX_AUTH_BYTES, 'opaque_auth body');
  return { flavor, body };
}

/** AUTH_SYS (authsys_parms) from a credential body: the body must hold exactly one, nothing more. */
export function parseAuthSys(body: Buffer): AuthSys {
  const r = new XdrReader(body);
  const stamp = r.u32();
  const machineName = r.ascii(MAX_MACHINE_NAME, 'machinename');
  const uid = r.u32();
  const gid = r.u32();
  const gids = r.u32Array(MAX_AUTH_SYS_GIDS, 'gids');
  r.done('authsys_parms');
  return { stamp, machineName, uid, gid, gids };
}

export function encodeAuthSys(a: AuthSys): Buffer {
  const w = new XdrWriter(64);
  w.u32(a.stamp).string(a.machineName).u32(a.uid).u32(a.gid).u32Array(a.gids);
  return w.toBuffer();
}

/**
 * The last AUTH_SYS credential decoded (a copy of its body) and its value: a client sends the same
 * credential call after call, and decoding it (the machine name as a string, the gid list) was
 * 1.6% of a GETATTR's server CPU in a profile. The value is shared by the calls: never modified.
 */
let lastSysBody: Buffer | undefined;
let lastSysCred: Credential | undefined;

function authSysCred(body: Buffer): Credential {
  if (lastSysCred !== undefined && lastSysBody !== undefined && body.equals(lastSysBody)) return lastSysCred;
  const cred: Credential = { flavor: AUTH_FLAVOR.SYS, sys: parseAuthSys(body) };
  lastSysBody = Buffer.from(body);
  lastSysCred = cred;
  return cred;
}

export function decodeCall(rec: Buffer): DecodedCall {
  if (rec.length < 8) return { kind: 'drop', reason: `record of ${rec.length} bytes` };
  const r = new XdrReader(rec);
  const xid = r.u32();
  const mtype = r.u32();
  if (mtype !== MSG.CALL) return { kind: 'drop', reason: `message type ${mtype} sent to a server` };
  try {
    const rpcvers = r.u32();
    if (rpcvers !== RPC_VERSION) {
      return { kind: 'reject', xid, reason: `rpcvers ${rpcvers}`, reply: { kind: 'rpc_mismatch', low: RPC_VERSION, high: RPC_VERSION } };
    }
    const prog = r.u32();
    const vers = r.u32();
    const proc = r.u32();
    let rawCred: OpaqueAuth;
    try {
      rawCred = readAuth(r);
    } catch (e) {
      return { kind: 'reject', xid, reason: `credential: ${(e as Error).message}`, reply: { kind: 'auth_error', stat: AUTH_STAT.BADCRED } };
    }
    let verf: OpaqueAuth;
    try {
      verf = readAuth(r);
    } catch (e) {
      return { kind: 'reject', xid, reason: `verifier: ${(e as Error).message}`, reply: { kind: 'auth_error', stat: AUTH_STAT.BADVERF } };
    }
    let cred: Credential;
    if (rawCred.flavor === AUTH_FLAVOR.NONE) {
      cred = { flavor: AUTH_FLAVOR.NONE };
    } else if (rawCred.flavor === AUTH_FLAVOR.SYS) {
      try {
        cred = authSysCred(rawCred.body);
      } catch (e) {
        return { kind: 'reject', xid, reason: `AUTH_SYS: ${(e as Error).message}`, reply: { kind: 'auth_error', stat: AUTH_STAT.BADCRED } };
      }
    } else {
      // Linux answers a flavor it has no module for with AUTH_BADCRED (svc_authenticate); so do we
      // (RPCSEC_GSS, AUTH_DH, AUTH_SHORT without a cache, anything unknown).
      return { kind: 'reject', xid, reason: `auth flavor ${rawCred.flavor}`, reply: { kind: 'auth_error', stat: AUTH_STAT.BADCRED } };
    }
    // Clients send an AUTH_NONE verifier with AUTH_NONE and AUTH_SYS (RFC 5531 appendix A).
    if (verf.flavor !== AUTH_FLAVOR.NONE) {
      return { kind: 'reject', xid, reason: `verifier flavor ${verf.flavor}`, reply: { kind: 'auth_error', stat: AUTH_STAT.BADVERF } };
    }
    return { kind: 'call', call: { xid, prog, vers, proc, cred, rawCred, verf, args: rec.subarray(r.pos) } };
  } catch (e) {
    if (e instanceof XdrError) {
      // A call header cut short: answer GARBAGE_ARGS with the xid we have rather than leave the
      // client to time out.
      return { kind: 'reject', xid, reason: `call header: ${e.message}`, reply: { kind: 'garbage_args' } };
    }
    throw e;
  }
}

/**
 * Writes a reply header for `xid` into `w`; for 'success' the caller writes the results after it.
 * Servers send an AUTH_NONE verifier (AUTH_SYS has none of its own).
 */
export function encodeReplyHeader(w: XdrWriter, xid: number, reply: RpcReply): void {
  w.u32(xid).u32(MSG.REPLY);
  if (reply.kind === 'rpc_mismatch' || reply.kind === 'auth_error') {
    w.u32(REPLY_STAT.DENIED);
    if (reply.kind === 'rpc_mismatch') w.u32(REJECT.RPC_MISMATCH).u32(reply.low).u32(reply.high);
    else w.u32(REJECT.AUTH_ERROR).u32(reply.stat);
    return;
  }
  w.u32(REPLY_STAT.ACCEPTED).u32(AUTH_FLAVOR.NONE).u32(0);
  switch (reply.kind) {
    case 'success':
      w.u32(ACCEPT.SUCCESS);
      return;
    case 'prog_unavail':
      w.u32(ACCEPT.PROG_UNAVAIL);
      return;
    case 'prog_mismatch':
      w.u32(ACCEPT.PROG_MISMATCH).u32(reply.low).u32(reply.high);
      return;
    case 'proc_unavail':
      w.u32(ACCEPT.PROC_UNAVAIL);
      return;
    case 'garbage_args':
      w.u32(ACCEPT.GARBAGE_ARGS);
      return;
    case 'system_err':
      w.u32(ACCEPT.SYSTEM_ERR);
      return;
  }
}

/** A call message (clients and tests): header, credential, AUTH_NONE verifier, then `args`. */
export function encodeCall(
  w: XdrWriter,
  c: { xid: number; prog: number; vers: number; proc: number; cred?: OpaqueAuth; verf?: OpaqueAuth; rpcvers?: number },
): void {
  const cred = c.cred ?? { flavor: AUTH_FLAVOR.NONE, body: Buffer.alloc(0) };
  const verf = c.verf ?? { flavor: AUTH_FLAVOR.NONE, body: Buffer.alloc(0) };
  w.u32(c.xid).u32(MSG.CALL).u32(c.rpcvers ?? RPC_VERSION).u32(c.prog).u32(c.vers).u32(c.proc);
  w.u32(cred.flavor).opaque(cred.body).u32(verf.flavor).opaque(verf.body);
}

/** A decoded reply (clients and tests). */
export type DecodedReply = { xid: number; reply: RpcReply; results: Buffer };

export function decodeReply(rec: Buffer): DecodedReply {
  const r = new XdrReader(rec);
  const xid = r.u32();
  const mtype = r.u32();
  if (mtype !== MSG.REPLY) throw new XdrError('bad-value', `message type ${mtype}`, 4);
  const stat = r.u32();
  if (stat === REPLY_STAT.DENIED) {
    const rs = r.u32();
    if (rs === REJECT.RPC_MISMATCH) return { xid, reply: { kind: 'rpc_mismatch', low: r.u32(), high: r.u32() }, results: Buffer.alloc(0) };
    if (rs === REJECT.AUTH_ERROR) return { xid, reply: { kind: 'auth_error', stat: r.u32() }, results: Buffer.alloc(0) };
    throw new XdrError('bad-value', `reject_stat ${rs}`, r.pos - 4);
  }
  if (stat !== REPLY_STAT.ACCEPTED) throw new XdrError('bad-value', `reply_stat ${stat}`, r.pos - 4);
  readAuth(r);
  const as = r.u32();
  const kinds = ['success', 'prog_unavail', 'prog_mismatch', 'proc_unavail', 'garbage_args', 'system_err'] as const;
  const kind = kinds[as];
  if (!kind) throw new XdrError('bad-value', `accept_stat ${as}`, r.pos - 4);
  if (kind === 'prog_mismatch') return { xid, reply: { kind, low: r.u32(), high: r.u32() }, results: Buffer.alloc(0) };
  return { xid, reply: { kind } as RpcReply, results: rec.subarray(r.pos) };
}
