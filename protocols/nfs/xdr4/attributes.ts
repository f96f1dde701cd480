/**
 * Attribute operations: GETATTR, SETATTR, VERIFY, NVERIFY, ACCESS (RFC 8881 §18.7, §18.30,
 * §18.31, §18.15, §18.1). Values inside fattr4 are packed/unpacked by ../fattr4.ts.
 */
import type { XdrWriter } from '../xdr.ts';
import { okArm, readBitmap, readFattr, readStateid, statusOnly, writeBitmap, type Bitmap4, type Fattr4, type OpCodec, type Stateid4 } from './common.ts';

export interface GetattrArgs {
  request: Bitmap4;
}
/**
 * The reply's fattr4, written by the caller (fattr4.ts's encodeFattr) straight into the reply:
 * no intermediate buffer for READDIR-sized attribute lists.
 */
export interface GetattrResOk {
  writeAttrs: (w: XdrWriter) => void;
}
export interface SetattrArgs {
  stateid: Stateid4;
  attrs: Fattr4;
}
/** SETATTR4res carries attrsset whatever the status (RFC 8881 §18.30.2). */
export interface SetattrRes {
  attrsSet: Bitmap4;
}
export interface VerifyArgs {
  attrs: Fattr4;
}
export interface AccessArgs {
  access: number;
}
export interface AccessResOk {
  supported: number;
  access: number;
}

export const GETATTR: OpCodec<GetattrArgs, GetattrResOk> = {
  decode: (r) => ({ request: readBitmap(r) }),
  encode: okArm((w: XdrWriter, res: GetattrResOk) => res.writeAttrs(w)),
};
export const SETATTR: OpCodec<SetattrArgs, SetattrRes> = {
  decode: (r) => ({ stateid: readStateid(r), attrs: readFattr(r) }),
  encode: (w, status, res) => {
    w.u32(status);
    writeBitmap(w, res?.attrsSet ?? []);
  },
};
export const VERIFY: OpCodec<VerifyArgs, null> = { decode: (r) => ({ attrs: readFattr(r) }), encode: statusOnly };
export const NVERIFY: OpCodec<VerifyArgs, null> = { decode: (r) => ({ attrs: readFattr(r) }), encode: statusOnly };
export const ACCESS: OpCodec<AccessArgs, AccessResOk> = {
  decode: (r) => ({ access: r.u32() }),
  encode: okArm((w: XdrWriter, res: AccessResOk) => void w.u32(res.supported).u32(res.access)),
};

