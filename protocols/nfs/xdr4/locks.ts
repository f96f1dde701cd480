/**
 * Byte-range lock operations: LOCK, LOCKT, LOCKU, RELEASE_LOCKOWNER (RFC 8881 §18.10–18.12,
 * RFC 7530 §16.37). NFS4ERR_DENIED carries the conflicting lock (LOCK4denied).
 */
import { LOCK_TYPE, NFS4ERR } from '../nfs4-types.ts';
import type { XdrReader, XdrWriter } from '../xdr.ts';
import { readOwner, readStateid, statusOnly, writeOwner, writeStateid, type OpCodec, type StateOwner4, type Stateid4 } from './common.ts';

const LOCK_TYPES = new Set<number>(Object.values(LOCK_TYPE));

/** locker4: a new lock owner (opened through its open stateid) or an existing lock stateid. */
export type Locker4 =
  | { newLockOwner: true; openSeqid: number; openStateid: Stateid4; lockSeqid: number; lockOwner: StateOwner4 }
  | { newLockOwner: false; lockStateid: Stateid4; lockSeqid: number };

export interface LockArgs {
  locktype: number;
  reclaim: boolean;
  offset: bigint;
  length: bigint;
  locker: Locker4;
}
export interface Lock4Denied {
  offset: bigint;
  length: bigint;
  locktype: number;
  owner: StateOwner4;
}
/** NFS4_OK: the lock stateid; NFS4ERR_DENIED: the conflicting lock. */
export interface LockRes {
  stateid?: Stateid4;
  denied?: Lock4Denied;
}
export interface LocktArgs {
  locktype: number;
  offset: bigint;
  length: bigint;
  owner: StateOwner4;
}
export interface LockuArgs {
  locktype: number;
  seqid: number;
  stateid: Stateid4;
  offset: bigint;
  length: bigint;
}
export interface ReleaseLockownerArgs {
  owner: StateOwner4;
}

function readLocker(r: XdrReader): Locker4 {
  if (r.bool()) return { newLockOwner: true, openSeqid: r.u32(), openStateid: readStateid(r), lockSeqid: r.u32(), lockOwner: readOwner(r) };
  return { newLockOwner: false, lockStateid: readStateid(r), lockSeqid: r.u32() };
}

function writeDenied(w: XdrWriter, d: Lock4Denied | undefined): void {
  if (!d) throw new Error('NFS4ERR_DENIED without LOCK4denied');
  w.u64(d.offset).u64(d.length).u32(d.locktype);
  writeOwner(w, d.owner);
}

export const LOCK: OpCodec<LockArgs, LockRes> = {
  decode: (r) => ({ locktype: r.enumOf(LOCK_TYPES, 'nfs_lock_type4'), reclaim: r.bool(), offset: r.u64(), length: r.u64(), locker: readLocker(r) }),
  encode: (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.OK) {
      if (!res?.stateid) throw new Error('LOCK NFS4_OK without a stateid');
      writeStateid(w, res.stateid);
    } else if (status === NFS4ERR.DENIED) {
      writeDenied(w, res?.denied);
    }
  },
};
export const LOCKT: OpCodec<LocktArgs, LockRes> = {
  decode: (r) => ({ locktype: r.enumOf(LOCK_TYPES, 'nfs_lock_type4'), offset: r.u64(), length: r.u64(), owner: readOwner(r) }),
  encode: (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.DENIED) writeDenied(w, res?.denied);
  },
};
export const LOCKU: OpCodec<LockuArgs, LockRes> = {
  decode: (r) => ({ locktype: r.enumOf(LOCK_TYPES, 'nfs_lock_type4'), seqid: r.u32(), stateid: readStateid(r), offset: r.u64(), length: r.u64() }),
  encode: (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.OK) {
      if (!res?.stateid) throw new Error('LOCKU NFS4_OK without a stateid');
      writeStateid(w, res.stateid);
    }
  },
};
export const RELEASE_LOCKOWNER: OpCodec<ReleaseLockownerArgs, null> = { decode: (r) => ({ owner: readOwner(r) }), encode: statusOnly };
