/**
 * NFSv4.1 client and session operations (RFC 8881 §18.35–18.50): EXCHANGE_ID, CREATE_SESSION,
 * SEQUENCE, RECLAIM_COMPLETE, DESTROY_SESSION, DESTROY_CLIENTID, TEST_STATEID, FREE_STATEID,
 * BIND_CONN_TO_SESSION, BACKCHANNEL_CTL.
 *
 * SP4_SSV arguments are decoded (so the semantics can refuse them with a status) but no SSV
 * result can be encoded: Portico answers SP4_NONE or SP4_MACH_CRED.
 */
import { CDFC4, NFS4_OPAQUE_LIMIT, SP4 } from '../nfs4-types.ts';
import { XdrError, type XdrReader, type XdrWriter } from '../xdr.ts';
import {
  NFS4_BOUNDS,
  okArm,
  readBitmap,
  readCallbackSecList,
  readChannelAttrs,
  readImplId,
  readOid,
  readSessionId,
  readStateid,
  readVerifier,
  statusOnly,
  writeBitmap,
  writeChannelAttrs,
  writeImplId,
  writeSessionId,
  type Bitmap4,
  type CallbackSecParms4,
  type ChannelAttrs4,
  type ImplId4,
  type OpCodec,
  type Stateid4,
} from './common.ts';

export interface StateProtectOps4 {
  mustEnforce: Bitmap4;
  mustAllow: Bitmap4;
}
export type StateProtectArgs =
  | { how: typeof SP4.NONE }
  | { how: typeof SP4.MACH_CRED; ops: StateProtectOps4 }
  | { how: typeof SP4.SSV; ops: StateProtectOps4; hashAlgs: Buffer[]; encrAlgs: Buffer[]; window: number; numGssHandles: number };
export type StateProtectRes = { how: typeof SP4.NONE } | { how: typeof SP4.MACH_CRED; ops: StateProtectOps4 };

export interface ExchangeIdArgs {
  verifier: Buffer;
  ownerId: Buffer;
  flags: number;
  stateProtect: StateProtectArgs;
  implId?: ImplId4;
}
export interface ExchangeIdResOk {
  clientid: bigint;
  sequenceid: number;
  flags: number;
  stateProtect: StateProtectRes;
  serverOwner: { minorId: bigint; majorId: Buffer };
  serverScope: Buffer;
  implId?: ImplId4;
}
export interface CreateSessionArgs {
  clientid: bigint;
  sequence: number;
  flags: number;
  fore: ChannelAttrs4;
  back: ChannelAttrs4;
  cbProgram: number;
  secParms: CallbackSecParms4[];
}
export interface CreateSessionResOk {
  sessionid: Buffer;
  sequence: number;
  flags: number;
  fore: ChannelAttrs4;
  back: ChannelAttrs4;
}
export interface SequenceArgs {
  sessionid: Buffer;
  sequenceid: number;
  slotid: number;
  highestSlotid: number;
  cacheThis: boolean;
}
export interface SequenceResOk {
  sessionid: Buffer;
  sequenceid: number;
  slotid: number;
  highestSlotid: number;
  targetHighestSlotid: number;
  statusFlags: number;
}
export interface ReclaimCompleteArgs {
  oneFs: boolean;
}
export interface SessionidArgs {
  sessionid: Buffer;
}
export interface ClientidArgs {
  clientid: bigint;
}
export interface TestStateidArgs {
  stateids: Stateid4[];
}
export interface TestStateidResOk {
  statuses: number[];
}
export interface StateidArgs {
  stateid: Stateid4;
}
export interface BindConnArgs {
  sessionid: Buffer;
  dir: number;
  rdma: boolean;
}
export interface BindConnResOk {
  sessionid: Buffer;
  dir: number;
  rdma: boolean;
}
export interface BackchannelCtlArgs {
  cbProgram: number;
  secParms: CallbackSecParms4[];
}

const readOps = (r: XdrReader): StateProtectOps4 => ({ mustEnforce: readBitmap(r), mustAllow: readBitmap(r) });

function readStateProtect(r: XdrReader): StateProtectArgs {
  const at = r.pos;
  const how = r.u32();
  if (how === SP4.NONE) return { how };
  if (how === SP4.MACH_CRED) return { how, ops: readOps(r) };
  if (how === SP4.SSV) {
    return {
      how,
      ops: readOps(r),
      hashAlgs: r.array(NFS4_BOUNDS.maxSmallList, 4, readOid, 'ssp_hash_algs'),
      encrAlgs: r.array(NFS4_BOUNDS.maxSmallList, 4, readOid, 'ssp_encr_algs'),
      window: r.u32(),
      numGssHandles: r.u32(),
    };
  }
  throw new XdrError('bad-value', `state_protect_how4 ${how}`, at);
}

