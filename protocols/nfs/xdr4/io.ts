/**
 * Data operations: READ, WRITE, COMMIT (RFC 8881 §18.22, §18.32, §18.3) and 4.2's SEEK, ALLOCATE,
 * DEALLOCATE and COPY
 * (RFC 7862 §15.11, §15.2).
 *
 * Zero copy: WRITE's data is a subarray of the request record; READ's data is spliced into the
 * reply by reference (XdrWriter.opaque over 1 KiB), so the bytes the VFS read are the bytes the
 * socket's writev sends.
 */
import { DATA_CONTENT, NETLOC, NFS4ERR, STABLE_HOW } from '../nfs4-types.ts';
import { XdrError, type XdrReader, type XdrWriter } from '../xdr.ts';
import {
  NFS4_BOUNDS,
  okArm,
  readNetAddr,
  readStateid,
  readUtf8,
  statusOnly,
  writeStateid,
  writeVerifier,
  type NetAddr4,
  type OpCodec,
  type Stateid4,
} from './common.ts';

const STABLE = new Set<number>(Object.values(STABLE_HOW));

export interface ReadArgs {
  stateid: Stateid4;
  offset: bigint;
  count: number;
}
export interface ReadResOk {
  eof: boolean;
  data: Uint8Array;
}
export interface WriteArgs {
  stateid: Stateid4;
  offset: bigint;
  stable: number;
  /** The payload: a subarray of the request record (valid while the call runs). */
  data: Buffer;
}
export interface WriteResOk {
  count: number;
  committed: number;
  verifier: Buffer;
}
export interface CommitArgs {
  offset: bigint;
  count: number;
}
export interface CommitResOk {
  verifier: Buffer;
}
export interface SeekArgs {
  stateid: Stateid4;
  offset: bigint;
  what: number;
}
export interface SeekResOk {
  eof: boolean;
  offset: bigint;
}
/** ALLOCATE and DEALLOCATE (RFC 7862 §15.1, §15.4): a range of the file the stateid opened. */
export interface AllocateArgs {
  stateid: Stateid4;
  offset: bigint;
  length: bigint;
}
export type Netloc4 = { type: typeof NETLOC.NAME | typeof NETLOC.URL; value: string } | { type: typeof NETLOC.NETADDR; addr: NetAddr4 };
export interface CopyArgs {
  srcStateid: Stateid4;
  dstStateid: Stateid4;
  srcOffset: bigint;
  dstOffset: bigint;
  /** 0: to the end of the source (RFC 7862 §15.2.3). */
  count: bigint;
  consecutive: boolean;
  synchronous: boolean;
  /** Non-empty: an inter-server copy (not supported; answered by the semantics). */
  srcServers: Netloc4[];
}
export interface CopyRequirements4 {
  consecutive: boolean;
  synchronous: boolean;
}
export interface CopyRes {
  /** NFS4_OK: the write_response4; async copies would carry a callback stateid (never used here). */
  response?: { callbackId?: Stateid4; count: bigint; committed: number; verifier: Buffer };
  requirements: CopyRequirements4;
}

function readNetloc(r: XdrReader): Netloc4 {
  const at = r.pos;
  const type = r.u32();
  if (type === NETLOC.NAME || type === NETLOC.URL) return { type, value: readUtf8(r, NFS4_BOUNDS.maxStringBytes, 'netloc4') };
  if (type === NETLOC.NETADDR) return { type, addr: readNetAddr(r) };
  throw new XdrError('bad-value', `netloc_type4 ${type}`, at);
}

export const READ: OpCodec<ReadArgs, ReadResOk> = {
  decode: (r) => ({ stateid: readStateid(r), offset: r.u64(), count: r.u32() }),
  encode: okArm((w: XdrWriter, res: ReadResOk) => void w.bool(res.eof).opaque(res.data)),
};
export const WRITE: OpCodec<WriteArgs, WriteResOk> = {
  decode: (r) => ({
    stateid: readStateid(r),
    offset: r.u64(),
    stable: r.enumOf(STABLE, 'stable_how4'),
    data: r.opaque(r.remaining, 'WRITE data'),
  }),
  encode: okArm((w: XdrWriter, res: WriteResOk) => {
    w.u32(res.count).u32(res.committed);
    writeVerifier(w, res.verifier);
  }),
};
export const COMMIT: OpCodec<CommitArgs, CommitResOk> = {
  decode: (r) => ({ offset: r.u64(), count: r.u32() }),
  encode: okArm((w: XdrWriter, res: CommitResOk) => writeVerifier(w, res.verifier)),
};
export const SEEK: OpCodec<SeekArgs, SeekResOk> = {
  decode: (r) => ({ stateid: readStateid(r), offset: r.u64(), what: r.enumOf(new Set<number>(Object.values(DATA_CONTENT)), 'data_content4') }),
  encode: okArm((w: XdrWriter, res: SeekResOk) => void w.bool(res.eof).u64(res.offset)),
};
export const ALLOCATE: OpCodec<AllocateArgs, null> = {
  decode: (r) => ({ stateid: readStateid(r), offset: r.u64(), length: r.u64() }),
  encode: statusOnly,
};
export const DEALLOCATE: OpCodec<AllocateArgs, null> = {
  decode: (r) => ({ stateid: readStateid(r), offset: r.u64(), length: r.u64() }),
  encode: statusOnly,
};
export const COPY: OpCodec<CopyArgs, CopyRes> = {
  decode: (r) => ({
    srcStateid: readStateid(r),
    dstStateid: readStateid(r),
    srcOffset: r.u64(),
    dstOffset: r.u64(),
    count: r.u64(),
    consecutive: r.bool(),
    synchronous: r.bool(),
    srcServers: r.array(NFS4_BOUNDS.maxSmallList, 8, readNetloc, 'netloc4<>'),
  }),
  encode: (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.OK) {
      const resp = res?.response;
      if (!res || !resp) throw new Error('COPY NFS4_OK without its response');
      if (resp.callbackId) {
        w.u32(1);
        writeStateid(w, resp.callbackId);
      } else {
        w.u32(0);
      }
      w.u64(resp.count).u32(resp.committed);
      writeVerifier(w, resp.verifier);
      w.bool(res.requirements.consecutive).bool(res.requirements.synchronous);
    } else if (status === NFS4ERR.OFFLOAD_NO_REQS) {
      w.bool(res?.requirements.consecutive ?? false).bool(res?.requirements.synchronous ?? true);
    }
  },
};
