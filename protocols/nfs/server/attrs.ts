/**
 * fattr4 values of a file (the core's FileAttr) and of the pseudo-root (RFC 8881 §5.6, §5.7).
 * change is the core's change attribute (the same space as change_info4), fileid the persistent
 * id, owner/owner_group numeric strings (no idmap domain needed: Linux sends and accepts them
 * with AUTH_SYS), space and file counts from the share's statfs (asked only when requested).
 */
import type { FileAttr, StatFsResult } from '../../../src/vfs/types.ts';
import { encodeFattr, hasAttrValue, knownAttrs, sameBitmap, writeAttrValue, type AttrValues } from '../fattr4.ts';
import { FATTR4, FH4, NF4 } from '../nfs4-types.ts';
import { XdrWriter } from '../xdr.ts';
import { bitmapHas, bitmapOf, writeBitmap, type Bitmap4, type NfsTime4 } from '../xdr4/common.ts';
import { LEASE_SECONDS } from './context.ts';
import { PSEUDO_FILEID, PSEUDO_FSID, type NfsExport } from './exports.ts';

const COMMON = [
  FATTR4.SUPPORTED_ATTRS, FATTR4.TYPE, FATTR4.FH_EXPIRE_TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.LINK_SUPPORT, FATTR4.SYMLINK_SUPPORT,
  FATTR4.NAMED_ATTR, FATTR4.FSID, FATTR4.UNIQUE_HANDLES, FATTR4.LEASE_TIME, FATTR4.RDATTR_ERROR, FATTR4.FILEHANDLE, FATTR4.FILEID,
  FATTR4.FILES_AVAIL, FATTR4.FILES_FREE, FATTR4.FILES_TOTAL, FATTR4.MAXFILESIZE, FATTR4.MAXLINK, FATTR4.MAXNAME, FATTR4.MAXREAD,
  FATTR4.MAXWRITE, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.SPACE_AVAIL, FATTR4.SPACE_FREE,
  FATTR4.SPACE_TOTAL, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_CREATE, FATTR4.TIME_DELTA, FATTR4.TIME_METADATA,
  FATTR4.TIME_MODIFY, FATTR4.MOUNTED_ON_FILEID, FATTR4.CANSETTIME, FATTR4.CASE_INSENSITIVE, FATTR4.CASE_PRESERVING,
  FATTR4.CHOWN_RESTRICTED, FATTR4.HOMOGENEOUS, FATTR4.NO_TRUNC, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET, FATTR4.RAWDEV,
];
/** supported_attrs per minor version: suppattr_exclcreat is 4.1's, xattr_support 4.2's. */
export const SUPPORTED: Bitmap4[] = [
  bitmapOf(COMMON),
  bitmapOf([...COMMON, FATTR4.SUPPATTR_EXCLCREAT]),
  bitmapOf([...COMMON, FATTR4.SUPPATTR_EXCLCREAT, FATTR4.XATTR_SUPPORT]),
];
export const EXCLCREAT = bitmapOf([FATTR4.SIZE, FATTR4.MODE, FATTR4.OWNER, FATTR4.OWNER_GROUP, FATTR4.TIME_ACCESS_SET, FATTR4.TIME_MODIFY_SET]);

const STATFS_ATTRS = [FATTR4.FILES_AVAIL, FATTR4.FILES_FREE, FATTR4.FILES_TOTAL, FATTR4.SPACE_AVAIL, FATTR4.SPACE_FREE, FATTR4.SPACE_TOTAL];

export function needsStatfs(req: Bitmap4): boolean {
  return STATFS_ATTRS.some((a) => bitmapHas(req, a));
}

const time = (ns: bigint): NfsTime4 => {
  let s = ns / 1_000_000_000n;
  if (ns < 0n && s * 1_000_000_000n !== ns) s -= 1n;
  return { seconds: s, nseconds: Number(ns - s * 1_000_000_000n) };
};

