/**
 * NFSv4.0 owner sequence ids (RFC 7530 §9.1.7): every OPEN, OPEN_CONFIRM, OPEN_DOWNGRADE and
 * CLOSE carries its open-owner's seqid, every LOCK and LOCKU its lock-owner's (a LOCK that
 * creates a lock-owner, its open-owner's). 4.1 replaces all this with the session's slots.
 *
 * Per owner the server keeps the last seqid and the reply it got:
 * - the next one (last + 1, wrapping at 2^32) runs;
 * - the same one again is a retransmission (a reconnect, a lost reply): it gets the cached result,
 *   and for OPEN the filehandle it left current, without running a second time — also while the
 *   first is still running (it waits for it); the same seqid on another operation is BAD_SEQID;
 * - any other seqid is NFS4ERR_BAD_SEQID, and nothing runs.
 * An owner's first request sets its sequence (Portico never asks for OPEN_CONFIRM: the first OPEN
 * of an owner is taken as it comes, RFC 7530 §16.18.5 lets a server do so). A lock-owner's first
 * LOCK is sequenced by its open-owner (open_seqid) and starts the lock-owner at lock_seqid.
 *
 * A result advances the sequence unless it is one of the errors the RFC lists as not advancing it
 * (STALE_CLIENTID, STALE_STATEID, BAD_STATEID, BAD_SEQID, BADXDR, RESOURCE, NOFILEHANDLE, MOVED):
 * errors about the request rather than the owner, after which the client sends the same seqid
 * with a new request. The Linux client follows the same list.
 *
 * Owners are found from the arguments (OPEN names its owner, a new lock-owner too) or from the
 * stateid: every stateid an OPEN or LOCK hands out is remembered with its owner (also after
 * CLOSE, so a retransmitted CLOSE is recognised). Both tables are bounded (oldest forgotten first):
 * a forgotten owner starts again at whatever seqid it sends, as after a server restart.
 */
import { NFS4ERR, OP } from '../nfs4-types.ts';
import type { DecodedOp, OpResult } from '../compound.ts';
import type { Fh } from './filehandle.ts';
import type { OpContext } from './context.ts';

const NOT_ADVANCING = new Set<number>([
  NFS4ERR.STALE_CLIENTID,
  NFS4ERR.STALE_STATEID,
  NFS4ERR.BAD_STATEID,
  NFS4ERR.BAD_SEQID,
  NFS4ERR.BADXDR,
  NFS4ERR.RESOURCE,
  NFS4ERR.NOFILEHANDLE,
  NFS4ERR.MOVED,
]);

interface Owner40 {
  seqid: number;
  /** The reply of the request with `seqid` (and the current filehandle it left). */
  last: { res: OpResult; cur: Fh | undefined };
  /** The request running now, and its seqid (a retransmission waits for it). */
  running?: { seqid: number; done: Promise<void> };
}

/** Which owner a request sequences, with what seqid. */
interface Sequenced {
  key: string;
  seqid: number;
  /** LOCK with a new lock-owner: that owner starts at this seqid once the LOCK advances. */
  start?: { key: string; seqid: number };
}

const hex = (b: Buffer): string => b.toString('hex');

export class Seqids40 {
  static readonly MAX_OWNERS = 65_536;
  static readonly MAX_STATEIDS = 65_536;
  private readonly owners = new Map<string, Owner40>();
  /** stateid `other` → the owner key it belongs to. */
  private readonly byOther = new Map<string, string>();

