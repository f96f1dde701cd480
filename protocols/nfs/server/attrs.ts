/**
 * fattr4 values of a file (the core's FileAttr) and of the pseudo-root (RFC 8881 §5.6, §5.7).
 * change is the core's change attribute (the same space as change_info4), fileid the persistent
 * id, owner/owner_group numeric strings (no idmap domain needed: Linux sends and accepts them
 * with AUTH_SYS), space and file counts from the share's statfs (asked only when requested).
 */
import type { FileAttr, StatFsResult } from '../../../src/vfs/types.ts';
import type { AttrValues } from '../fattr4.ts';
import { FATTR4, FH4, NF4 } from '../nfs4-types.ts';
import { bitmapHas, bitmapOf, type Bitmap4, type NfsTime4 } from '../xdr4/common.ts';
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
