/**
 * fattr4 packing (RFC 8881 §5): a bitmap4 of the attributes present and their values packed in
 * attribute-number order (attrlist4). The table below gives each attribute Portico knows its
 * number, its XDR and whether a client may set it; GETATTR/READDIR encode from plain values,
 * SETATTR/OPEN/CREATE/VERIFY decode into them.
 *
 * Semantics (which attributes a share supports, their values) are not here: the caller passes
 * the values it has, and only requested attributes with a value are written, so "supported" is
 * whatever the caller fills in.
 */
import { FATTR4, NFS4ERR } from './nfs4-types.ts';
import { XdrError, XdrReader, XdrWriter } from './xdr.ts';
import {
  Nfs4ArgError,
  bitmapAttrs,
  bitmapHas,
  bitmapOf,
  readBitmap,
  readFh,
  readTime,
  readUtf8,
  writeBitmap,
  writeTime,
  type Bitmap4,
  type Fattr4,
  type NfsTime4,
  type Specdata4,
} from './xdr4/common.ts';

/** settime4: the server's clock or the client's time. */
export type SetTime4 = { how: 0 } | { how: 1; time: NfsTime4 };

export interface Fsid4 {
  major: bigint;
  minor: bigint;
}

/** Attribute values by name; each optional (present = supported and known for this object). */
export interface AttrValues {
  supportedAttrs?: Bitmap4;
  type?: number;
  fhExpireType?: number;
  change?: bigint;
  size?: bigint;
  linkSupport?: boolean;
  symlinkSupport?: boolean;
  namedAttr?: boolean;
  fsid?: Fsid4;
  uniqueHandles?: boolean;
  leaseTime?: number;
  rdattrError?: number;
  aclSupport?: number;
  archive?: boolean;
  cansettime?: boolean;
  caseInsensitive?: boolean;
  casePreserving?: boolean;
  chownRestricted?: boolean;
  filehandle?: Buffer;
  fileid?: bigint;
  filesAvail?: bigint;
  filesFree?: bigint;
  filesTotal?: bigint;
  hidden?: boolean;
  homogeneous?: boolean;
  maxfilesize?: bigint;
  maxlink?: number;
  maxname?: number;
  maxread?: bigint;
  maxwrite?: bigint;
  mode?: number;
  noTrunc?: boolean;
  numlinks?: number;
  owner?: string;
  ownerGroup?: string;
  rawdev?: Specdata4;
  spaceAvail?: bigint;
  spaceFree?: bigint;
  spaceTotal?: bigint;
  spaceUsed?: bigint;
  system?: boolean;
  timeAccess?: NfsTime4;
  timeAccessSet?: SetTime4;
  timeBackup?: NfsTime4;
  timeCreate?: NfsTime4;
  timeDelta?: NfsTime4;
  timeMetadata?: NfsTime4;
  timeModify?: NfsTime4;
  timeModifySet?: SetTime4;
  mountedOnFileid?: bigint;
  modeSetMasked?: { mode: number; mask: number };
  suppattrExclcreat?: Bitmap4;
  xattrSupport?: boolean;
}

type Key = keyof AttrValues;

interface AttrDef<K extends Key = Key> {
  num: number;
  key: K;
  /** Clients may set it (SETATTR, OPEN/CREATE createattrs); others in a SETATTR are NFS4ERR_INVAL. */
  settable: boolean;
  write(w: XdrWriter, v: NonNullable<AttrValues[K]>): void;
  read(r: XdrReader): NonNullable<AttrValues[K]>;
}

/** Owner names: utf8str_mixed; numeric ids or user@domain, never long. */
const MAX_OWNER_BYTES = 1024;

