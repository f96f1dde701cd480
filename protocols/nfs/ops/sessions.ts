/**
 * 4.1 sessions: CREATE_SESSION, DESTROY_SESSION, BIND_CONN_TO_SESSION, BACKCHANNEL_CTL
 * (RFC 8881 §18.36, §18.37, §18.34, §18.33). SEQUENCE and its replay cache are the dispatcher's
 * (they decide whether the rest of the COMPOUND runs at all).
 *
 * Channel attributes are negotiated down to what the server keeps: requests and replies of
 * the largest WRITE (requests) and READ (replies) plus headers (MSG_HEADROOM), at most 64 operations
 * (fewer when protocols.nfs.maxCompoundOps says so) and 64 slots per session. No back
 * channel is offered (no delegations, so no callbacks): CONN_BACK_CHAN is never granted.
 */
import { CDFS4, NFS4ERR, OP } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { BackchannelCtlArgs, BindConnArgs, CreateSessionArgs, CreateSessionResOk, SessionidArgs } from '../xdr4/session41.ts';
import type { ChannelAttrs4 } from '../xdr4/common.ts';
import { MSG_HEADROOM, fail, ok, type OpContext } from '../server/context.ts';
import type { NfsSession } from '../server/state.ts';
import { confirmClient } from './clients.ts';

const MAX_SLOTS = 64;
const MAX_OPS = 64;

function fore(c: OpContext, a: ChannelAttrs4): ChannelAttrs4 {
  const req = c.srv.exports.maxWrite + MSG_HEADROOM;
  const res = c.srv.exports.maxRead + MSG_HEADROOM;
  return {
    headerPadSize: 0,
    maxRequestSize: Math.min(a.maxRequestSize, req),
    maxResponseSize: Math.min(a.maxResponseSize, res),
    maxResponseSizeCached: Math.min(a.maxResponseSizeCached, res),
    maxOperations: Math.max(1, Math.min(a.maxOperations, MAX_OPS, c.srv.maxCompoundOps)),
    maxRequests: Math.max(1, Math.min(a.maxRequests, MAX_SLOTS)),
    rdmaIrd: [],
  };
}

export async function createSession(c: OpContext, a: CreateSessionArgs): Promise<OpResult> {
  const client = c.srv.state.clients.get(a.clientid);
  if (!client) return fail(OP.CREATE_SESSION, NFS4ERR.STALE_CLIENTID);
  // §18.36.4: the sequence is the client's CREATE_SESSION slot: the same one replays the reply.
  if (a.sequence === client.csSeq && client.csReply) return ok(OP.CREATE_SESSION, client.csReply);
  if (a.sequence !== ((client.csSeq + 1) >>> 0)) return fail(OP.CREATE_SESSION, NFS4ERR.SEQ_MISORDERED);
  if (a.fore.maxRequestSize < 1024 || a.fore.maxResponseSize < 1024) return fail(OP.CREATE_SESSION, NFS4ERR.TOOSMALL);
  await confirmClient(c, client);
  const id = c.srv.state.newSessionId();
  const f = fore(c, a.fore);
  const s: NfsSession = {
    id,
    idHex: id.toString('hex'),
    client,
    slots: Array.from({ length: f.maxRequests }, () => ({ seqid: 0, busy: false })),
    fore: f,
    back: { ...a.back, rdmaIrd: [] },
  };
  client.sessions.set(s.idHex, s);
  c.srv.state.sessions.set(s.idHex, s);
  client.csSeq = a.sequence;
  client.lastRenew = Date.now();
  const res: CreateSessionResOk = { sessionid: id, sequence: a.sequence, flags: 0, fore: f, back: s.back };
  client.csReply = res;
  return ok(OP.CREATE_SESSION, res);
}

export function destroySession(c: OpContext, a: SessionidArgs): OpResult {
  const s = c.srv.state.sessions.get(a.sessionid.toString('hex'));
  if (!s) return fail(OP.DESTROY_SESSION, NFS4ERR.BADSESSION);
  c.srv.state.sessions.delete(s.idHex);
  s.client.sessions.delete(s.idHex);
  return ok(OP.DESTROY_SESSION, null);
}

export function bindConnToSession(c: OpContext, a: BindConnArgs): OpResult {
  const s = c.srv.state.sessions.get(a.sessionid.toString('hex'));
  if (!s) return fail(OP.BIND_CONN_TO_SESSION, NFS4ERR.BADSESSION);
  s.client.lastRenew = Date.now();
  return ok(OP.BIND_CONN_TO_SESSION, { sessionid: s.id, dir: CDFS4.FORE, rdma: false });
}

export function backchannelCtl(_c: OpContext, _a: BackchannelCtlArgs): OpResult {
  return ok(OP.BACKCHANNEL_CTL, null);
}
