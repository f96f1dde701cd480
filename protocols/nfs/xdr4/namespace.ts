/**
 * Namespace operations: CREATE (directories, symlinks, devices), REMOVE, RENAME, LINK, READDIR,
 * READLINK (RFC 8881 §18.4, §18.25, §18.26, §18.9, §18.23, §18.24).
 */
import { NF4 } from '../nfs4-types.ts';
import type { XdrReader, XdrWriter } from '../xdr.ts';
import {
  noArgs,
  okArm,
  readBitmap,
  readComponent,
  readFattr,
  readLinktext,
  readVerifier,
  writeBitmap,
  writeChangeInfo,
  writeVerifier,
  type Bitmap4,
  type ChangeInfo4,
  type Fattr4,
  type OpCodec,
  type Specdata4,
} from './common.ts';

export type CreateType4 =
  | { type: typeof NF4.LNK; linkData: string }
  | { type: typeof NF4.BLK | typeof NF4.CHR; devdata: Specdata4 }
  /** DIR, SOCK, FIFO, and any other type (the RFC's default arm: the server answers NFS4ERR_BADTYPE). */
  | { type: number };

export interface CreateArgs {
  objtype: CreateType4;
  name: string;
  attrs: Fattr4;
}
export interface CreateResOk {
  cinfo: ChangeInfo4;
  attrSet: Bitmap4;
}
export interface NameArgs {
  name: string;
}
export interface CinfoResOk {
  cinfo: ChangeInfo4;
}
export interface RenameArgs {
  oldName: string;
  newName: string;
}
export interface RenameResOk {
  source: ChangeInfo4;
  target: ChangeInfo4;
}
export interface ReaddirArgs {
  cookie: bigint;
  cookieverf: Buffer;
  dircount: number;
  maxcount: number;
  request: Bitmap4;
}
export interface ReaddirEntry {
  cookie: bigint;
  name: string;
  /** The entry's fattr4, already encoded (bitmap4 + attrlist4), so its size is known when packing. */
  attrs: Buffer;
}
export interface ReaddirResOk {
  cookieverf: Buffer;
  entries: ReaddirEntry[];
  /**
   * The entry4 list already encoded (each entry's value_follows TRUE, cookie, name, fattr4; not the
   * final FALSE), written after `entries`: the server's READDIR packs its entries into one buffer
   * (ops/readdir.ts), which the reply then takes by reference.
   */
  packed?: Buffer;
  eof: boolean;
}
export interface ReadlinkResOk {
  link: string;
}

function readCreateType(r: XdrReader): CreateType4 {
  const type = r.u32();
  if (type === NF4.LNK) return { type, linkData: readLinktext(r) };
  if (type === NF4.BLK || type === NF4.CHR) return { type, devdata: { major: r.u32(), minor: r.u32() } };
  return { type };
}

/**
 * Bytes one entry4 takes in a READDIR reply (the value_follows word included): what maxcount
 * counts. RFC 8881 §18.23.3: dircount counts cookie + name only (8 + 4 + padded name).
 */
export function readdirEntryBytes(e: { name: string; attrs: Buffer }): number {
  const n = Buffer.byteLength(e.name, 'utf8');
  return 4 + 8 + 4 + n + ((4 - (n & 3)) & 3) + e.attrs.length;
}

/** Reply bytes of READDIR4resok without its entries (status, verifier, list end, eof). */
export const READDIR_FIXED_BYTES = 4 + 8 + 4 + 4;

export const CREATE: OpCodec<CreateArgs, CreateResOk> = {
  decode: (r) => ({ objtype: readCreateType(r), name: readComponent(r), attrs: readFattr(r) }),
  encode: okArm((w: XdrWriter, res: CreateResOk) => {
    writeChangeInfo(w, res.cinfo);
    writeBitmap(w, res.attrSet);
  }),
};
const writeCinfo = okArm((w: XdrWriter, res: CinfoResOk) => writeChangeInfo(w, res.cinfo));
export const REMOVE: OpCodec<NameArgs, CinfoResOk> = { decode: (r) => ({ name: readComponent(r) }), encode: writeCinfo };
export const LINK: OpCodec<NameArgs, CinfoResOk> = { decode: (r) => ({ name: readComponent(r) }), encode: writeCinfo };
export const RENAME: OpCodec<RenameArgs, RenameResOk> = {
  decode: (r) => ({ oldName: readComponent(r), newName: readComponent(r) }),
  encode: okArm((w: XdrWriter, res: RenameResOk) => {
    writeChangeInfo(w, res.source);
    writeChangeInfo(w, res.target);
  }),
};
export const READDIR: OpCodec<ReaddirArgs, ReaddirResOk> = {
  decode: (r) => ({ cookie: r.u64(), cookieverf: readVerifier(r), dircount: r.u32(), maxcount: r.u32(), request: readBitmap(r) }),
  encode: okArm((w: XdrWriter, res: ReaddirResOk) => {
    writeVerifier(w, res.cookieverf);
    for (const e of res.entries) {
      w.u32(1).u64(e.cookie).string(e.name).opaqueFixed(e.attrs);
    }
    if (res.packed) w.opaqueFixed(res.packed);
    w.u32(0).bool(res.eof);
  }),
};
export const READLINK: OpCodec<null, ReadlinkResOk> = {
  decode: noArgs,
  encode: okArm((w: XdrWriter, res: ReadlinkResOk) => void w.string(res.link)),
};