const u32 = { write: (w: XdrWriter, v: number) => void w.u32(v), read: (r: XdrReader) => r.u32() };
const u64 = { write: (w: XdrWriter, v: bigint) => void w.u64(v), read: (r: XdrReader) => r.u64() };
const bool = { write: (w: XdrWriter, v: boolean) => void w.bool(v), read: (r: XdrReader) => r.bool() };
const time = { write: writeTime, read: readTime };
const bitmap = { write: writeBitmap, read: readBitmap };
const owner = { write: (w: XdrWriter, v: string) => void w.string(v), read: (r: XdrReader) => readUtf8(r, MAX_OWNER_BYTES, 'owner') };
const settime = {
  write: (w: XdrWriter, v: SetTime4) => {
    w.u32(v.how);
    if (v.how === 1) writeTime(w, v.time);
  },
  read: (r: XdrReader): SetTime4 => {
    const at = r.pos;
    const how = r.u32();
    if (how === 0) return { how: 0 };
    if (how === 1) return { how: 1, time: readTime(r) };
    throw new XdrError('bad-value', `time_how4 ${how}`, at);
  },
};

function def<K extends Key>(num: number, key: K, settable: boolean, c: { write(w: XdrWriter, v: NonNullable<AttrValues[K]>): void; read(r: XdrReader): NonNullable<AttrValues[K]> }): AttrDef<K> {
  return { num, key, settable, write: c.write, read: c.read };
}

const DEFS: AttrDef[] = [
  def(FATTR4.SUPPORTED_ATTRS, 'supportedAttrs', false, bitmap),
  def(FATTR4.TYPE, 'type', false, u32),
  def(FATTR4.FH_EXPIRE_TYPE, 'fhExpireType', false, u32),
  def(FATTR4.CHANGE, 'change', false, u64),
  def(FATTR4.SIZE, 'size', true, u64),
  def(FATTR4.LINK_SUPPORT, 'linkSupport', false, bool),
  def(FATTR4.SYMLINK_SUPPORT, 'symlinkSupport', false, bool),
  def(FATTR4.NAMED_ATTR, 'namedAttr', false, bool),
  def(FATTR4.FSID, 'fsid', false, {
    write: (w: XdrWriter, v: Fsid4) => void w.u64(v.major).u64(v.minor),
    read: (r: XdrReader) => ({ major: r.u64(), minor: r.u64() }),
  }),
  def(FATTR4.UNIQUE_HANDLES, 'uniqueHandles', false, bool),
  def(FATTR4.LEASE_TIME, 'leaseTime', false, u32),
  def(FATTR4.RDATTR_ERROR, 'rdattrError', false, u32),
  def(FATTR4.ACLSUPPORT, 'aclSupport', false, u32),
  def(FATTR4.ARCHIVE, 'archive', true, bool),
  def(FATTR4.CANSETTIME, 'cansettime', false, bool),
  def(FATTR4.CASE_INSENSITIVE, 'caseInsensitive', false, bool),
  def(FATTR4.CASE_PRESERVING, 'casePreserving', false, bool),
  def(FATTR4.CHOWN_RESTRICTED, 'chownRestricted', false, bool),
  def(FATTR4.FILEHANDLE, 'filehandle', false, { write: (w: XdrWriter, v: Buffer) => void w.opaque(v), read: readFh }),
  def(FATTR4.FILEID, 'fileid', false, u64),
  def(FATTR4.FILES_AVAIL, 'filesAvail', false, u64),
  def(FATTR4.FILES_FREE, 'filesFree', false, u64),
  def(FATTR4.FILES_TOTAL, 'filesTotal', false, u64),
  def(FATTR4.HIDDEN, 'hidden', true, bool),
  def(FATTR4.HOMOGENEOUS, 'homogeneous', false, bool),
  def(FATTR4.MAXFILESIZE, 'maxfilesize', false, u64),
  def(FATTR4.MAXLINK, 'maxlink', false, u32),
  def(FATTR4.MAXNAME, 'maxname', false, u32),
  def(FATTR4.MAXREAD, 'maxread', false, u64),
  def(FATTR4.MAXWRITE, 'maxwrite', false, u64),
  def(FATTR4.MODE, 'mode', true, u32),
  def(FATTR4.NO_TRUNC, 'noTrunc', false, bool),
  def(FATTR4.NUMLINKS, 'numlinks', false, u32),
  def(FATTR4.OWNER, 'owner', true, owner),
  def(FATTR4.OWNER_GROUP, 'ownerGroup', true, owner),
  def(FATTR4.RAWDEV, 'rawdev', false, {
    write: (w: XdrWriter, v: Specdata4) => void w.u32(v.major).u32(v.minor),
    read: (r: XdrReader) => ({ major: r.u32(), minor: r.u32() }),
  }),
  def(FATTR4.SPACE_AVAIL, 'spaceAvail', false, u64),
  def(FATTR4.SPACE_FREE, 'spaceFree', false, u64),
  def(FATTR4.SPACE_TOTAL, 'spaceTotal', false, u64),
  def(FATTR4.SPACE_USED, 'spaceUsed', false, u64),
  def(FATTR4.SYSTEM, 'system', true, bool),
  def(FATTR4.TIME_ACCESS, 'timeAccess', false, time),
  def(FATTR4.TIME_ACCESS_SET, 'timeAccessSet', true, settime),
  def(FATTR4.TIME_BACKUP, 'timeBackup', true, time),
  def(FATTR4.TIME_CREATE, 'timeCreate', true, time),
  def(FATTR4.TIME_DELTA, 'timeDelta', false, time),
  def(FATTR4.TIME_METADATA, 'timeMetadata', false, time),
  def(FATTR4.TIME_MODIFY, 'timeModify', false, time),
  def(FATTR4.TIME_MODIFY_SET, 'timeModifySet', true, settime),
  def(FATTR4.MOUNTED_ON_FILEID, 'mountedOnFileid', false, u64),
  def(FATTR4.MODE_SET_MASKED, 'modeSetMasked', true, {
    write: (w: XdrWriter, v: { mode: number; mask: number }) => void w.u32(v.mode).u32(v.mask),
    read: (r: XdrReader) => ({ mode: r.u32(), mask: r.u32() }),
  }),
  def(FATTR4.SUPPATTR_EXCLCREAT, 'suppattrExclcreat', false, bitmap),
  def(FATTR4.XATTR_SUPPORT, 'xattrSupport', false, bool),
] as AttrDef[];

