/**
 * Request/response layouts of the handle commands: CLOSE (MS-SMB2 2.2.15/16), FLUSH (2.2.17),
 * READ (2.2.19/20), WRITE (2.2.21/22), LOCK (2.2.26). Data buffers are views of the message
 * (a WRITE payload is not copied); lengths are checked against the message and a configured
 * maximum before anything is taken.
 */
import { SmbDecodeError, WireWriter, readFileId, writeFileId, type FileId } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';
import { readTimes, writeTimes, type FileTimes } from './create.ts';

/** Default ceiling of one READ or WRITE (MaxReadSize/MaxWriteSize announced: 8 MiB, as Windows Server). */
export const DEFAULT_MAX_IO = 8 * 1024 * 1024;
export const MAX_LOCK_ELEMENTS = 64;

export const CloseFlags = { POSTQUERY_ATTRIB: 0x0001 } as const;

export interface CloseRequest {
  flags: number;
  fileId: FileId;
}
export interface CloseResponse extends FileTimes {
  flags: number;
  allocationSize: bigint;
  endOfFile: bigint;
  fileAttributes: number;
}

export function decodeCloseRequest(element: Buffer): CloseRequest {
  const r = bodyReader(element, 'CLOSE');
  r.structure(24, 'CLOSE request');
  const flags = r.u16();
  r.u32();
  return { flags, fileId: readFileId(r) };
}
export function encodeCloseRequest(w: WireWriter, q: CloseRequest): void {
  w.u16(24).u16(q.flags).u32(0);
  writeFileId(w, q.fileId);
}
export function encodeCloseResponse(w: WireWriter, p: CloseResponse): void {
  w.u16(60).u16(p.flags).u32(0);
  writeTimes(w, p);
  w.u64(p.allocationSize).u64(p.endOfFile).u32(p.fileAttributes);
}
export function decodeCloseResponse(element: Buffer): CloseResponse {
  const r = bodyReader(element, 'CLOSE response');
  r.structure(60, 'CLOSE response');
  const flags = r.u16();
  r.u32();
  const times = readTimes(r);
  return { flags, ...times, allocationSize: r.u64(), endOfFile: r.u64(), fileAttributes: r.u32() };
}

export function decodeFlushRequest(element: Buffer): { fileId: FileId } {
  const r = bodyReader(element, 'FLUSH');
  r.structure(24, 'FLUSH request');
  r.u16();
  r.u32();
  return { fileId: readFileId(r) };
}
export function encodeFlushRequest(w: WireWriter, q: { fileId: FileId }): void {
  w.u16(24).u16(0).u32(0);
  writeFileId(w, q.fileId);
}

export const ReadFlags = { UNBUFFERED: 0x01, REQUEST_COMPRESSED: 0x02 } as const;

export interface ReadRequest {
  padding: number;
  flags: number;
  length: number;
  offset: bigint;
  fileId: FileId;
  minimumCount: number;
  channel: number;
  remainingBytes: number;
}

export function decodeReadRequest(element: Buffer, maxIo = DEFAULT_MAX_IO): ReadRequest {
  const r = bodyReader(element, 'READ');
  r.structure(49, 'READ request');
  const padding = r.u8();
  const flags = r.u8();
  const length = checkBound(r.u32(), maxIo, 'READ Length', r.pos - 4);
  const offset = r.u64();
  const fileId = readFileId(r);
  const minimumCount = r.u32();
  const channel = r.u32();
  const remainingBytes = r.u32();
  r.u16(); // ReadChannelInfoOffset: RDMA only, ignored
  r.u16();
  return { padding, flags, length, offset, fileId, minimumCount, channel, remainingBytes };
}
export function encodeReadRequest(w: WireWriter, q: ReadRequest): void {
  w.u16(49).u8(q.padding).u8(q.flags).u32(q.length).u64(q.offset);
  writeFileId(w, q.fileId);
  w.u32(q.minimumCount).u32(q.channel).u32(q.remainingBytes).u16(0).u16(0).u8(0);
}

export interface ReadResponse {
  data: Buffer;
  dataRemaining: number;
}
/** DataOffset 0x50: the data follows the 16-byte fixed part right after the header. */
export function encodeReadResponse(w: WireWriter, p: ReadResponse): void {
  encodeReadResponseHead(w, { dataLength: p.data.length, dataRemaining: p.dataRemaining });
  w.bytes(p.data);
  if (p.data.length === 0) w.u8(0);
}
/**
 * The READ response without its data, for a server that sends the data (at least one byte) as a
 * piece of its own right after this (the payload is never copied into the response).
 */
