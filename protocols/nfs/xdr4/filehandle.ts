/**
 * Current/saved filehandle and name resolution operations: PUTFH, PUTPUBFH, PUTROOTFH, GETFH,
 * SAVEFH, RESTOREFH, LOOKUP, LOOKUPP (RFC 8881 §18.19–18.22, §18.8, §18.13–18.14, §18.27, §18.31).
 */
import type { XdrWriter } from '../xdr.ts';
import { noArgs, okArm, readComponent, readFh, statusOnly, type OpCodec } from './common.ts';

export interface PutfhArgs {
  /** The handle bytes (≤ 128), a subarray of the request. */
  fh: Buffer;
}
export interface LookupArgs {
  name: string;
}
export interface GetfhResOk {
  fh: Buffer;
}

export const PUTFH: OpCodec<PutfhArgs, null> = { decode: (r) => ({ fh: readFh(r) }), encode: statusOnly };
export const PUTPUBFH: OpCodec<null, null> = { decode: noArgs, encode: statusOnly };
export const PUTROOTFH: OpCodec<null, null> = { decode: noArgs, encode: statusOnly };
export const GETFH: OpCodec<null, GetfhResOk> = {
  decode: noArgs,
  encode: okArm((w: XdrWriter, res: GetfhResOk) => void w.opaque(res.fh)),
};
export const SAVEFH: OpCodec<null, null> = { decode: noArgs, encode: statusOnly };
export const RESTOREFH: OpCodec<null, null> = { decode: noArgs, encode: statusOnly };
export const LOOKUP: OpCodec<LookupArgs, null> = { decode: (r) => ({ name: readComponent(r) }), encode: statusOnly };
export const LOOKUPP: OpCodec<null, null> = { decode: noArgs, encode: statusOnly };
