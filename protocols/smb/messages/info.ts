/**
 * QUERY_DIRECTORY (MS-SMB2 2.2.33/34), QUERY_INFO (2.2.37/38), SET_INFO (2.2.39/40) and
 * CHANGE_NOTIFY (2.2.35/36) layouts. The information buffers themselves (FILE_*_INFORMATION)
 * belong to the command layer; here they are views of the message, bounded.
 */
import { WireWriter, readFileId, writeFileId, utf16, type FileId } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

/** A pattern is one path component: 255 UTF-16 units. Windows sends "*" or a name. */
export const MAX_PATTERN_BYTES = 1024;
/** SET_INFO input (a rename carries a path; a security descriptor a few KiB). */
export const MAX_SET_INFO_BYTES = 64 * 1024;
export const MAX_QUERY_INFO_INPUT = 64 * 1024;

export const QueryDirectoryFlags = { RESTART_SCANS: 0x01, RETURN_SINGLE_ENTRY: 0x02, INDEX_SPECIFIED: 0x04, REOPEN: 0x10 } as const;
export const InfoType = { FILE: 0x01, FILESYSTEM: 0x02, SECURITY: 0x03, QUOTA: 0x04 } as const;

export interface QueryDirectoryRequest {
  infoClass: number;
  flags: number;
  fileIndex: number;
  fileId: FileId;
  pattern: string;
  outputBufferLength: number;
}
export function decodeQueryDirectoryRequest(element: Buffer): QueryDirectoryRequest {
  const r = bodyReader(element, 'QUERY_DIRECTORY');
  r.structure(33, 'QUERY_DIRECTORY request');
  const infoClass = r.u8();
  const flags = r.u8();
  const fileIndex = r.u32();
  const fileId = readFileId(r);
  const off = r.u16();
  const len = checkBound(r.u16(), MAX_PATTERN_BYTES, 'FileNameLength', r.pos - 2);
  const outputBufferLength = r.u32();
  return { infoClass, flags, fileIndex, fileId, pattern: utf16(r.slice(off, len, 'search pattern'), 'search pattern'), outputBufferLength };
}
export function encodeQueryDirectoryRequest(w: WireWriter, q: QueryDirectoryRequest): void {
  const p = Buffer.from(q.pattern, 'utf16le');
  w.u16(33).u8(q.infoClass).u8(q.flags).u32(q.fileIndex);
  writeFileId(w, q.fileId);
  w.u16(p.length ? 64 + 32 : 0).u16(p.length).u32(q.outputBufferLength).bytes(p);
  if (p.length === 0) w.u8(0);
}

/** The response shape shared by QUERY_DIRECTORY, QUERY_INFO and CHANGE_NOTIFY: {9, offset, length, buffer}. */
export function encodeOutputResponse(w: WireWriter, output: Buffer): void {
  w.u16(9).u16(output.length ? 64 + 8 : 0).u32(output.length).bytes(output);
  if (output.length === 0) w.u8(0);
}
export function decodeOutputResponse(element: Buffer, what: string): Buffer {
  const r = bodyReader(element, what);
  r.structure(9, what);
  const off = r.u16();
  const len = r.u32();
  return r.slice(off, len, `${what} output`);
}

export interface QueryInfoRequest {
  infoType: number;
  infoClass: number;
  outputBufferLength: number;
  input: Buffer;
  additionalInformation: number;
  flags: number;
  fileId: FileId;
}
export function decodeQueryInfoRequest(element: Buffer): QueryInfoRequest {
  const r = bodyReader(element, 'QUERY_INFO');
  r.structure(41, 'QUERY_INFO request');
  const infoType = r.u8();
  const infoClass = r.u8();
  const outputBufferLength = r.u32();
  const inOff = r.u16();
  r.u16();
  const inLen = checkBound(r.u32(), MAX_QUERY_INFO_INPUT, 'InputBufferLength', r.pos - 4);
  const additionalInformation = r.u32();
  const flags = r.u32();
  const fileId = readFileId(r);
  return { infoType, infoClass, outputBufferLength, input: r.slice(inOff, inLen, 'QUERY_INFO input'), additionalInformation, flags, fileId };
}
export function encodeQueryInfoRequest(w: WireWriter, q: QueryInfoRequest): void {
  w.u16(41).u8(q.infoType).u8(q.infoClass).u32(q.outputBufferLength).u16(q.input.length ? 64 + 40 : 0).u16(0).u32(q.input.length);
  w.u32(q.additionalInformation).u32(q.flags);
  writeFileId(w, q.fileId);
  w.bytes(q.input);
  if (q.input.length === 0) w.u8(0);
}

export interface SetInfoRequest {
  infoType: number;
  infoClass: number;
  additionalInformation: number;
  fileId: FileId;
  buffer: Buffer;
}
export function decodeSetInfoRequest(element: Buffer): SetInfoRequest {
  const r = bodyReader(element, 'SET_INFO');
  r.structure(33, 'SET_INFO request');
  const infoType = r.u8();
  const infoClass = r.u8();
  const len = checkBound(r.u32(), MAX_SET_INFO_BYTES, 'SET_INFO BufferLength', r.pos - 4);
  const off = r.u16();
  r.u16();
  const additionalInformation = r.u32();
  const fileId = readFileId(r);
  return { infoType, infoClass, additionalInformation, fileId, buffer: r.slice(off, len, 'SET_INFO buffer') };
}
export function encodeSetInfoRequest(w: WireWriter, q: SetInfoRequest): void {
  w.u16(33).u8(q.infoType).u8(q.infoClass).u32(q.buffer.length).u16(64 + 32).u16(0).u32(q.additionalInformation);
  writeFileId(w, q.fileId);
  w.bytes(q.buffer);
  if (q.buffer.length === 0) w.u8(0);
}

export const ChangeNotifyFlags = { WATCH_TREE: 0x0001 } as const;
export interface ChangeNotifyRequest {
  flags: number;
  outputBufferLength: number;
  fileId: FileId;
  completionFilter: number;
}
export function decodeChangeNotifyRequest(element: Buffer): ChangeNotifyRequest {
  const r = bodyReader(element, 'CHANGE_NOTIFY');
  r.structure(32, 'CHANGE_NOTIFY request');
  const flags = r.u16();
  const outputBufferLength = r.u32();
  const fileId = readFileId(r);
  const completionFilter = r.u32();
  r.u32();
  return { flags, outputBufferLength, fileId, completionFilter };
}
export function encodeChangeNotifyRequest(w: WireWriter, q: ChangeNotifyRequest): void {
  w.u16(32).u16(q.flags).u32(q.outputBufferLength);
  writeFileId(w, q.fileId);
  w.u32(q.completionFilter).u32(0);
}
