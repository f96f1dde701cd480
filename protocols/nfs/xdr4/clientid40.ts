/**
 * NFSv4.0 client identity: SETCLIENTID, SETCLIENTID_CONFIRM, RENEW (RFC 7530 §16.33, §16.34,
 * §16.29). SETCLIENTID's NFS4ERR_CLID_INUSE arm carries the address the id is in use from.
 */
import { NFS4ERR, NFS4_OPAQUE_LIMIT } from '../nfs4-types.ts';
import {
  readNetAddr,
  readVerifier,
  statusOnly,
  writeNetAddr,
  writeVerifier,
  type NetAddr4,
  type OpCodec,
} from './common.ts';

export interface SetclientidArgs {
  verifier: Buffer;
  id: Buffer;
  callback: { program: number; location: NetAddr4 };
  callbackIdent: number;
}
export interface SetclientidRes {
  clientid?: bigint;
  confirm?: Buffer;
  /** NFS4ERR_CLID_INUSE: where the id is in use (RFC 7530 §16.33.5). */
  inUse?: NetAddr4;
}
export interface SetclientidConfirmArgs {
  clientid: bigint;
  confirm: Buffer;
}
export interface RenewArgs {
  clientid: bigint;
}

export const SETCLIENTID: OpCodec<SetclientidArgs, SetclientidRes> = {
  decode: (r) => ({
    verifier: readVerifier(r),
    id: r.opaque(NFS4_OPAQUE_LIMIT, 'nfs_client_id4 id'),
    callback: { program: r.u32(), location: readNetAddr(r) },
    callbackIdent: r.u32(),
  }),
  encode: (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.OK) {
      if (res?.clientid === undefined || !res.confirm) throw new Error('SETCLIENTID NFS4_OK without clientid/confirm');
      w.u64(res.clientid);
      writeVerifier(w, res.confirm);
    } else if (status === NFS4ERR.CLID_INUSE) {
      writeNetAddr(w, res?.inUse ?? { netid: '', addr: '' });
    }
  },
};
export const SETCLIENTID_CONFIRM: OpCodec<SetclientidConfirmArgs, null> = {
  decode: (r) => ({ clientid: r.u64(), confirm: readVerifier(r) }),
  encode: statusOnly,
};
export const RENEW: OpCodec<RenewArgs, null> = { decode: (r) => ({ clientid: r.u64() }), encode: statusOnly };
