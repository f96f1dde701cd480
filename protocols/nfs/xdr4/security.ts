/**
 * Security negotiation: SECINFO and 4.1's SECINFO_NO_NAME (RFC 8881 §18.29, §18.45). Portico
 * offers AUTH_SYS (and AUTH_NONE); RPCSEC_GSS entries can be encoded for later.
 */
import { SECINFO_STYLE } from '../nfs4-types.ts';
import type { XdrWriter } from '../xdr.ts';
import { okArm, readComponent, type OpCodec } from './common.ts';

export type Secinfo4 = { flavor: number } | { flavor: 6; oid: Buffer; qop: number; service: number };

export interface SecinfoArgs {
  name: string;
}
export interface SecinfoNoNameArgs {
  style: number;
}
export interface SecinfoResOk {
  flavors: Secinfo4[];
}

const writeSecinfo = okArm((w: XdrWriter, res: SecinfoResOk) => {
  w.u32(res.flavors.length);
  for (const f of res.flavors) {
    w.u32(f.flavor);
    if (f.flavor === 6 && 'oid' in f) w.opaque(f.oid).u32(f.qop).u32(f.service);
  }
});

export const SECINFO: OpCodec<SecinfoArgs, SecinfoResOk> = { decode: (r) => ({ name: readComponent(r) }), encode: writeSecinfo };
export const SECINFO_NO_NAME: OpCodec<SecinfoNoNameArgs, SecinfoResOk> = {
  decode: (r) => ({ style: r.enumOf(new Set<number>(Object.values(SECINFO_STYLE)), 'secinfo_style4') }),
  encode: writeSecinfo,
};
