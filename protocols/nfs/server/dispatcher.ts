/**
 * The NFSv4 dispatcher: one COMPOUND's context (the credential's principal, the current and saved
 * filehandles), 4.1's SEQUENCE (slot table, replay cache), and each operation to its file in
 * ../ops/. Operations Portico does not implement answer NOTSUPP.
 *
 * SEQUENCE (RFC 8881 §2.10.6): the first operation of every 4.1 COMPOUND but the few that create
 * or destroy sessions and clients (§2.10.6.4: OP_NOT_IN_SESSION otherwise); anywhere else it is
 * SEQUENCE_POS. A slot's next request carries seqid + 1 and runs; the same seqid again is a
 * retransmission and gets the reply the slot cached, byte for byte the same, without running
 * anything a second time (or RETRY_UNCACHED_REP when the client did not ask for it to be cached,
 * DELAY while the first is still running); any other seqid is SEQ_MISORDERED.
 */
import { runCompound, type CompoundArgs, type CompoundRes, type DecodedOp, type OpResult } from '../compound.ts';
import type { Nfs4CallContext, Nfs4Dispatcher } from '../nfs4-program.ts';
import { NFS4ERR, OP } from '../nfs4-types.ts';
import { accessIn, enterExport, fail, ok, type NfsServer, type OpContext } from './context.ts';
import { putfh, putrootfh, getfh, savefh, restorefh } from '../ops/filehandle.ts';
import { lookup, lookupp } from '../ops/lookup.ts';
import { getattr } from '../ops/getattr.ts';
import { verify } from '../ops/verify.ts';
import { access } from '../ops/access.ts';
import { readdir } from '../ops/readdir.ts';
import { readlink } from '../ops/readlink.ts';
import { secinfo, secinfoNoName } from '../ops/secinfo.ts';
import { destroyClientid, exchangeId, reclaimComplete, renew, setclientid, setclientidConfirm } from '../ops/clients.ts';
import { backchannelCtl, bindConnToSession, createSession, destroySession } from '../ops/sessions.ts';
import { open } from '../ops/open.ts';
import { close, delegreturn, openConfirm, openDowngrade } from '../ops/close.ts';
import { read } from '../ops/read.ts';
import { commit, write } from '../ops/write.ts';
import { setattr } from '../ops/setattr.ts';
import { create } from '../ops/create.ts';
import { remove } from '../ops/remove.ts';
import { rename } from '../ops/rename.ts';
import { link } from '../ops/link.ts';
import { lock, lockt, locku, releaseLockowner } from '../ops/lock.ts';
import { freeStateid, testStateid } from '../ops/stateids.ts';
import { seek } from '../ops/seek.ts';
import { copy } from '../ops/copy.ts';
import { allocate } from '../ops/allocate.ts';
import { getxattr, listxattrs, removexattr, setxattr } from '../ops/xattr.ts';
import type { SequenceArgs } from '../xdr4/session41.ts';

/** 4.1 operations that may come without a SEQUENCE before them (§2.10.6.4 and §18.x). */
const SESSIONLESS = new Set<number>([OP.EXCHANGE_ID, OP.CREATE_SESSION, OP.DESTROY_SESSION, OP.DESTROY_CLIENTID, OP.BIND_CONN_TO_SESSION]);

