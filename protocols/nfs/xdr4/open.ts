/**
 * Open state operations: OPEN (every createhow4 mode and open_claim4 type), OPEN_CONFIRM (4.0),
 * OPEN_DOWNGRADE, CLOSE, DELEGRETURN (RFC 8881 §18.16, §18.18, §18.2, §18.6; RFC 7530 §16.18).
 *
 * Delegations are never granted, so a result's delegation is NONE (4.0) or NONE_EXT with a reason
 * (4.1 clients that asked for one, RFC 8881 §18.16.3).
 */
import { CLAIM, CREATEMODE4, OPENTYPE4, OPEN_DELEGATE, WND4 } from '../nfs4-types.ts';
import { XdrError, type XdrReader, type XdrWriter } from '../xdr.ts';
import {
  okArm,
  readComponent,
  readFattr,
  readOwner,
  readStateid,
  readVerifier,
  writeBitmap,
  writeChangeInfo,
  writeStateid,
  type Bitmap4,
  type ChangeInfo4,
  type Fattr4,
  type OpCodec,
  type StateOwner4,
  type Stateid4,
} from './common.ts';

export type CreateHow4 =
  | { mode: typeof CREATEMODE4.UNCHECKED; attrs: Fattr4 }
  | { mode: typeof CREATEMODE4.GUARDED; attrs: Fattr4 }
  | { mode: typeof CREATEMODE4.EXCLUSIVE; verifier: Buffer }
  | { mode: typeof CREATEMODE4.EXCLUSIVE4_1; verifier: Buffer; attrs: Fattr4 };

export type OpenClaim4 =
  | { type: typeof CLAIM.NULL; name: string }
  | { type: typeof CLAIM.PREVIOUS; delegateType: number }
  | { type: typeof CLAIM.DELEGATE_CUR; delegateStateid: Stateid4; name: string }
  | { type: typeof CLAIM.DELEGATE_PREV; name: string }
  | { type: typeof CLAIM.FH }
  | { type: typeof CLAIM.DELEG_CUR_FH; delegateStateid: Stateid4 }
  | { type: typeof CLAIM.DELEG_PREV_FH };

export interface OpenArgs {
  seqid: number;
  /** Low bits: OPEN4_SHARE_ACCESS_*; 4.1 want flags above them. */
  shareAccess: number;
  shareDeny: number;
  owner: StateOwner4;
  /** Absent: OPEN4_NOCREATE. */
  create?: CreateHow4;
  claim: OpenClaim4;
}

export type OpenDelegation4 =
  | { type: typeof OPEN_DELEGATE.NONE }
  | { type: typeof OPEN_DELEGATE.NONE_EXT; why: number; serverWillPushOrSignal?: boolean };

export interface OpenResOk {
  stateid: Stateid4;
  cinfo: ChangeInfo4;
  rflags: number;
  attrSet: Bitmap4;
  delegation: OpenDelegation4;
}

export interface OpenConfirmArgs {
  stateid: Stateid4;
  seqid: number;
}
export interface OpenDowngradeArgs {
  stateid: Stateid4;
  seqid: number;
  shareAccess: number;
  shareDeny: number;
}
export interface CloseArgs {
  seqid: number;
  stateid: Stateid4;
}
export interface StateidArgs {
  stateid: Stateid4;
}
export interface StateidRes {
  stateid: Stateid4;
}

function readCreateHow(r: XdrReader): CreateHow4 {
  const at = r.pos;
  const mode = r.u32();
  switch (mode) {
    case CREATEMODE4.UNCHECKED:
      return { mode, attrs: readFattr(r) };
    case CREATEMODE4.GUARDED:
      return { mode, attrs: readFattr(r) };
    case CREATEMODE4.EXCLUSIVE:
      return { mode, verifier: readVerifier(r) };
    case CREATEMODE4.EXCLUSIVE4_1:
      return { mode, verifier: readVerifier(r), attrs: readFattr(r) };
    default:
      throw new XdrError('bad-value', `createmode4 ${mode}`, at);
  }
}

function readClaim(r: XdrReader): OpenClaim4 {
  const at = r.pos;
  const type = r.u32();
  switch (type) {
    case CLAIM.NULL:
      return { type, name: readComponent(r) };
    case CLAIM.PREVIOUS:
      return { type, delegateType: r.u32() };
    case CLAIM.DELEGATE_CUR:
      return { type, delegateStateid: readStateid(r), name: readComponent(r) };
    case CLAIM.DELEGATE_PREV:
      return { type, name: readComponent(r) };
    case CLAIM.FH:
      return { type };
    case CLAIM.DELEG_CUR_FH:
      return { type, delegateStateid: readStateid(r) };
    case CLAIM.DELEG_PREV_FH:
      return { type };
    default:
      throw new XdrError('bad-value', `open_claim_type4 ${type}`, at);
  }
}

function readOpen(r: XdrReader): OpenArgs {
  const seqid = r.u32();
  const shareAccess = r.u32();
  const shareDeny = r.u32();
  const owner = readOwner(r);
  const at = r.pos;
  const opentype = r.u32();
  let create: CreateHow4 | undefined;
  if (opentype === OPENTYPE4.CREATE) create = readCreateHow(r);
  else if (opentype !== OPENTYPE4.NOCREATE) throw new XdrError('bad-value', `opentype4 ${opentype}`, at);
  const claim = readClaim(r);
  return create ? { seqid, shareAccess, shareDeny, owner, create, claim } : { seqid, shareAccess, shareDeny, owner, claim };
}

function writeDelegation(w: XdrWriter, d: OpenDelegation4): void {
  w.u32(d.type);
  if (d.type === OPEN_DELEGATE.NONE_EXT) {
    w.u32(d.why);
    if (d.why === WND4.CONTENTION || d.why === WND4.RESOURCE) w.bool(d.serverWillPushOrSignal ?? false);
  }
}

const writeStateidRes = okArm((w: XdrWriter, res: StateidRes) => writeStateid(w, res.stateid));

export const OPEN: OpCodec<OpenArgs, OpenResOk> = {
  decode: readOpen,
  encode: okArm((w: XdrWriter, res: OpenResOk) => {
    writeStateid(w, res.stateid);
    writeChangeInfo(w, res.cinfo);
    w.u32(res.rflags);
    writeBitmap(w, res.attrSet);
    writeDelegation(w, res.delegation);
  }),
};
export const OPEN_CONFIRM: OpCodec<OpenConfirmArgs, StateidRes> = {
  decode: (r) => ({ stateid: readStateid(r), seqid: r.u32() }),
  encode: writeStateidRes,
};
export const OPEN_DOWNGRADE: OpCodec<OpenDowngradeArgs, StateidRes> = {
  decode: (r) => ({ stateid: readStateid(r), seqid: r.u32(), shareAccess: r.u32(), shareDeny: r.u32() }),
  encode: writeStateidRes,
};
export const CLOSE: OpCodec<CloseArgs, StateidRes> = {
  decode: (r) => ({ seqid: r.u32(), stateid: readStateid(r) }),
  encode: writeStateidRes,
};
export const DELEGRETURN: OpCodec<StateidArgs, null> = {
  decode: (r) => ({ stateid: readStateid(r) }),
  encode: (w, status) => void w.u32(status),
};
