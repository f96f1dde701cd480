/**
 * XDR of the types NFSv4 operations share (RFC 8881 §3, RFC 7530 §2): stateids, handles,
 * components, bitmaps, fattr4, change_info4, owners, times, network addresses, channel attributes.
 *
 * Decoders throw XdrError (the wire does not match the XDR: NFS4ERR_BADXDR for that operation) or
 * Nfs4ArgError (it matches, but a value is refused before any semantics: a name that is not UTF-8
 * is NFS4ERR_INVAL, an over-long one NFS4ERR_NAMETOOLONG — RFC 8881 §14.2).
 */
import { XdrError, type XdrReader, type XdrWriter } from '../xdr.ts';
import { NFS4ERR, NFS4_FHSIZE, NFS4_OPAQUE_LIMIT, NFS4_OTHER_SIZE, NFS4_SESSIONID_SIZE, NFS4_VERIFIER_SIZE } from '../nfs4-types.ts';
import { isUtf8 } from 'node:buffer';

/** An operation's arguments are well-formed XDR but refused with this status. */
export class Nfs4ArgError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'Nfs4ArgError';
    this.status = status;
  }
}

/** Wire bounds on NFSv4 values (each documented in protocols/nfs/README.md). */
export const NFS4_BOUNDS = {
  /** component4 on the wire; names over 255 bytes are refused by the VFS (maxname), this only caps work. */
  maxComponentBytes: 1024,
  /** linktext4 (symlink targets): the VFS path limit. */
  maxLinkBytes: 4096,
  /** bitmap4 words: 64 words is attribute 2047; defined attributes end at 82. */
  maxBitmapWords: 64,
  /** utf8str_mixed owner names, netids, addresses, implementation names. */
  maxStringBytes: NFS4_OPAQUE_LIMIT,
  /** TEST_STATEID's stateid list. */
  maxStateids: 1024,
  /** callback_sec_parms4<>, sec_oid4<>, netloc4<> lists. */
  maxSmallList: 16,
} as const;

export interface Stateid4 {
  seqid: number;
  /** 12 bytes, a subarray of the request (copy it to keep it past the call). */
  other: Buffer;
}

export function readStateid(r: XdrReader): Stateid4 {
  return { seqid: r.u32(), other: r.opaqueFixed(NFS4_OTHER_SIZE) };
}

export function writeStateid(w: XdrWriter, s: Stateid4): void {
  w.u32(s.seqid);
  w.opaqueFixed(fixed(s.other, NFS4_OTHER_SIZE));
}

/** A fixed-size opaque for the wire: exactly `n` bytes (shorter is zero-padded, longer cut). */
function fixed(b: Buffer, n: number): Buffer {
  if (b.length === n) return b;
  const out = Buffer.alloc(n);
  b.copy(out, 0, 0, n);
  return out;
}

export const readVerifier = (r: XdrReader): Buffer => r.opaqueFixed(NFS4_VERIFIER_SIZE);
export const writeVerifier = (w: XdrWriter, v: Buffer): void => void w.opaqueFixed(fixed(v, NFS4_VERIFIER_SIZE));
export const readSessionId = (r: XdrReader): Buffer => r.opaqueFixed(NFS4_SESSIONID_SIZE);
export const writeSessionId = (w: XdrWriter, v: Buffer): void => void w.opaqueFixed(fixed(v, NFS4_SESSIONID_SIZE));

export const readFh = (r: XdrReader): Buffer => r.opaque(NFS4_FHSIZE, 'nfs_fh4');

/** component4 (utf8str_cs): not UTF-8 or empty → NFS4ERR_INVAL, over the bound → NFS4ERR_NAMETOOLONG. */
export function readComponent(r: XdrReader): string {
  const at = r.pos;
  const n = r.u32();
  if (n + ((4 - (n & 3)) & 3) > r.remaining) throw new XdrError('short', `component4 of ${n} bytes, ${r.remaining} left`, at);
  if (n > NFS4_BOUNDS.maxComponentBytes) {
    r.pos += n + ((4 - (n & 3)) & 3);
    throw new Nfs4ArgError(NFS4ERR.NAMETOOLONG, `component of ${n} bytes`);
  }
  r.pos = at;
  const b = r.opaque(NFS4_BOUNDS.maxComponentBytes, 'component4');
  if (b.length === 0) throw new Nfs4ArgError(NFS4ERR.INVAL, 'empty component');
  if (!isUtf8(b)) throw new Nfs4ArgError(NFS4ERR.INVAL, 'component is not UTF-8');
  return b.toString('utf8');
}

/** linktext4: UTF-8 (RFC 8881 §18.4.3 gives NFS4ERR_INVAL for a bad one). */
export function readLinktext(r: XdrReader): string {
  const b = r.opaque(NFS4_BOUNDS.maxLinkBytes, 'linktext4');
  if (!isUtf8(b)) throw new Nfs4ArgError(NFS4ERR.INVAL, 'link text is not UTF-8');
  return b.toString('utf8');
}

