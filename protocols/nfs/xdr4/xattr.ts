/**
 * Extended attributes (RFC 8276 §8.4): GETXATTR, SETXATTR, LISTXATTRS, REMOVEXATTR. Keys are
 * component4 (UTF-8, the "user." namespace is implied); values opaque, bounded by the record.
 */
import { SETXATTR4 } from '../nfs4-types.ts';
import type { XdrWriter } from '../xdr.ts';
import { okArm, readComponent, writeChangeInfo, type ChangeInfo4, type OpCodec } from './common.ts';

export interface XattrNameArgs {
  name: string;
}
export interface GetxattrResOk {
  value: Uint8Array;
}
export interface SetxattrArgs {
  option: number;
  name: string;
  /** A subarray of the request. */
  value: Buffer;
}
export interface XattrCinfoResOk {
  cinfo: ChangeInfo4;
}
export interface ListxattrsArgs {
  cookie: bigint;
  maxcount: number;
}
export interface ListxattrsResOk {
  cookie: bigint;
  names: string[];
  eof: boolean;
}

const writeCinfo = okArm((w: XdrWriter, res: XattrCinfoResOk) => writeChangeInfo(w, res.cinfo));

export const GETXATTR: OpCodec<XattrNameArgs, GetxattrResOk> = {
  decode: (r) => ({ name: readComponent(r) }),
  encode: okArm((w: XdrWriter, res: GetxattrResOk) => void w.opaque(res.value)),
};
export const SETXATTR: OpCodec<SetxattrArgs, XattrCinfoResOk> = {
  decode: (r) => ({
    option: r.enumOf(new Set<number>(Object.values(SETXATTR4)), 'setxattr_option4'),
    name: readComponent(r),
    value: r.opaque(r.remaining, 'xattrvalue4'),
  }),
  encode: writeCinfo,
};
export const LISTXATTRS: OpCodec<ListxattrsArgs, ListxattrsResOk> = {
  decode: (r) => ({ cookie: r.u64(), maxcount: r.u32() }),
  encode: okArm((w: XdrWriter, res: ListxattrsResOk) => {
    w.u64(res.cookie).u32(res.names.length);
    for (const n of res.names) w.string(n);
    w.bool(res.eof);
  }),
};
export const REMOVEXATTR: OpCodec<XattrNameArgs, XattrCinfoResOk> = { decode: (r) => ({ name: readComponent(r) }), encode: writeCinfo };