export function encodeReadResponseHead(w: WireWriter, p: { dataLength: number; dataRemaining: number }): void {
  w.u16(17).u8(64 + 16).u8(0).u32(p.dataLength).u32(p.dataRemaining).u32(0);
}
export function decodeReadResponse(element: Buffer): ReadResponse {
  const r = bodyReader(element, 'READ response');
  r.structure(17, 'READ response');
  const off = r.u8();
  r.u8();
  const len = r.u32();
  const dataRemaining = r.u32();
  r.u32();
  return { data: r.slice(off, len, 'READ data'), dataRemaining };
}

export const WriteFlags = { WRITE_THROUGH: 0x1, WRITE_UNBUFFERED: 0x2 } as const;

export interface WriteRequest {
  offset: bigint;
  fileId: FileId;
  channel: number;
  remainingBytes: number;
  flags: number;
  data: Buffer;
}
export function decodeWriteRequest(element: Buffer, maxIo = DEFAULT_MAX_IO): WriteRequest {
  const r = bodyReader(element, 'WRITE');
  r.structure(49, 'WRITE request');
  const dataOff = r.u16();
  const length = checkBound(r.u32(), maxIo, 'WRITE Length', r.pos - 4);
  const offset = r.u64();
  const fileId = readFileId(r);
  const channel = r.u32();
  const remainingBytes = r.u32();
  r.u16();
  r.u16();
  const flags = r.u32();
  return { offset, fileId, channel, remainingBytes, flags, data: r.slice(dataOff, length, 'WRITE data') };
}
export function encodeWriteRequest(w: WireWriter, q: WriteRequest): void {
  w.u16(49).u16(64 + 48).u32(q.data.length).u64(q.offset);
  writeFileId(w, q.fileId);
  w.u32(q.channel).u32(q.remainingBytes).u16(0).u16(0).u32(q.flags).bytes(q.data);
  if (q.data.length === 0) w.u8(0);
}
export interface WriteResponse {
  count: number;
  remaining: number;
}
export function encodeWriteResponse(w: WireWriter, p: WriteResponse): void {
  w.u16(17).u16(0).u32(p.count).u32(p.remaining).u16(0).u16(0);
}
export function decodeWriteResponse(element: Buffer): WriteResponse {
  const r = bodyReader(element, 'WRITE response');
  r.structure(17, 'WRITE response');
  r.u16();
  return { count: r.u32(), remaining: r.u32() };
}

export const LockFlags = { SHARED: 0x1, EXCLUSIVE: 0x2, UNLOCK: 0x4, FAIL_IMMEDIATELY: 0x10 } as const;

export interface LockElement {
  offset: bigint;
  length: bigint;
  flags: number;
}
export interface LockRequest {
  /** LockSequenceNumber (low 4 bits) and LockSequenceIndex (high 28 bits), 2.2.26. */
  lockSequence: number;
  fileId: FileId;
  locks: LockElement[];
}
export function decodeLockRequest(element: Buffer): LockRequest {
  const r = bodyReader(element, 'LOCK');
  r.structure(48, 'LOCK request');
  const at = r.pos;
  const count = r.u16();
  if (count === 0) throw new SmbDecodeError('bad-value', 'LOCK with LockCount 0', at);
  checkBound(count, MAX_LOCK_ELEMENTS, 'LockCount', at);
  const lockSequence = r.u32();
  const fileId = readFileId(r);
  r.need(count * 24, 'lock elements');
  const locks: LockElement[] = [];
  for (let i = 0; i < count; i++) {
    const offset = r.u64();
    const length = r.u64();
    const flags = r.u32();
    r.u32();
    locks.push({ offset, length, flags });
  }
  return { lockSequence, fileId, locks };
}
export function encodeLockRequest(w: WireWriter, q: LockRequest): void {
  w.u16(48).u16(q.locks.length).u32(q.lockSequence);
  writeFileId(w, q.fileId);
  for (const l of q.locks) w.u64(l.offset).u64(l.length).u32(l.flags).u32(0);
}