/** utf8str_* that only needs bounding (owners, domains): bad UTF-8 is refused as NFS4ERR_INVAL. */
export function readUtf8(r: XdrReader, max: number = NFS4_BOUNDS.maxStringBytes, what = 'utf8str'): string {
  const b = r.opaque(max, what);
  if (!isUtf8(b)) throw new Nfs4ArgError(NFS4ERR.INVAL, `${what} is not UTF-8`);
  return b.toString('utf8');
}

/** XDR `string<>` with no encoding promise (netids, universal addresses): bytes as latin1. */
export const readAscii = (r: XdrReader, max: number = NFS4_BOUNDS.maxStringBytes, what = 'string'): string => r.ascii(max, what);

// ---- bitmap4 -------------------------------------------------------------------------------

/** bitmap4: words, least significant first (bit n of word n/32 is attribute n). */
export type Bitmap4 = number[];

export const readBitmap = (r: XdrReader): Bitmap4 => r.u32Array(NFS4_BOUNDS.maxBitmapWords, 'bitmap4');

/** Writes a bitmap without trailing zero words. */
export function writeBitmap(w: XdrWriter, b: Bitmap4): void {
  let n = b.length;
  while (n > 0 && !b[n - 1]) n--;
  w.u32(n);
  for (let i = 0; i < n; i++) w.u32(b[i] ?? 0);
}

export function bitmapHas(b: Bitmap4, attr: number): boolean {
  return (((b[attr >>> 5] ?? 0) >>> (attr & 31)) & 1) === 1;
}

export function bitmapOf(attrs: Iterable<number>): Bitmap4 {
  const out: Bitmap4 = [];
  for (const a of attrs) {
    const i = a >>> 5;
    while (out.length <= i) out.push(0);
    out[i] = ((out[i] ?? 0) | (1 << (a & 31))) >>> 0;
  }
  return out;
}

/** The attribute numbers set in a bitmap, ascending. */
export function bitmapAttrs(b: Bitmap4): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i++) {
    let word = b[i] ?? 0;
    while (word !== 0) {
      const bit = 31 - Math.clz32(word & -word);
      out.push(i * 32 + bit);
      word = (word & ~(1 << bit)) >>> 0;
    }
  }
  return out;
}

export function bitmapAnd(a: Bitmap4, b: Bitmap4): Bitmap4 {
  const n = Math.min(a.length, b.length);
  const out: Bitmap4 = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = ((a[i] ?? 0) & (b[i] ?? 0)) >>> 0;
  return out;
}

// ---- fattr4 --------------------------------------------------------------------------------

/**
 * fattr4 as received: the mask and the packed values, undecoded (a subarray). VERIFY/NVERIFY
 * compare encodings; SETATTR/OPEN/CREATE decode the values with fattr4.ts's decodeAttrValues.
 */
export interface Fattr4 {
  mask: Bitmap4;
  vals: Buffer;
}

export function readFattr(r: XdrReader): Fattr4 {
  const mask = readBitmap(r);
  // attrlist4 is bounded only by the record: a SETATTR value list is never large.
  const vals = r.opaque(r.remaining, 'attrlist4');
  return { mask, vals };
}

// ---- small structures ----------------------------------------------------------------------

export interface ChangeInfo4 {
  atomic: boolean;
  before: bigint;
  after: bigint;
}

export function writeChangeInfo(w: XdrWriter, c: ChangeInfo4): void {
  w.bool(c.atomic).u64(c.before).u64(c.after);
}

/** open_owner4 / lock_owner4 (state_owner4). */
export interface StateOwner4 {
  clientid: bigint;
  owner: Buffer;
}

export function readOwner(r: XdrReader): StateOwner4 {
  return { clientid: r.u64(), owner: r.opaque(NFS4_OPAQUE_LIMIT, 'state owner') };
}

export function writeOwner(w: XdrWriter, o: StateOwner4): void {
  w.u64(o.clientid).opaque(o.owner);
}

export interface NfsTime4 {
  seconds: bigint;
  nseconds: number;
}

export function readTime(r: XdrReader): NfsTime4 {
  const seconds = r.i64();
  const at = r.pos;
  const nseconds = r.u32();
  // RFC 8881 §3.3.1: nseconds past 999,999,999 is an invalid time (INVAL, not an XDR error).
  if (nseconds > 999_999_999) throw new Nfs4ArgError(NFS4ERR.INVAL, `nseconds ${nseconds} at ${at}`);
  return { seconds, nseconds };
}

export function writeTime(w: XdrWriter, t: NfsTime4): void {
  w.i64(t.seconds).u32(t.nseconds);
}

export interface Specdata4 {
  major: number;
  minor: number;
}

/** netaddr4 / clientaddr4 (RFC 5665 universal address). */
export interface NetAddr4 {
  netid: string;
  addr: string;
}