/** By attribute number (sparse), for decoding. */
const BY_NUM: (AttrDef | undefined)[] = [];
for (const d of DEFS) BY_NUM[d.num] = d;

/** Every attribute number this codec can pack: the ceiling of any supported_attrs. */
export const CODEC_ATTRS: Bitmap4 = bitmapOf(DEFS.map((d) => d.num));
/** Attributes a client may set. */
export const SETTABLE_ATTRS: Bitmap4 = bitmapOf(DEFS.filter((d) => d.settable).map((d) => d.num));

/**
 * Writes fattr4: the bitmap of requested attributes that have a value, then their values in
 * number order, into `w` directly (the attrlist4 length is patched afterwards: no copy).
 * Returns the bitmap written.
 */
export function encodeFattr(w: XdrWriter, request: Bitmap4, values: AttrValues): Bitmap4 {
  const plan = planOf(request);
  let defs = plan.defs;
  let mask = plan.mask;
  // Every requested attribute has a value (the usual case): the plan's bitmap, no per-call arrays.
  for (let i = 0; i < defs.length; i++) {
    if (values[defs[i]!.key] === undefined) {
      defs = defs.filter((d) => values[d.key] !== undefined);
      mask = bitmapOf(defs.map((d) => d.num));
      break;
    }
  }
  writeBitmap(w, mask);
  const len = w.reserveU32();
  const start = w.length;
  for (let i = 0; i < defs.length; i++) {
    const d = defs[i]!;
    d.write(w, values[d.key] as never);
  }
  w.patchU32(len, w.length - start);
  return mask;
}

/**
 * A request's supported attributes in number order and their bitmap, worked out once per request
 * bitmap's words (READDIR encodes one fattr4 per entry with the same request; GETATTRs decode a new
 * bitmap array per call, mostly with the same words). Kept by content, not by the array: a
 * WeakMap keyed by each call's array made a new plan and an ephemeron per GETATTR (encoding the
 * Linux revalidation set took ~5 µs of CPU that way, ~1.6 µs with the plan found by content). The
 * last few plans are kept (a client asks a handful of attribute sets), the most recent first.
 */