const TYPE: Record<FileAttr['type'], number> = { file: NF4.REG, dir: NF4.DIR, symlink: NF4.LNK };

function fsValues(minor: number, exp: NfsExport | undefined, fs: StatFsResult | undefined, io: { maxRead: number; maxWrite: number }): AttrValues {
  const v: AttrValues = {
    supportedAttrs: SUPPORTED[minor] ?? SUPPORTED[2],
    fhExpireType: FH4.PERSISTENT,
    linkSupport: true,
    symlinkSupport: true,
    namedAttr: false,
    uniqueHandles: true,
    leaseTime: LEASE_SECONDS,
    rdattrError: 0,
    maxfilesize: 2n ** 63n - 1n,
    maxlink: 255,
    maxname: 255,
    maxread: BigInt(io.maxRead),
    maxwrite: BigInt(io.maxWrite),
    cansettime: true,
    caseInsensitive: exp?.caseInsensitive ?? false,
    casePreserving: true,
    chownRestricted: true,
    homogeneous: true,
    noTrunc: true,
    timeDelta: { seconds: 0n, nseconds: 1 },
    rawdev: { major: 0, minor: 0 },
  };
  if (minor >= 1) v.suppattrExclcreat = EXCLCREAT;
  if (minor >= 2) v.xattrSupport = exp !== undefined;
  if (fs) {
    v.filesAvail = BigInt(Math.max(0, Math.floor(fs.freeFiles)));
    v.filesFree = BigInt(Math.max(0, Math.floor(fs.freeFiles)));
    v.filesTotal = BigInt(Math.max(0, Math.floor(fs.totalFiles)));
    v.spaceAvail = BigInt(Math.max(0, Math.floor(fs.availableBytes)));
    v.spaceFree = BigInt(Math.max(0, Math.floor(fs.freeBytes)));
    v.spaceTotal = BigInt(Math.max(0, Math.floor(fs.totalBytes)));
  }
  return v;
}

/** fsValues without statfs figures per export and minor version: the same for every file. */
const BASES = new WeakMap<NfsExport, AttrValues[]>();

function baseValues(minor: number, exp: NfsExport): AttrValues {
  let per = BASES.get(exp);
  if (!per) BASES.set(exp, (per = []));
  return (per[minor] ??= fsValues(minor, exp, undefined, exp));
}

/**
 * A file's values. The export-wide ones (fsValues) are the object's prototype, built once per
 * export and minor version unless statfs figures are asked, not copied into every file's values:
 * READDIR builds one per entry, and the spread of ~20 values plus their BigInts was a third of
 * its attribute encoding. Readers only index the values by name (fattr4.ts), never list them.
 */
export function fileValues(minor: number, exp: NfsExport, a: FileAttr, fh: Buffer | undefined, fs: StatFsResult | undefined): AttrValues {
  const v = Object.create(fs ? fsValues(minor, exp, fs, exp) : baseValues(minor, exp)) as AttrValues;
  v.type = TYPE[a.type];
  v.change = a.change;
  v.size = BigInt(a.size);
  v.fsid = { major: exp.fsidMajor, minor: 1n };
  if (fh) v.filehandle = fh;
  v.fileid = a.id;
  v.mode = a.mode & 0o7777;
  v.numlinks = Math.max(1, a.nlink);
  v.owner = String(a.uid);
  v.ownerGroup = String(a.gid);
  v.spaceUsed = BigInt(a.allocated);
  v.timeAccess = time(a.atimeNs);
  v.timeCreate = time(a.birthtimeNs);
  v.timeMetadata = time(a.ctimeNs);
  v.timeModify = time(a.mtimeNs);
  v.mountedOnFileid = a.id;
  return v;
}