export function readNetAddr(r: XdrReader): NetAddr4 {
  return { netid: readAscii(r, 128, 'r_netid'), addr: readAscii(r, 256, 'r_addr') };
}

export function writeNetAddr(w: XdrWriter, a: NetAddr4): void {
  w.string(a.netid).string(a.addr);
}

/** nfs_impl_id4 (EXCHANGE_ID). */
export interface ImplId4 {
  domain: string;
  name: string;
  date: NfsTime4;
}

export function readImplId(r: XdrReader): ImplId4 {
  return { domain: readUtf8(r, NFS4_BOUNDS.maxStringBytes, 'nii_domain'), name: readUtf8(r, NFS4_BOUNDS.maxStringBytes, 'nii_name'), date: readTime(r) };
}

export function writeImplId(w: XdrWriter, i: ImplId4): void {
  w.string(i.domain).string(i.name);
  writeTime(w, i.date);
}

/** channel_attrs4 (CREATE_SESSION). */
export interface ChannelAttrs4 {
  headerPadSize: number;
  maxRequestSize: number;
  maxResponseSize: number;
  maxResponseSizeCached: number;
  maxOperations: number;
  maxRequests: number;
  rdmaIrd: number[];
}

export function readChannelAttrs(r: XdrReader): ChannelAttrs4 {
  return {
    headerPadSize: r.u32(),
    maxRequestSize: r.u32(),
    maxResponseSize: r.u32(),
    maxResponseSizeCached: r.u32(),
    maxOperations: r.u32(),
    maxRequests: r.u32(),
    rdmaIrd: r.u32Array(1, 'ca_rdma_ird'),
  };
}

export function writeChannelAttrs(w: XdrWriter, c: ChannelAttrs4): void {
  w.u32(c.headerPadSize).u32(c.maxRequestSize).u32(c.maxResponseSize).u32(c.maxResponseSizeCached).u32(c.maxOperations).u32(c.maxRequests);
  w.u32Array(c.rdmaIrd.slice(0, 1));
}

/** callback_sec_parms4: the flavors the client accepts for callbacks. */
export type CallbackSecParms4 =
  | { flavor: 0 }
  | { flavor: 1; sys: { stamp: number; machineName: string; uid: number; gid: number; gids: number[] } }
  | { flavor: 6; service: number; handleFromServer: Buffer; handleFromClient: Buffer };

export function readCallbackSecParms(r: XdrReader): CallbackSecParms4 {
  const at = r.pos;
  const flavor = r.u32();
  switch (flavor) {
    case 0:
      return { flavor: 0 };
    case 1:
      return {
        flavor: 1,
        sys: { stamp: r.u32(), machineName: r.ascii(255, 'machinename'), uid: r.u32(), gid: r.u32(), gids: r.u32Array(16, 'gids') },
      };
    case 6:
      return { flavor: 6, service: r.u32(), handleFromServer: r.opaque(NFS4_OPAQUE_LIMIT, 'gss handle'), handleFromClient: r.opaque(NFS4_OPAQUE_LIMIT, 'gss handle') };
    default:
      // The union has no default arm: any other flavor is not XDR of this type.
      throw new XdrError('bad-value', `callback_sec_parms4 flavor ${flavor}`, at);
  }
}

export const readCallbackSecList = (r: XdrReader): CallbackSecParms4[] =>
  r.array(NFS4_BOUNDS.maxSmallList, 4, readCallbackSecParms, 'callback_sec_parms4<>');

/** sec_oid4: an opaque object identifier. */
export const readOid = (r: XdrReader): Buffer => r.opaque(NFS4_OPAQUE_LIMIT, 'sec_oid4');

// ---- per-operation codecs ------------------------------------------------------------------

/**
 * One operation's wire codec: its arguments from the request, its result (status and, per the
 * RFC's union, what follows it) into the reply. `R` is what follows NFS4_OK, plus, for the few
 * operations whose error arms carry data (LOCK/LOCKT DENIED, SETCLIENTID CLID_INUSE, SETATTR's
 * attrsset, COPY OFFLOAD_NO_REQS), that data.
 */
export interface OpCodec<A, R> {
  decode(r: XdrReader): A;
  encode(w: XdrWriter, status: number, res: R | undefined): void;
}

/** An operation whose result on success is `writeOk(res)` and on error the status alone. */
export function okArm<R>(writeOk: (w: XdrWriter, res: R) => void): OpCodec<never, R>['encode'] {
  return (w, status, res) => {
    w.u32(status);
    if (status === NFS4ERR.OK) {
      if (res === undefined) throw new Error('NFS4_OK result without its value');
      writeOk(w, res);
    }
  };
}

/** The result is the status alone. */
export const statusOnly = (w: XdrWriter, status: number): void => void w.u32(status);

/** Arguments: none (`void`). */
export const noArgs = (): null => null;
