/**
 * COMPOUND (RFC 8881 §16.2, RFC 7530 §15.2): the argument decoder, a generic executor and the
 * result encoder. Operations' arguments and results are the per-operation codecs in `xdr4/`.
 *
 * Decoding is total and stops where the RFC says processing stops:
 * - header cut short (tag, minorversion, numops unreadable): GARBAGE_ARGS for the whole call;
 * - minorversion not 0, 1 or 2: NFS4ERR_MINOR_VERS_MISMATCH, empty resarray (RFC 8881 §16.2.3);
 * - tag over `maxTagBytes`, or more than `maxOps` operations: NFS4ERR_RESOURCE in 4.0,
 *   NFS4ERR_REQ_TOO_BIG / NFS4ERR_TOO_MANY_OPS in 4.1+, empty resarray, nothing executed;
 * - operations are decoded in order; the first one that cannot be is the stop point: an unknown
 *   number (or one of a later minor version) is OP_ILLEGAL (resop OP_ILLEGAL, RFC 8881 §15.2),
 *   a defined one Portico has no codec for (pNFS, delegation extras) or one a 4.1+ client must
 *   not send (OPEN_CONFIRM, SETCLIENTID…, §2.10.6.4 / §18.x "MUST NOT be used") NFS4ERR_NOTSUPP,
 *   arguments that are not the operation's XDR NFS4ERR_BADXDR, well-formed but refused ones
 *   (a name that is not UTF-8…) their status. The operations before it are executed; the stop
 *   point becomes the last result if they all succeed.
 * The decoded operations never hold more than the record's own bytes: opaque values are
 * subarrays, counts are checked against the bytes left.
 */
import {
  MAX_OP_FOR_MINOR,
  NFS4ERR,
  NFS4_MINOR_VERSIONS,
  OP,
} from './nfs4-types.ts';
import { XdrError, XdrReader, type XdrWriter } from './xdr.ts';
import { Nfs4ArgError, type OpCodec } from './xdr4/common.ts';
import * as fh from './xdr4/filehandle.ts';
import * as attr from './xdr4/attributes.ts';
import * as open from './xdr4/open.ts';
import * as io from './xdr4/io.ts';
import * as ns from './xdr4/namespace.ts';
import * as locks from './xdr4/locks.ts';
import * as sec from './xdr4/security.ts';
import * as c40 from './xdr4/clientid40.ts';
import * as s41 from './xdr4/session41.ts';
import * as xattr from './xdr4/xattr.ts';

export const COMPOUND_DEFAULTS = {
  /** The tag is only echoed; Linux sends none, other clients a short name. */
  maxTagBytes: 1024,
  /** Linux's nfsd allows 50 in 4.0 (NFSD_MAX_OPS_PER_COMPOUND); clients send fewer than 10. 4.1 narrows it per session. */
  maxOps: 100,
} as const;