interface Plan {
  req: Bitmap4;
  defs: AttrDef[];
  mask: Bitmap4;
}
const PLANS_KEPT = 16;
const plans: Plan[] = [];

/** Same words (trailing zero words ignored). */
export function sameBitmap(a: Bitmap4, b: Bitmap4): boolean {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return false;
  return true;
}

function planOf(request: Bitmap4): Plan {
  for (let i = 0; i < plans.length; i++) {
    const p = plans[i]!;
    if (sameBitmap(p.req, request)) {
      if (i > 0) {
        plans.splice(i, 1);
        plans.unshift(p);
      }
      return p;
    }
  }
  const defs = bitmapAttrs(request).flatMap((n) => BY_NUM[n] ?? []);
  const plan = { req: [...request], defs, mask: bitmapOf(defs.map((d) => d.num)) };
  plans.unshift(plan);
  if (plans.length > PLANS_KEPT) plans.pop();
  return plan;
}

/** The attributes of `request` this codec knows, ascending (for encoders built per request). */
export function knownAttrs(request: Bitmap4): number[] {
  return planOf(request).defs.map((d) => d.num);
}

/** Whether `values` has attribute `num` (known to the codec, value present). */
export function hasAttrValue(num: number, values: AttrValues): boolean {
  const d = BY_NUM[num];
  return d !== undefined && values[d.key] !== undefined;
}

/** Writes attribute `num`'s value from `values` (its XDR alone, as in attrlist4); false when absent. */
export function writeAttrValue(w: XdrWriter, num: number, values: AttrValues): boolean {
  const d = BY_NUM[num];
  if (d === undefined || values[d.key] === undefined) return false;
  d.write(w, values[d.key] as never);
  return true;
}

/** fattr4 as one Buffer (READDIR entries, whose sizes must be known before packing). */
export function fattrToBuffer(request: Bitmap4, values: AttrValues): Buffer {
  const w = new XdrWriter(256);
  encodeFattr(w, request, values);
  return w.toBuffer();
}

/** Just the attrlist4 bytes for `mask` (VERIFY/NVERIFY compare these with the client's). */
export function attrListBytes(mask: Bitmap4, values: AttrValues): Buffer | undefined {
  const w = new XdrWriter(256);
  for (const n of bitmapAttrs(mask)) {
    const d = BY_NUM[n];
    if (!d || values[d.key] === undefined) return undefined;
    d.write(w, values[d.key] as never);
  }
  return w.toBuffer();
}

export type DecodedAttrs = { ok: true; values: AttrValues; attrs: number[] } | { ok: false; status: number; reason: string };

/**
 * Decodes a client's fattr4. `settable`: SETATTR and createattrs, where a read-only attribute is
 * NFS4ERR_INVAL (RFC 8881 §18.30.4); otherwise (VERIFY) any known attribute is accepted. An
 * attribute this codec does not know is NFS4ERR_ATTRNOTSUPP (its XDR is unknown, so nothing after
 * it could be read anyway); values that do not parse, or bytes left over, NFS4ERR_BADXDR.
 */
export function decodeAttrValues(f: Fattr4, opts: { settable: boolean }): DecodedAttrs {
  const attrs = bitmapAttrs(f.mask);
  for (const n of attrs) {
    const d = BY_NUM[n];
    if (!d) return { ok: false, status: NFS4ERR.ATTRNOTSUPP, reason: `attribute ${n}` };
    if (opts.settable && !d.settable) return { ok: false, status: NFS4ERR.INVAL, reason: `attribute ${n} is read-only` };
  }
  const r = new XdrReader(f.vals);
  const values: AttrValues = {};
  try {
    for (const n of attrs) {
      const d = BY_NUM[n] as AttrDef;
      (values as Record<string, unknown>)[d.key] = d.read(r);
    }
    r.done('attrlist4');
  } catch (e) {
    if (e instanceof XdrError) return { ok: false, status: NFS4ERR.BADXDR, reason: e.message };
    if (e instanceof Nfs4ArgError) return { ok: false, status: e.status, reason: e.message };
    throw e;
  }
  return { ok: true, values, attrs };
}

export { bitmapHas };
