/**
 * Client records: 4.1 EXCHANGE_ID, DESTROY_CLIENTID, RECLAIM_COMPLETE (RFC 8881 §18.35, §18.50,
 * §18.51) and 4.0 SETCLIENTID, SETCLIENTID_CONFIRM, RENEW (RFC 7530 §16.33, §16.34, §16.29).
 *
 * A client is named by its owner id (co_ownerid / nfs_client_id4) and its boot verifier. The
 * record binds the client's core ClientState to `nfs4:<owner id>` with the verifier
 * (Session.bindClient), so after a restart the grace period knows it; a new verifier means the
 * client rebooted, and its old record's opens and locks are dropped when the new one is confirmed.
 */
import { randomBytes } from 'node:crypto';
import { EXCHGID4_FLAG, NFS4ERR, OP, SP4 } from '../nfs4-types.ts';
import type { OpResult } from '../compound.ts';
import type { ClientidArgs, ExchangeIdArgs, ReclaimCompleteArgs } from '../xdr4/session41.ts';
import type { RenewArgs, SetclientidArgs, SetclientidConfirmArgs } from '../xdr4/clientid40.ts';
import { fail, ok, type OpContext } from '../server/context.ts';
import { NfsClient } from '../server/state.ts';

const SERVER_OWNER = { minorId: 0n, majorId: Buffer.from('portico') };
const SERVER_SCOPE = Buffer.from('portico');

function newClient(c: OpContext, ownerId: Buffer, verifier: Buffer): NfsClient {
  const session = c.srv.sessions.openSession({ principal: c.principal, protocol: 'nfs', clientAddress: c.clientAddress });
  const client = new NfsClient(c.srv.state.newClientid(), ownerId, verifier, session);
  c.srv.state.clients.set(client.clientid, client);
  return client;
}

/** Confirms a client record: older records of the same owner go, with their state. */
export async function confirmClient(c: OpContext, client: NfsClient): Promise<void> {
  for (const other of c.srv.state.clientByOwner(client.ownerHex)) {
    if (other !== client) await c.srv.endClient(other);
  }
  if (!client.confirmed) {
    client.confirmed = true;
    try {
      client.session.bindClient(client.key, { verifier: client.verifier.toString('hex') });
    } catch (e) {
      c.srv.logger?.warn({ err: e }, 'nfs: binding the client for reclaim failed');
    }
  }
}

export function exchangeId(c: OpContext, a: ExchangeIdArgs): OpResult {
  if (a.stateProtect.how !== SP4.NONE) return fail(OP.EXCHANGE_ID, NFS4ERR.ENCR_ALG_UNSUPP);
  const ownerHex = a.ownerId.toString('hex');
  const existing = c.srv.state.clientByOwner(ownerHex);
  const confirmed = existing.find((x) => x.confirmed);
  let client: NfsClient;
  if (confirmed && confirmed.verifier.equals(a.verifier)) {
    client = confirmed;
  } else {
    // A new client, or the client rebooted (new verifier): a new, unconfirmed record (§18.35.5
    // cases 1, 4, 5); earlier unconfirmed records of the owner are replaced.
    for (const x of existing) if (!x.confirmed) void c.srv.endClient(x);
    client = newClient(c, a.ownerId, a.verifier);
  }
  client.lastRenew = Date.now();
  return ok(OP.EXCHANGE_ID, {
    clientid: client.clientid,
    sequenceid: client.csSeq + 1,
    flags: EXCHGID4_FLAG.USE_NON_PNFS | (client.confirmed ? EXCHGID4_FLAG.CONFIRMED_R : 0),
    stateProtect: { how: SP4.NONE },
    serverOwner: SERVER_OWNER,
    serverScope: SERVER_SCOPE,
  });
}

export async function destroyClientid(c: OpContext, a: ClientidArgs): Promise<OpResult> {
  const client = c.srv.state.clients.get(a.clientid);
  if (!client) return fail(OP.DESTROY_CLIENTID, NFS4ERR.STALE_CLIENTID);
  if (client.sessions.size > 0) return fail(OP.DESTROY_CLIENTID, NFS4ERR.CLIENTID_BUSY);
  await c.srv.endClient(client);
  return ok(OP.DESTROY_CLIENTID, null);
}

export function reclaimComplete(c: OpContext, a: ReclaimCompleteArgs): OpResult {
  const client = c.client;
  if (!client) return fail(OP.RECLAIM_COMPLETE, NFS4ERR.OP_NOT_IN_SESSION);
  // rca_one_fs: done for the current filehandle's file system only (grace is per server here).
  if (a.oneFs) return c.cur ? ok(OP.RECLAIM_COMPLETE, null) : fail(OP.RECLAIM_COMPLETE, NFS4ERR.NOFILEHANDLE);
  if (client.reclaimDone) return fail(OP.RECLAIM_COMPLETE, NFS4ERR.COMPLETE_ALREADY);
  client.reclaimDone = true;
  client.session.reclaimComplete();
  return ok(OP.RECLAIM_COMPLETE, null);
}

// ---- 4.0 ----------------------------------------------------------------------------------

export function setclientid(c: OpContext, a: SetclientidArgs): OpResult {
  const ownerHex = a.id.toString('hex');
  const existing = c.srv.state.clientByOwner(ownerHex);
  const confirmed = existing.find((x) => x.confirmed);
  for (const x of existing) if (!x.confirmed) void c.srv.endClient(x);
  // Same verifier: a callback update of the confirmed record (RFC 7530 §16.33.5); the record
  // keeps its clientid and state. Otherwise a new record, confirmed later.
  const client = confirmed && confirmed.verifier.equals(a.verifier) ? confirmed : newClient(c, a.id, a.verifier);
  client.confirm = randomBytes(8);
  client.lastRenew = Date.now();
  return ok(OP.SETCLIENTID, { clientid: client.clientid, confirm: client.confirm });
}

export async function setclientidConfirm(c: OpContext, a: SetclientidConfirmArgs): Promise<OpResult> {
  const client = c.srv.state.clients.get(a.clientid);
  if (!client) return fail(OP.SETCLIENTID_CONFIRM, NFS4ERR.STALE_CLIENTID);
  if (!client.confirm.equals(a.confirm)) return fail(OP.SETCLIENTID_CONFIRM, client.confirmed ? NFS4ERR.CLID_INUSE : NFS4ERR.STALE_CLIENTID);
  await confirmClient(c, client);
  client.lastRenew = Date.now();
  return ok(OP.SETCLIENTID_CONFIRM, null);
}

export function renew(c: OpContext, a: RenewArgs): OpResult {
  const client = c.srv.state.clients.get(a.clientid);
  if (!client || !client.confirmed) return fail(OP.RENEW, NFS4ERR.STALE_CLIENTID);
  client.lastRenew = Date.now();
  return ok(OP.RENEW, null);
}