  /** Runs a 4.0 operation under its owner's sequence (operations without a seqid just run). */
  async run(c: OpContext, op: DecodedOp, exec: () => Promise<OpResult>): Promise<OpResult> {
    const s = this.sequenced(op);
    if (!s) return exec();
    for (;;) {
      const o = this.owners.get(s.key);
      if (o?.running && o.running.seqid === s.seqid) {
        await o.running.done;
        continue;
      }
      if (o && s.seqid === o.seqid) {
        // The owner's last seqid on another operation is no retransmission of it.
        if (o.last.res.op !== op.op) return { op: op.op, status: NFS4ERR.BAD_SEQID } as OpResult;
        c.cur = o.last.cur;
        return o.last.res;
      }
      // (A request running holds the next seqid, so the next one is either waiting above or runs here.)
      if (o && s.seqid !== ((o.seqid + 1) >>> 0)) return { op: op.op, status: NFS4ERR.BAD_SEQID } as OpResult;
      return this.execute(c, op, s, o, exec);
    }
  }

  private async execute(c: OpContext, op: DecodedOp, s: Sequenced, o: Owner40 | undefined, exec: () => Promise<OpResult>): Promise<OpResult> {
    let release!: () => void;
    const running = { seqid: s.seqid, done: new Promise<void>((r) => (release = r)) };
    // An owner seen for the first time holds a placeholder while it runs (so a retransmission waits).
    const owner: Owner40 = o ?? { seqid: (s.seqid - 1) >>> 0, last: { res: { op: op.op, status: NFS4ERR.BAD_SEQID } as OpResult, cur: undefined } };
    owner.running = running;
    if (!o) this.setOwner(s.key, owner);
    try {
      const res = await exec();
      if (!NOT_ADVANCING.has(res.status)) {
        owner.seqid = s.seqid;
        owner.last = { res, cur: c.cur };
        this.learn(op, s, res);
        if (s.start) this.setOwner(s.start.key, { seqid: s.start.seqid, last: { res, cur: c.cur } });
      } else if (!o) {
        this.owners.delete(s.key);
      }
      return res;
    } finally {
      owner.running = undefined;
      release();
    }
  }

  private setOwner(key: string, o: Owner40): void {
    this.owners.delete(key);
    if (this.owners.size >= Seqids40.MAX_OWNERS) this.owners.delete(this.owners.keys().next().value as string);
    this.owners.set(key, o);
  }

  /** Remembers the owner of the stateid a successful OPEN or LOCK handed out. */
  private learn(op: DecodedOp, s: Sequenced, res: OpResult): void {
    if (res.status !== NFS4ERR.OK) return;
    const sid = (res.res as { stateid?: { other: Buffer } } | undefined)?.stateid;
    if (!sid) return;
    const key = op.op === OP.LOCK ? (s.start?.key ?? s.key) : s.key;
    if (op.op !== OP.OPEN && op.op !== OP.LOCK) return;
    const other = hex(sid.other);
    if (this.byOther.has(other)) return;
    if (this.byOther.size >= Seqids40.MAX_STATEIDS) this.byOther.delete(this.byOther.keys().next().value as string);
    this.byOther.set(other, key);
  }

  private sequenced(op: DecodedOp): Sequenced | undefined {
    switch (op.op) {
      case OP.OPEN:
        return { key: `o:${op.args.owner.clientid}:${hex(op.args.owner.owner)}`, seqid: op.args.seqid };
      case OP.OPEN_CONFIRM:
      case OP.OPEN_DOWNGRADE:
      case OP.CLOSE:
      case OP.LOCKU:
        return this.byStateid(op.args.stateid.other, op.args.seqid);
      case OP.LOCK: {
        const l = op.args.locker;
        if (!l.newLockOwner) return this.byStateid(l.lockStateid.other, l.lockSeqid);
        const s = this.byStateid(l.openStateid.other, l.openSeqid);
        return s && { ...s, start: { key: `l:${l.lockOwner.clientid}:${hex(l.lockOwner.owner)}`, seqid: l.lockSeqid } };
      }
      default:
        return undefined;
    }
  }

  /** An unknown stateid sequences nothing: the operation runs and answers BAD_STATEID (not advancing). */
  private byStateid(other: Buffer, seqid: number): Sequenced | undefined {
    const key = this.byOther.get(hex(other));
    return key === undefined ? undefined : { key, seqid };
  }
}