const CDFC = new Set<number>(Object.values(CDFC4));

export const EXCHANGE_ID: OpCodec<ExchangeIdArgs, ExchangeIdResOk> = {
  decode: (r) => {
    const verifier = readVerifier(r);
    const ownerId = r.opaque(NFS4_OPAQUE_LIMIT, 'co_ownerid');
    const flags = r.u32();
    const stateProtect = readStateProtect(r);
    const impl = r.array(1, 20, readImplId, 'eia_client_impl_id');
    return impl[0] ? { verifier, ownerId, flags, stateProtect, implId: impl[0] } : { verifier, ownerId, flags, stateProtect };
  },
  encode: okArm((w: XdrWriter, res: ExchangeIdResOk) => {
    w.u64(res.clientid).u32(res.sequenceid).u32(res.flags);
    w.u32(res.stateProtect.how);
    if (res.stateProtect.how === SP4.MACH_CRED) {
      writeBitmap(w, res.stateProtect.ops.mustEnforce);
      writeBitmap(w, res.stateProtect.ops.mustAllow);
    }
    w.u64(res.serverOwner.minorId).opaque(res.serverOwner.majorId).opaque(res.serverScope);
    if (res.implId) {
      w.u32(1);
      writeImplId(w, res.implId);
    } else {
      w.u32(0);
    }
  }),
};
export const CREATE_SESSION: OpCodec<CreateSessionArgs, CreateSessionResOk> = {
  decode: (r) => ({
    clientid: r.u64(),
    sequence: r.u32(),
    flags: r.u32(),
    fore: readChannelAttrs(r),
    back: readChannelAttrs(r),
    cbProgram: r.u32(),
    secParms: readCallbackSecList(r),
  }),
  encode: okArm((w: XdrWriter, res: CreateSessionResOk) => {
    writeSessionId(w, res.sessionid);
    w.u32(res.sequence).u32(res.flags);
    writeChannelAttrs(w, res.fore);
    writeChannelAttrs(w, res.back);
  }),
};
export const SEQUENCE: OpCodec<SequenceArgs, SequenceResOk> = {
  decode: (r) => ({ sessionid: readSessionId(r), sequenceid: r.u32(), slotid: r.u32(), highestSlotid: r.u32(), cacheThis: r.bool() }),
  encode: okArm((w: XdrWriter, res: SequenceResOk) => {
    writeSessionId(w, res.sessionid);
    w.u32(res.sequenceid).u32(res.slotid).u32(res.highestSlotid).u32(res.targetHighestSlotid).u32(res.statusFlags);
  }),
};
export const RECLAIM_COMPLETE: OpCodec<ReclaimCompleteArgs, null> = { decode: (r) => ({ oneFs: r.bool() }), encode: statusOnly };
export const DESTROY_SESSION: OpCodec<SessionidArgs, null> = { decode: (r) => ({ sessionid: readSessionId(r) }), encode: statusOnly };
export const DESTROY_CLIENTID: OpCodec<ClientidArgs, null> = { decode: (r) => ({ clientid: r.u64() }), encode: statusOnly };
export const TEST_STATEID: OpCodec<TestStateidArgs, TestStateidResOk> = {
  decode: (r) => ({ stateids: r.array(NFS4_BOUNDS.maxStateids, 16, readStateid, 'ts_stateids') }),
  encode: okArm((w: XdrWriter, res: TestStateidResOk) => void w.u32Array(res.statuses)),
};
export const FREE_STATEID: OpCodec<StateidArgs, null> = { decode: (r) => ({ stateid: readStateid(r) }), encode: statusOnly };
export const BIND_CONN_TO_SESSION: OpCodec<BindConnArgs, BindConnResOk> = {
  decode: (r) => ({ sessionid: readSessionId(r), dir: r.enumOf(CDFC, 'channel_dir_from_client4'), rdma: r.bool() }),
  encode: okArm((w: XdrWriter, res: BindConnResOk) => {
    writeSessionId(w, res.sessionid);
    w.u32(res.dir).bool(res.rdma);
  }),
};
export const BACKCHANNEL_CTL: OpCodec<BackchannelCtlArgs, null> = {
  decode: (r) => ({ cbProgram: r.u32(), secParms: readCallbackSecList(r) }),
  encode: statusOnly,
};