/** The pseudo-root: a read-only directory listing the exports. */
export function pseudoValues(minor: number, change: bigint, fh: Buffer, io: { maxRead: number; maxWrite: number }): AttrValues {
  const t = { seconds: 0n, nseconds: 0 };
  return {
    ...fsValues(minor, undefined, { totalBytes: 0, freeBytes: 0, availableBytes: 0, totalFiles: 0, freeFiles: 0, blockSize: 4096 }, io),
    type: NF4.DIR,
    change,
    size: 4096n,
    fsid: { major: PSEUDO_FSID.major, minor: PSEUDO_FSID.minor },
    filehandle: fh,
    fileid: PSEUDO_FILEID,
    mode: 0o555,
    numlinks: 2,
    owner: '0',
    ownerGroup: '0',
    spaceUsed: 0n,
    timeAccess: t,
    timeCreate: t,
    timeMetadata: t,
    timeModify: t,
    mountedOnFileid: PSEUDO_FILEID,
  };
}

// ---- a file's fattr4 straight from its FileAttr ---------------------------------------------

/**
 * The attributes fileValues takes from the FileAttr (or the handle); every other attribute a file
 * has is the same for every file of an export (fsValues, fsid), so its XDR is worked out once.
 */
const PER_FILE = new Set<number>([
  FATTR4.TYPE, FATTR4.CHANGE, FATTR4.SIZE, FATTR4.FILEHANDLE, FATTR4.FILEID, FATTR4.MODE, FATTR4.NUMLINKS, FATTR4.OWNER,
  FATTR4.OWNER_GROUP, FATTR4.SPACE_USED, FATTR4.TIME_ACCESS, FATTR4.TIME_CREATE, FATTR4.TIME_METADATA, FATTR4.TIME_MODIFY,
  FATTR4.MOUNTED_ON_FILEID,
]);
/** A step that copies the next constant chunk (attributes of the export, in number order). */
const CONST = -1;

/**
 * How to encode one request's attributes for files of one export, minor version, with or without
 * the handle: the bitmap4 and the steps (an attribute number from the FileAttr, or CONST).
 */
interface FilePlan {
  req: Bitmap4;
  minor: number;
  withFh: boolean;
  head: Buffer;
  steps: Int32Array;
  consts: Buffer[];
}
const FILE_PLANS_KEPT = 8;
const filePlans = new WeakMap<NfsExport, FilePlan[]>();
/** Any file: fileValues of it says which attributes a file has (the values of PER_FILE ones are not used). */
const SAMPLE: FileAttr = {
  id: 1n, type: 'file', size: 0, allocated: 0, mode: 0, uid: 0, gid: 0, nlink: 1, atimeNs: 0n, mtimeNs: 0n, ctimeNs: 0n, birthtimeNs: 0n,
  change: 0n, winAttributes: 0,
};
const SAMPLE_FH = Buffer.alloc(0);

function filePlanOf(minor: number, exp: NfsExport, req: Bitmap4, withFh: boolean): FilePlan {
  let list = filePlans.get(exp);
  if (!list) filePlans.set(exp, (list = []));
  for (let i = 0; i < list.length; i++) {
    const p = list[i]!;
    if (p.minor === minor && p.withFh === withFh && sameBitmap(p.req, req)) {
      if (i > 0) {
        list.splice(i, 1);
        list.unshift(p);
      }
      return p;
    }
  }
  const sample = fileValues(minor, exp, SAMPLE, withFh ? SAMPLE_FH : undefined, undefined);
  const nums = knownAttrs(req).filter((n) => hasAttrValue(n, sample));
  const head = new XdrWriter(64);
  writeBitmap(head, bitmapOf(nums));
  const steps: number[] = [];
  const consts: Buffer[] = [];
  let pending: XdrWriter | undefined;
  for (const n of nums) {
    if (PER_FILE.has(n)) {
      if (pending) consts.push(pending.toBuffer());
      pending = undefined;
      steps.push(n);
    } else {
      if (!pending) {
        pending = new XdrWriter(256);
        steps.push(CONST);
      }
      writeAttrValue(pending, n, sample);
    }
  }
  if (pending) consts.push(pending.toBuffer());
  const plan: FilePlan = { req: [...req], minor, withFh, head: head.toBuffer(), steps: Int32Array.from(steps), consts };
  list.unshift(plan);
  if (list.length > FILE_PLANS_KEPT) list.pop();
  return plan;
}