function execOp(c: OpContext, op: DecodedOp): OpResult | Promise<OpResult> {
  switch (op.op) {
    case OP.PUTROOTFH:
    case OP.PUTPUBFH:
      return putrootfh(c, op.op);
    case OP.PUTFH:
      return putfh(c, op.args);
    case OP.GETFH:
      return getfh(c);
    case OP.SAVEFH:
      return savefh(c);
    case OP.RESTOREFH:
      return restorefh(c);
    case OP.LOOKUP:
      return lookup(c, op.args);
    case OP.LOOKUPP:
      return lookupp(c);
    case OP.GETATTR:
      return getattr(c, op.args);
    case OP.VERIFY:
    case OP.NVERIFY:
      return verify(c, op.args, op.op);
    case OP.ACCESS:
      return access(c, op.args);
    case OP.READDIR:
      return readdir(c, op.args);
    case OP.READLINK:
      return readlink(c);
    case OP.SECINFO:
      return secinfo(c, op.args);
    case OP.SECINFO_NO_NAME:
      return secinfoNoName(c, op.args);
    case OP.EXCHANGE_ID:
      return exchangeId(c, op.args);
    case OP.CREATE_SESSION:
      return createSession(c, op.args);
    case OP.DESTROY_SESSION:
      return destroySession(c, op.args);
    case OP.DESTROY_CLIENTID:
      return destroyClientid(c, op.args);
    case OP.BIND_CONN_TO_SESSION:
      return bindConnToSession(c, op.args);
    case OP.BACKCHANNEL_CTL:
      return backchannelCtl(c, op.args);
    case OP.RECLAIM_COMPLETE:
      return reclaimComplete(c, op.args);
    case OP.SEQUENCE:
      return fail(op.op, NFS4ERR.SEQUENCE_POS);
    case OP.SETCLIENTID:
      return setclientid(c, op.args);
    case OP.SETCLIENTID_CONFIRM:
      return setclientidConfirm(c, op.args);
    case OP.RENEW:
      return renew(c, op.args);
    case OP.OPEN:
      return open(c, op.args);
    case OP.OPEN_CONFIRM:
      return openConfirm(c, op.args);
    case OP.OPEN_DOWNGRADE:
      return openDowngrade(c, op.args);
    case OP.CLOSE:
      return close(c, op.args);
    case OP.DELEGRETURN:
      return delegreturn(c, op.args);
    case OP.READ:
      return read(c, op.args);
    case OP.WRITE:
      return write(c, op.args);
    case OP.COMMIT:
      return commit(c, op.args);
    case OP.SETATTR:
      return setattr(c, op.args);
    case OP.CREATE:
      return create(c, op.args);
    case OP.REMOVE:
      return remove(c, op.args);
    case OP.RENAME:
      return rename(c, op.args);
    case OP.LINK:
      return link(c, op.args);
    case OP.LOCK:
      return lock(c, op.args);
    case OP.LOCKT:
      return lockt(c, op.args);
    case OP.LOCKU:
      return locku(c, op.args);
    case OP.RELEASE_LOCKOWNER:
      return releaseLockowner(c, op.args);
    case OP.TEST_STATEID:
      return testStateid(c, op.args);
    case OP.FREE_STATEID:
      return freeStateid(c, op.args);
    case OP.SEEK:
      return seek(c, op.args);
    case OP.COPY:
      return copy(c, op.args);
    case OP.ALLOCATE:
      return allocate(c, op.args, 'allocate');
    case OP.DEALLOCATE:
      return allocate(c, op.args, 'deallocate');
    case OP.GETXATTR:
      return getxattr(c, op.args);
    case OP.SETXATTR:
      return setxattr(c, op.args);
    case OP.LISTXATTRS:
      return listxattrs(c, op.args);
    case OP.REMOVEXATTR:
      return removexattr(c, op.args);
    default:
      return fail((op as { op: number }).op, NFS4ERR.NOTSUPP);
  }
}

/** Operations that change the export their current filehandle is in (OPEN only when it writes or creates). */
const CHANGES = new Set<number>([OP.WRITE, OP.SETATTR, OP.CREATE, OP.REMOVE, OP.RENAME, OP.LINK, OP.SETXATTR, OP.REMOVEXATTR, OP.COPY, OP.ALLOCATE, OP.DEALLOCATE, OP.OPEN]);

/** A change in an export that is read-only for this client's address (shares[].nfs.clients: ro). */
function readOnlyForClient(c: OpContext, op: DecodedOp): boolean {
  const cur = c.cur;
  if (cur?.kind !== 'file' || !cur.exp.clients || !CHANGES.has(op.op)) return false;
  if (op.op === OP.OPEN && (op.args.shareAccess & 2) === 0 && !op.args.create) return false;
  return accessIn(c, cur.exp) === 'ro';
}

/** An operation that throws is a bug: SERVERFAULT for it (logged), not an RPC SYSTEM_ERR for the COMPOUND. */
function serverFault(c: OpContext, op: DecodedOp, e: unknown): OpResult {
  c.srv.logger?.error({ err: e, op: op.op }, 'nfs: operation failed unexpectedly');
  return fail(op.op, NFS4ERR.SERVERFAULT);
}

/**
 * Runs one operation (SERVERFAULT if it throws). Synchronous operations (SEQUENCE's siblings
 * PUTFH, GETFH, SAVEFH, RESTOREFH...) answer without a promise, so the COMPOUND loop awaits only
 * the operations that wait for something.
 */
function safely(c: OpContext, op: DecodedOp): OpResult | Promise<OpResult> {
  if (readOnlyForClient(c, op)) return fail(op.op, NFS4ERR.ROFS);
  if (c.known !== undefined && op.op !== OP.GETFH && op.op !== OP.GETATTR) c.known = undefined;
  if (c.mapping !== undefined || (c.cur?.kind === 'file' && c.cur.exp.clients)) return enteringExport(c, op);
  try {
    const r = execOp(c, op);
    return r instanceof Promise ? r.catch((e: unknown) => serverFault(c, op, e)) : r;
  } catch (e) {
    return serverFault(c, op, e);
  }
}

async function enteringExport(c: OpContext, op: DecodedOp): Promise<OpResult> {
  try {
    await enterExport(c);
    return await execOp(c, op);
  } catch (e) {
    return serverFault(c, op, e);
  }
}

