/**
 * CREATE request and response (MS-SMB2 2.2.13, 2.2.14) and the create contexts list
 * (2.2.13.2): each context is {Next, NameOffset, NameLength, DataOffset, DataLength}, offsets
 * from the context's own start, Next 8-byte aligned and pointing forward, the last with Next 0.
 * Context names are 4-byte tags ("MxAc", "QFid", "RqLs", "DH2Q", ...) or GUIDs; their data is
 * left raw for the command layer.
 */
import { SmbDecodeError, WireReader, WireWriter, readFileId, writeFileId, utf16, type FileId } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

/** A path is at most 32,767 UTF-16 units (Windows' own limit). */
export const MAX_CREATE_NAME_BYTES = 65_534;
export const MAX_CREATE_CONTEXTS = 32;
export const MAX_CREATE_CONTEXTS_BYTES = 64 * 1024;

export interface CreateContext {
  name: Buffer;
  data: Buffer;
}

export interface CreateRequest {
  securityFlags: number;
  requestedOplockLevel: number;
  impersonationLevel: number;
  smbCreateFlags: bigint;
  desiredAccess: number;
  fileAttributes: number;
  shareAccess: number;
  createDisposition: number;
  createOptions: number;
  name: string;
  contexts: CreateContext[];
}

export interface FileTimes {
  creationTime: bigint;
  lastAccessTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
}

export interface CreateResponse extends FileTimes {
  oplockLevel: number;
  flags: number;
  createAction: number;
  allocationSize: bigint;
  endOfFile: bigint;
  fileAttributes: number;
  fileId: FileId;
  contexts: CreateContext[];
}

export function decodeCreateContexts(list: Buffer): CreateContext[] {
  const out: CreateContext[] = [];
  const r = new WireReader(list);
  let at = 0;
  for (;;) {
    if (out.length >= MAX_CREATE_CONTEXTS) throw new SmbDecodeError('too-long', `more than ${MAX_CREATE_CONTEXTS} create contexts`, at);
    const head = r.slice(at, 16, 'create context header');
    const next = head.readUInt32LE(0);
    const nameOff = head.readUInt16LE(4);
    const nameLen = head.readUInt16LE(6);
    const dataOff = head.readUInt16LE(10);
    const dataLen = head.readUInt32LE(12);
    const end = next === 0 ? list.length : at + next;
    if (next !== 0 && (next % 8 !== 0 || next < 16 || end > list.length)) throw new SmbDecodeError('bad-offset', `create context Next ${next}`, at);
    const ctx = new WireReader(list, at, end);
    const name = ctx.slice(nameOff, nameLen, 'create context name');
    if (nameLen === 0) throw new SmbDecodeError('bad-value', 'create context without a name', at);
    const data = ctx.slice(dataOff, dataLen, 'create context data');
    out.push({ name, data });
    if (next === 0) return out;
    at = end;
  }
}

export function encodeCreateContexts(w: WireWriter, contexts: CreateContext[]): void {
  contexts.forEach((c, i) => {
    const start = w.len;
    const dataOff = c.data.length ? 16 + c.name.length + ((8 - ((16 + c.name.length) % 8)) % 8) : 0;
    w.u32(0).u16(16).u16(c.name.length).u16(0).u16(dataOff).u32(c.data.length).bytes(c.name);
    if (c.data.length) {
      w.align(8);
      w.bytes(c.data);
    }
    if (i < contexts.length - 1) {
      w.align(8);
      w.patchU32(start, w.len - start);
    }
  });
}

export function decodeCreateRequest(element: Buffer): CreateRequest {
  const r = bodyReader(element, 'CREATE');
  r.structure(57, 'CREATE request');
  const securityFlags = r.u8();
  const requestedOplockLevel = r.u8();
  const impersonationLevel = r.u32();
  const smbCreateFlags = r.u64();
  r.u64();
  const desiredAccess = r.u32();
  const fileAttributes = r.u32();
  const shareAccess = r.u32();
  const createDisposition = r.u32();
  const createOptions = r.u32();
  const nameOff = r.u16();
  const nameLen = checkBound(r.u16(), MAX_CREATE_NAME_BYTES, 'CREATE NameLength', r.pos - 2);
  const ctxOff = r.u32();
  const ctxLen = checkBound(r.u32(), MAX_CREATE_CONTEXTS_BYTES, 'CreateContextsLength', r.pos - 4);
  const name = utf16(r.slice(nameOff, nameLen, 'CREATE name'), 'CREATE name');
  const contexts = ctxLen ? decodeCreateContexts(r.slice(ctxOff, ctxLen, 'create contexts')) : [];
  return { securityFlags, requestedOplockLevel, impersonationLevel, smbCreateFlags, desiredAccess, fileAttributes, shareAccess, createDisposition, createOptions, name, contexts };
}

export function encodeCreateRequest(w: WireWriter, q: CreateRequest): void {
  const name = Buffer.from(q.name, 'utf16le');
  w.u16(57).u8(q.securityFlags).u8(q.requestedOplockLevel).u32(q.impersonationLevel).u64(q.smbCreateFlags).u64(0n);
  w.u32(q.desiredAccess).u32(q.fileAttributes).u32(q.shareAccess).u32(q.createDisposition).u32(q.createOptions);
  const fixedAt = w.len;
  w.u16(64 + 56).u16(name.length).u32(0).u32(0);
  w.bytes(name);
  if (name.length === 0) w.u8(0);
  if (q.contexts.length) {
    w.align(8);
    const at = w.len;
    encodeCreateContexts(w, q.contexts);
    w.patchU32(fixedAt + 4, at);
    w.patchU32(fixedAt + 8, w.len - at);
  }
}

function writeTimes(w: WireWriter, t: FileTimes): void {
  w.u64(t.creationTime).u64(t.lastAccessTime).u64(t.lastWriteTime).u64(t.changeTime);
}

export function readTimes(r: WireReader): FileTimes {
  return { creationTime: r.u64(), lastAccessTime: r.u64(), lastWriteTime: r.u64(), changeTime: r.u64() };
}

export function encodeCreateResponse(w: WireWriter, p: CreateResponse): void {
  w.u16(89).u8(p.oplockLevel).u8(p.flags).u32(p.createAction);
  writeTimes(w, p);
  w.u64(p.allocationSize).u64(p.endOfFile).u32(p.fileAttributes).u32(0);
  writeFileId(w, p.fileId);
  const ctxAt = w.len;
  w.u32(0).u32(0);
  if (p.contexts.length) {
    w.align(8);
    const at = w.len;
    encodeCreateContexts(w, p.contexts);
    w.patchU32(ctxAt, at);
    w.patchU32(ctxAt + 4, w.len - at);
  } else {
    w.u8(0);
  }
}

export { writeTimes };

export function decodeCreateResponse(element: Buffer): CreateResponse {
  const r = bodyReader(element, 'CREATE response');
  r.structure(89, 'CREATE response');
  const oplockLevel = r.u8();
  const flags = r.u8();
  const createAction = r.u32();
  const times = readTimes(r);
  const allocationSize = r.u64();
  const endOfFile = r.u64();
  const fileAttributes = r.u32();
  r.u32();
  const fileId = readFileId(r);
  const ctxOff = r.u32();
  const ctxLen = checkBound(r.u32(), MAX_CREATE_CONTEXTS_BYTES, 'CreateContextsLength', r.pos - 4);
  const contexts = ctxLen ? decodeCreateContexts(r.slice(ctxOff, ctxLen, 'create contexts')) : [];
  return { oplockLevel, flags, createAction, ...times, allocationSize, endOfFile, fileAttributes, fileId, contexts };
}