/** The operations Portico decodes, by number. */
export const CODECS = {
  [OP.ACCESS]: attr.ACCESS,
  [OP.CLOSE]: open.CLOSE,
  [OP.COMMIT]: io.COMMIT,
  [OP.CREATE]: ns.CREATE,
  [OP.DELEGRETURN]: open.DELEGRETURN,
  [OP.GETATTR]: attr.GETATTR,
  [OP.GETFH]: fh.GETFH,
  [OP.LINK]: ns.LINK,
  [OP.LOCK]: locks.LOCK,
  [OP.LOCKT]: locks.LOCKT,
  [OP.LOCKU]: locks.LOCKU,
  [OP.LOOKUP]: fh.LOOKUP,
  [OP.LOOKUPP]: fh.LOOKUPP,
  [OP.NVERIFY]: attr.NVERIFY,
  [OP.OPEN]: open.OPEN,
  [OP.OPEN_CONFIRM]: open.OPEN_CONFIRM,
  [OP.OPEN_DOWNGRADE]: open.OPEN_DOWNGRADE,
  [OP.PUTFH]: fh.PUTFH,
  [OP.PUTPUBFH]: fh.PUTPUBFH,
  [OP.PUTROOTFH]: fh.PUTROOTFH,
  [OP.READ]: io.READ,
  [OP.READDIR]: ns.READDIR,
  [OP.READLINK]: ns.READLINK,
  [OP.REMOVE]: ns.REMOVE,
  [OP.RENAME]: ns.RENAME,
  [OP.RENEW]: c40.RENEW,
  [OP.RESTOREFH]: fh.RESTOREFH,
  [OP.SAVEFH]: fh.SAVEFH,
  [OP.SECINFO]: sec.SECINFO,
  [OP.SETATTR]: attr.SETATTR,
  [OP.SETCLIENTID]: c40.SETCLIENTID,
  [OP.SETCLIENTID_CONFIRM]: c40.SETCLIENTID_CONFIRM,
  [OP.VERIFY]: attr.VERIFY,
  [OP.WRITE]: io.WRITE,
  [OP.RELEASE_LOCKOWNER]: locks.RELEASE_LOCKOWNER,
  [OP.BACKCHANNEL_CTL]: s41.BACKCHANNEL_CTL,
  [OP.BIND_CONN_TO_SESSION]: s41.BIND_CONN_TO_SESSION,
  [OP.EXCHANGE_ID]: s41.EXCHANGE_ID,
  [OP.CREATE_SESSION]: s41.CREATE_SESSION,
  [OP.DESTROY_SESSION]: s41.DESTROY_SESSION,
  [OP.FREE_STATEID]: s41.FREE_STATEID,
  [OP.SECINFO_NO_NAME]: sec.SECINFO_NO_NAME,
  [OP.SEQUENCE]: s41.SEQUENCE,
  [OP.TEST_STATEID]: s41.TEST_STATEID,
  [OP.DESTROY_CLIENTID]: s41.DESTROY_CLIENTID,
  [OP.RECLAIM_COMPLETE]: s41.RECLAIM_COMPLETE,
  [OP.COPY]: io.COPY,
  [OP.SEEK]: io.SEEK,
  [OP.ALLOCATE]: io.ALLOCATE,
  [OP.DEALLOCATE]: io.DEALLOCATE,
  [OP.GETXATTR]: xattr.GETXATTR,
  [OP.SETXATTR]: xattr.SETXATTR,
  [OP.LISTXATTRS]: xattr.LISTXATTRS,
  [OP.REMOVEXATTR]: xattr.REMOVEXATTR,
} as const;

type Codecs = typeof CODECS;
export type OpNum = keyof Codecs;
type ArgsOf<C> = C extends { decode(r: XdrReader): infer A } ? A : never;
type ResOf<C> = C extends OpCodec<infer _A, infer R> ? R : never;

/** A decoded operation: its number and typed arguments. */
export type DecodedOp = { [K in OpNum]: { op: K; args: ArgsOf<Codecs[K]> } }[OpNum];
/** An operation's result: its number, status and (per its codec) what follows the status. */
export type OpResult =
  | { [K in OpNum]: { op: K; status: number; res?: ResOf<Codecs[K]> } }[OpNum]
  | { op: number; status: number; res?: undefined };

/** 4.0-only operations a 4.1+ client must not send (RFC 8881 §18.x: answered NFS4ERR_NOTSUPP). */
const NOT_IN_41 = new Set<number>([OP.OPEN_CONFIRM, OP.SETCLIENTID, OP.SETCLIENTID_CONFIRM, OP.RENEW, OP.RELEASE_LOCKOWNER]);
const MINORS = new Set<number>(NFS4_MINOR_VERSIONS);

export interface CompoundArgs {
  tag: Buffer;
  minorversion: number;
  ops: DecodedOp[];
  /** Where decoding stopped: the result to give after `ops` if they all succeed. */
  stop?: { op: number; status: number; reason: string };
}

export type CompoundDecode =
  | { kind: 'ok'; args: CompoundArgs }
  /** Answer at once with this status and an empty resarray (nothing executed). */
  | { kind: 'refuse'; tag: Buffer; minorversion: number; status: number; reason: string }
  /** Not even a COMPOUND header: RPC GARBAGE_ARGS. */
  | { kind: 'garbage'; reason: string };

export interface CompoundOptions {
  maxTagBytes?: number;
  maxOps?: number;
}

const EMPTY = Buffer.alloc(0);