/** 4.0: the owner seqids (RFC 7530 §9.1.7, server/seqid40.ts); 4.1+ has the slots instead. */
function guarded(c: OpContext, op: DecodedOp): OpResult | Promise<OpResult> {
  if (c.minor !== 0) return safely(c, op);
  return c.srv.seqids40.run(c, op, async () => safely(c, op));
}

export function createDispatcher(srv: NfsServer): Nfs4Dispatcher {
  const inner = dispatcher(srv);
  return {
    compound(args: CompoundArgs, ctx: Nfs4CallContext): Promise<CompoundRes> {
      if (!srv.logger?.isLevelEnabled('debug')) return inner(args, ctx);
      // Failures at debug level, one line each: what a client asked and where it stopped.
      return inner(args, ctx).then((res) => {
        if (res.status !== NFS4ERR.OK) {
          srv.logger?.debug({ minor: args.minorversion, ops: args.ops.map((o) => o.op), results: res.results.map((r) => `${r.op}:${r.status}`) }, 'nfs: compound failed');
        }
        return res;
      });
    },
  };
}

function dispatcher(srv: NfsServer): (args: CompoundArgs, ctx: Nfs4CallContext) => Promise<CompoundRes> {
  return async (args, ctx) => {
    const p = srv.principals.of(ctx.call.cred);
    const principal = p instanceof Promise ? await p : p;
    // Every field set here, in one order, so every COMPOUND's context has the same shape (the
    // operations' property reads stay monomorphic).
    const c: OpContext = {
      srv,
      minor: args.minorversion,
      cred: ctx.call.cred,
      mapping: undefined,
      principal,
      view: srv.baseView(principal),
      clientAddress: ctx.conn.remoteAddress,
      client: undefined,
      cacheThis: undefined,
      cur: undefined,
      saved: undefined,
      currentStateid: undefined,
      known: undefined,
    };
    if (args.minorversion === 0) return runCompound(args, (op) => guarded(c, op));
    const first = args.ops[0];
    if (!first) return runCompound(args, () => fail(OP.ILLEGAL, NFS4ERR.OK));
    if (first.op !== OP.SEQUENCE) {
      if (SESSIONLESS.has(first.op)) {
        // These must come alone (or with only session-less siblings, e.g. DESTROY_SESSION first).
        return runCompound(args, (op, i) => (i > 0 && !SESSIONLESS.has(op.op) ? fail(op.op, NFS4ERR.NOT_ONLY_OP) : guarded(c, op)));
      }
      return runCompound(args, (op) => fail(op.op, NFS4ERR.OP_NOT_IN_SESSION));
    }
    return sequenced(srv, c, args, first.args);
  };
}

async function sequenced(srv: NfsServer, c: OpContext, args: CompoundArgs, seq: SequenceArgs): Promise<CompoundRes> {
  const only = (status: number): CompoundRes => ({ status, tag: args.tag, results: [{ op: OP.SEQUENCE, status }] });
  const session = srv.state.sessions.get(seq.sessionid.toString('hex'));
  if (!session) return only(NFS4ERR.BADSESSION);
  if (seq.slotid >= session.slots.length) return only(NFS4ERR.BADSLOT);
  const slot = session.slots[seq.slotid]!;
  if (seq.sequenceid === slot.seqid) {
    if (slot.busy) return only(NFS4ERR.DELAY);
    if (slot.reply) return slot.reply;
    return only(NFS4ERR.RETRY_UNCACHED_REP);
  }
  if (seq.sequenceid !== ((slot.seqid + 1) >>> 0)) return only(NFS4ERR.SEQ_MISORDERED);
  if (args.ops.length > session.fore.maxOperations) {
    slot.seqid = seq.sequenceid;
    slot.reply = undefined;
    return { status: NFS4ERR.TOO_MANY_OPS, tag: args.tag, results: [ok(OP.SEQUENCE, sequenceRes(session, seq)), fail(args.ops[1]?.op ?? OP.ILLEGAL, NFS4ERR.TOO_MANY_OPS)] };
  }
  slot.seqid = seq.sequenceid;
  slot.busy = true;
  slot.reply = undefined;
  session.client.lastRenew = Date.now();
  c.client = session.client;
  c.cacheThis = seq.cacheThis;
  try {
    const res = await runCompound(args, (op, i) => (i === 0 ? ok(OP.SEQUENCE, sequenceRes(session, seq)) : guarded(c, op)));
    if (seq.cacheThis) slot.reply = res;
    return res;
  } finally {
    slot.busy = false;
  }
}

function sequenceRes(session: { id: Buffer; slots: unknown[] }, seq: SequenceArgs) {
  return {
    sessionid: session.id,
    sequenceid: seq.sequenceid,
    slotid: seq.slotid,
    highestSlotid: session.slots.length - 1,
    targetHighestSlotid: session.slots.length - 1,
    statusFlags: 0,
  };
}
