/** The ERROR response (MS-SMB2 2.2.2): StructureSize 9, ErrorContextCount, ByteCount, ErrorData. */
import { SmbDecodeError, WireReader, WireWriter, utf16 } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

export const MAX_ERROR_DATA = 64 * 1024;

export interface ErrorResponse {
  /** 3.1.1 error contexts count (0 for plain errors). */
  errorContextCount: number;
  /** e.g. the SYMBOLIC_LINK_ERROR_RESPONSE or the required size for STATUS_BUFFER_TOO_SMALL. */
  errorData: Buffer;
}

export function encodeErrorResponse(w: WireWriter, p: ErrorResponse = { errorContextCount: 0, errorData: Buffer.alloc(0) }): void {
  w.u16(9).u8(p.errorContextCount).u8(0).u32(p.errorData.length);
  // ByteCount 0 still carries one byte (the StructureSize counts it; Windows clients expect 9 bytes).
  if (p.errorData.length === 0) w.u8(0);
  else w.bytes(p.errorData);
}

export function decodeErrorResponse(element: Buffer): ErrorResponse {
  const r = bodyReader(element, 'ERROR response');
  r.structure(9, 'ERROR response');
  const errorContextCount = r.u8();
  r.u8();
  const n = checkBound(r.u32(), MAX_ERROR_DATA, 'ErrorData', r.pos - 4);
  return { errorContextCount, errorData: n === 0 ? Buffer.alloc(0) : r.bytes(n, 'ErrorData') };
}

/** ErrorId of an SMB 3.1.1 error context (2.2.2.1). */
export const ErrorId = { DEFAULT: 0x0000_0000, SHARE_REDIRECT: 0x7265_6452 } as const;

/**
 * 3.1.1 wraps error data in error contexts (2.2.2.1): {ErrorDataLength, ErrorId, data}, each
 * 8-byte aligned; ErrorContextCount counts them. Earlier dialects carry the data bare.
 */
export function errorWithContexts(contexts: { id: number; data: Buffer }[]): ErrorResponse {
  const w = new WireWriter(64);
  contexts.forEach((c, i) => {
    if (i > 0) w.align(8);
    w.u32(c.data.length).u32(c.id).bytes(c.data);
  });
  return { errorContextCount: contexts.length, errorData: Buffer.from(w.finish()) };
}

export function decodeErrorContexts(e: ErrorResponse): { id: number; data: Buffer }[] {
  const out: { id: number; data: Buffer }[] = [];
  const r = new WireReader(e.errorData);
  for (let i = 0; i < e.errorContextCount; i++) {
    if (i > 0) r.skip(Math.min((8 - ((r.pos - r.start) % 8)) % 8, r.remaining));
    const len = r.u32();
    const id = r.u32();
    out.push({ id, data: r.bytes(len, 'error context') });
  }
  return out;
}

export interface SymlinkError {
  /** Bytes of the client's path not yet resolved when the link was met (after it). */
  unparsedPathLength: number;
  substituteName: string;
  printName: string;
  /** SYMLINK_FLAG_RELATIVE: the target is relative to the link's directory. */
  relative: boolean;
}

const SYML = 0x4c4d_5953; // 'SYML'
const IO_REPARSE_TAG_SYMLINK = 0xa000_000c;

/**
 * The Symbolic Link Error Response (2.2.2.2.1) a CREATE answers with STATUS_STOPPED_ON_SYMLINK:
 * the client resolves the link itself (Portico never follows links on the server).
 */
export function encodeSymlinkErrorData(s: SymlinkError): Buffer {
  const sub = Buffer.from(s.substituteName, 'utf16le');
  const print = Buffer.from(s.printName, 'utf16le');
  const w = new WireWriter(32 + sub.length + print.length);
  // ReparseDataLength counts what a REPARSE_DATA_BUFFER has after its 8-byte header (MS-FSCC
  // 2.1.2.4): the four offset/length fields, Flags and the path buffer.
  w.u32(24 + sub.length + print.length).u32(SYML).u32(IO_REPARSE_TAG_SYMLINK).u16(12 + sub.length + print.length).u16(s.unparsedPathLength);
  w.u16(0).u16(sub.length).u16(sub.length).u16(print.length).u32(s.relative ? 1 : 0).bytes(sub).bytes(print);
  return Buffer.from(w.finish());
}

export function decodeSymlinkErrorData(b: Buffer): SymlinkError {
  const r = new WireReader(b);
  const len = r.u32();
  if (len > r.remaining) throw new SmbDecodeError('short', `SymLinkLength ${len}`);
  if (r.u32() !== SYML || r.u32() !== IO_REPARSE_TAG_SYMLINK) throw new SmbDecodeError('bad-value', 'not a symbolic link error response');
  r.u16(); // ReparseDataLength
  const unparsedPathLength = r.u16();
  const subOff = r.u16();
  const subLen = r.u16();
  const printOff = r.u16();
  const printLen = r.u16();
  const relative = (r.u32() & 1) !== 0;
  const base = r.pos;
  const path = new WireReader(b, base, 4 + len);
  return {
    unparsedPathLength,
    substituteName: utf16(path.slice(subOff, subLen, 'SubstituteName'), 'SubstituteName'),
    printName: utf16(path.slice(printOff, printLen, 'PrintName'), 'PrintName'),
    relative,
  };
}

/** STATUS_BUFFER_TOO_SMALL's error data: the size that would have fitted (2.2.2). */
export function encodeRequiredSize(n: number): Buffer {
  return Buffer.from(new WireWriter(4).u32(n).finish());
}