const NS_PER_S = 1_000_000_000n;

/** nfstime4 of nanoseconds since the epoch (as `time` above, without the intermediate object). */
function writeNs(w: XdrWriter, ns: bigint): void {
  if (ns >= 0n) {
    const s = ns / NS_PER_S;
    w.u64(s).u32(Number(ns - s * NS_PER_S));
    return;
  }
  const t = time(ns);
  w.i64(t.seconds).u32(t.nseconds);
}

/** A u64 of a size in bytes (a JS number), as BigInt(n) would be written. */
function writeSize(w: XdrWriter, n: number): void {
  if (Number.isSafeInteger(n) && n >= 0) w.u64n(n);
  else w.u64(BigInt(n));
}

/**
 * A file's fattr4 for `req`, written straight from its FileAttr: byte for byte what
 * `encodeFattr(w, req, fileValues(minor, exp, a, fh, undefined))` writes (test/nfs/fattr-file.test.ts
 * checks it), without building the values object, its times and BigInts per file. GETATTR and
 * READDIR's entries are most of what a server encodes; the generic path looked up each value by
 * name (megamorphic loads through the export-wide prototype) and made ~10 objects per file. Not
 * for statfs attributes (the caller passes `fs` to the generic path) or idmapped owner names.
 */
export function encodeFileFattr(w: XdrWriter, minor: number, exp: NfsExport, req: Bitmap4, a: FileAttr, fh: Buffer | undefined): void {
  const plan = filePlanOf(minor, exp, req, fh !== undefined);
  w.opaqueFixed(plan.head);
  const len = w.reserveU32();
  const start = w.length;
  const steps = plan.steps;
  let k = 0;
  for (let i = 0; i < steps.length; i++) {
    switch (steps[i]) {
      case CONST:
        w.opaqueFixed(plan.consts[k++]!);
        break;
      case FATTR4.TYPE:
        w.u32(TYPE[a.type]);
        break;
      case FATTR4.CHANGE:
        w.u64(a.change);
        break;
      case FATTR4.SIZE:
        writeSize(w, a.size);
        break;
      case FATTR4.FILEHANDLE:
        w.opaque(fh!);
        break;
      case FATTR4.FILEID:
      case FATTR4.MOUNTED_ON_FILEID:
        w.u64(a.id);
        break;
      case FATTR4.MODE:
        w.u32(a.mode & 0o7777);
        break;
      case FATTR4.NUMLINKS:
        w.u32(Math.max(1, a.nlink));
        break;
      case FATTR4.OWNER:
        w.string(String(a.uid));
        break;
      case FATTR4.OWNER_GROUP:
        w.string(String(a.gid));
        break;
      case FATTR4.SPACE_USED:
        writeSize(w, a.allocated);
        break;
      case FATTR4.TIME_ACCESS:
        writeNs(w, a.atimeNs);
        break;
      case FATTR4.TIME_CREATE:
        writeNs(w, a.birthtimeNs);
        break;
      case FATTR4.TIME_METADATA:
        writeNs(w, a.ctimeNs);
        break;
      case FATTR4.TIME_MODIFY:
        writeNs(w, a.mtimeNs);
        break;
    }
  }
  w.patchU32(len, w.length - start);
}

/** The generic path for what encodeFileFattr does not cover (tests compare the two). */
export function encodeFileFattrGeneric(w: XdrWriter, minor: number, exp: NfsExport, req: Bitmap4, a: FileAttr, fh: Buffer | undefined): void {
  encodeFattr(w, req, fileValues(minor, exp, a, fh, undefined));
}