export function decodeCompound(args: Buffer, opts: CompoundOptions = {}): CompoundDecode {
  const maxTag = opts.maxTagBytes ?? COMPOUND_DEFAULTS.maxTagBytes;
  const maxOps = opts.maxOps ?? COMPOUND_DEFAULTS.maxOps;
  const r = new XdrReader(args);
  let tag: Buffer;
  let minorversion: number;
  let numops: number;
  try {
    const at = r.pos;
    const tagLen = r.u32();
    if (tagLen > maxTag) {
      const padded = tagLen + ((4 - (tagLen & 3)) & 3);
      if (padded + 4 > r.remaining) return { kind: 'garbage', reason: `tag of ${tagLen} bytes in ${r.remaining}` };
      r.pos += padded;
      const mv = r.u32();
      return { kind: 'refuse', tag: EMPTY, minorversion: mv, status: mv === 0 ? NFS4ERR.RESOURCE : NFS4ERR.REQ_TOO_BIG, reason: `tag of ${tagLen} bytes` };
    }
    r.pos = at;
    tag = r.opaque(maxTag, 'tag');
    minorversion = r.u32();
    if (!MINORS.has(minorversion)) return { kind: 'refuse', tag, minorversion, status: NFS4ERR.MINOR_VERS_MISMATCH, reason: `minor version ${minorversion}` };
    numops = r.u32();
  } catch (e) {
    if (e instanceof XdrError) return { kind: 'garbage', reason: e.message };
    throw e;
  }
  if (numops > maxOps) {
    return {
      kind: 'refuse',
      tag,
      minorversion,
      status: minorversion === 0 ? NFS4ERR.RESOURCE : NFS4ERR.TOO_MANY_OPS,
      reason: `${numops} operations (limit ${maxOps})`,
    };
  }
  const maxOp = MAX_OP_FOR_MINOR[minorversion] ?? 0;
  const ops: DecodedOp[] = [];
  for (let i = 0; i < numops; i++) {
    if (r.remaining < 4) return { kind: 'ok', args: { tag, minorversion, ops, stop: { op: OP.ILLEGAL, status: NFS4ERR.BADXDR, reason: `operation ${i} missing` } } };
    const op = r.u32();
    if (op < OP.ACCESS || op > maxOp) {
      return { kind: 'ok', args: { tag, minorversion, ops, stop: { op: OP.ILLEGAL, status: NFS4ERR.OP_ILLEGAL, reason: `operation number ${op}` } } };
    }
    const codec = (CODECS as Record<number, OpCodec<unknown, unknown> | undefined>)[op];
    if (!codec || (minorversion > 0 && NOT_IN_41.has(op))) {
      return { kind: 'ok', args: { tag, minorversion, ops, stop: { op, status: NFS4ERR.NOTSUPP, reason: `operation ${op} not supported` } } };
    }
    try {
      ops.push({ op, args: codec.decode(r) } as DecodedOp);
    } catch (e) {
      if (e instanceof XdrError) return { kind: 'ok', args: { tag, minorversion, ops, stop: { op, status: NFS4ERR.BADXDR, reason: e.message } } };
      if (e instanceof Nfs4ArgError) return { kind: 'ok', args: { tag, minorversion, ops, stop: { op, status: e.status, reason: e.message } } };
      throw e;
    }
  }
  // Bytes after the last operation are ignored, as Linux's nfsd and ganesha do.
  return { kind: 'ok', args: { tag, minorversion, ops } };
}

export interface CompoundRes {
  status: number;
  tag: Buffer;
  results: OpResult[];
}

/**
 * Runs decoded operations in order until one fails (RFC 8881 §16.2.3): the COMPOUND status is
 * the last result's; a decode stop point is appended when everything before it succeeded.
 */
export async function runCompound(
  args: CompoundArgs,
  exec: (op: DecodedOp, index: number) => OpResult | Promise<OpResult>,
): Promise<CompoundRes> {
  const results: OpResult[] = [];
  for (let i = 0; i < args.ops.length; i++) {
    // Only an operation that waits for something is awaited (each await is a turn of the microtask queue).
    const r = exec(args.ops[i] as DecodedOp, i);
    const res = r instanceof Promise ? await r : r;
    results.push(res);
    if (res.status !== NFS4ERR.OK) return { status: res.status, tag: args.tag, results };
  }
  if (args.stop) {
    results.push({ op: args.stop.op, status: args.stop.status });
    return { status: args.stop.status, tag: args.tag, results };
  }
  return { status: NFS4ERR.OK, tag: args.tag, results };
}

/** COMPOUND4res: status, the tag echoed, then each result as its opcode and its codec's union. */
export function encodeCompoundRes(w: XdrWriter, res: CompoundRes): void {
  w.u32(res.status).opaque(res.tag).u32(res.results.length);
  for (const r of res.results) {
    const codec = (CODECS as Record<number, OpCodec<unknown, unknown> | undefined>)[r.op];
    if (r.op === OP.ILLEGAL || !codec) {
      // ILLEGAL4res, and operations with no codec (only ever answered with an error): the status alone.
      w.u32(r.op).u32(r.status);
      continue;
    }
    w.u32(r.op);
    codec.encode(w, r.status, r.res);
  }
}

/** COMPOUND4args (clients and tests): `ops` are written by the caller after the header. */
export function encodeCompoundHeader(w: XdrWriter, tag: Buffer | string, minorversion: number, numops: number): void {
  w.opaque(typeof tag === 'string' ? Buffer.from(tag, 'utf8') : tag).u32(minorversion).u32(numops);
}
