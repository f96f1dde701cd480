/**
 * The create contexts' own payloads (MS-SMB2 2.2.13.2, 2.2.14.2) that Portico reads or answers:
 * MxAc (maximal access), QFid (on-disk id), DHnQ/DH2Q (durable handle requests), DHnC/DH2C
 * (durable reconnects), RqLs (lease request, v1 and v2), TWrp (previous version), AlSi
 * (allocation size). CREATE itself answers "no oplock/lease granted" until leases are wired
 * (issue 11), but decodes these so a client's request is understood and refused correctly.
 * Every payload is checked for its exact size (or minimum, where the spec allows more).
 */
import { SmbDecodeError, WireReader, WireWriter, readFileId, writeFileId, type FileId } from '../wire.ts';
import type { CreateContext } from './create.ts';

export const ContextName = {
  MAXIMAL_ACCESS: 'MxAc',
  QUERY_ON_DISK_ID: 'QFid',
  DURABLE_REQUEST: 'DHnQ',
  DURABLE_REQUEST_V2: 'DH2Q',
  DURABLE_RECONNECT: 'DHnC',
  DURABLE_RECONNECT_V2: 'DH2C',
  LEASE: 'RqLs',
  TIMEWARP: 'TWrp',
  ALLOCATION_SIZE: 'AlSi',
  SECURITY_DESCRIPTOR: 'SecD',
  EXTENDED_ATTRIBUTES: 'ExtA',
} as const;

/** The context with this 4-character name, if present (names are compared as bytes, 2.2.13.2). */
export function findContext(contexts: CreateContext[], name: string): CreateContext | undefined {
  if (contexts.length === 0) return undefined;
  let key = NAME_BYTES.get(name);
  if (key === undefined) {
    key = Buffer.from(name, 'latin1');
    if (NAME_BYTES.size < 64) NAME_BYTES.set(name, key);
  }
  for (const c of contexts) if (c.name.equals(key)) return c;
  return undefined;
}

/** findContext's names as bytes, made once (they are the ContextName constants; CREATE looks up several per request). */
const NAME_BYTES = new Map<string, Buffer>();

export function contextOf(name: string, data: Buffer): CreateContext {
  return { name: Buffer.from(name, 'latin1'), data };
}

function exact(data: Buffer, n: number, what: string): WireReader {
  if (data.length !== n) throw new SmbDecodeError('bad-value', `${what} context of ${data.length} bytes, expected ${n}`);
  return new WireReader(data);
}

/** MxAc request: empty, or an 8-byte timestamp. */
export function decodeMaximalAccessRequest(data: Buffer): { timestamp?: bigint } {
  if (data.length === 0) return {};
  return { timestamp: exact(data, 8, 'MxAc').u64() };
}
export function encodeMaximalAccessResponse(queryStatus: number, maximalAccess: number): Buffer {
  return Buffer.from(new WireWriter(8).u32(queryStatus).u32(maximalAccess).finish());
}

/** QFid response: DiskFileId (8), VolumeId (8), 16 reserved bytes (2.2.14.2.9). */
export function encodeQueryOnDiskIdResponse(diskFileId: bigint, volumeId: bigint): Buffer {
  return Buffer.from(new WireWriter(32).u64(diskFileId).u64(volumeId).zeros(16).finish());
}

/** DHnQ request: 16 reserved bytes. Response: 8 reserved bytes. */
export function decodeDurableRequest(data: Buffer): void {
  exact(data, 16, 'DHnQ');
}
export function encodeDurableResponse(): Buffer {
  return Buffer.alloc(8);
}

export const DurableV2Flags = { PERSISTENT: 0x2 } as const;
export interface DurableRequestV2 {
  timeoutMs: number;
  flags: number;
  createGuid: Buffer;
}
export function decodeDurableRequestV2(data: Buffer): DurableRequestV2 {
  const r = exact(data, 32, 'DH2Q');
  const timeoutMs = r.u32();
  const flags = r.u32();
  r.skip(8);
  return { timeoutMs, flags, createGuid: r.bytes(16) };
}
export function encodeDurableRequestV2(q: DurableRequestV2): Buffer {
  return Buffer.from(new WireWriter(32).u32(q.timeoutMs).u32(q.flags).zeros(8).bytes(q.createGuid).finish());
}
export function encodeDurableResponseV2(timeoutMs: number, flags: number): Buffer {
  return Buffer.from(new WireWriter(8).u32(timeoutMs).u32(flags).finish());
}

export function decodeDurableReconnect(data: Buffer): { fileId: FileId } {
  return { fileId: readFileId(exact(data, 16, 'DHnC')) };
}
export function decodeDurableReconnectV2(data: Buffer): { fileId: FileId; createGuid: Buffer; flags: number } {
  const r = exact(data, 36, 'DH2C');
  return { fileId: readFileId(r), createGuid: r.bytes(16), flags: r.u32() };
}
export function encodeDurableReconnectV2(q: { fileId: FileId; createGuid: Buffer; flags: number }): Buffer {
  const w = new WireWriter(36);
  writeFileId(w, q.fileId);
  return Buffer.from(w.bytes(q.createGuid).u32(q.flags).finish());
}

export const LeaseState = { NONE: 0, READ: 0x1, HANDLE: 0x2, WRITE: 0x4 } as const;
export const LeaseFlags = { BREAK_IN_PROGRESS: 0x2, PARENT_LEASE_KEY_SET: 0x4 } as const;
export interface LeaseRequest {
  version: 1 | 2;
  leaseKey: Buffer;
  leaseState: number;
  flags: number;
  parentLeaseKey?: Buffer;
  epoch?: number;
}
/** RqLs: v1 is 32 bytes (SMB 2.1), v2 is 52 (3.x, with the parent key and epoch). */
export function decodeLeaseRequest(data: Buffer): LeaseRequest {
  if (data.length !== 32 && data.length !== 52) throw new SmbDecodeError('bad-value', `RqLs context of ${data.length} bytes`);
  const r = new WireReader(data);
  const leaseKey = r.bytes(16);
  const leaseState = r.u32();
  const flags = r.u32();
  r.u64();
  if (data.length === 32) return { version: 1, leaseKey, leaseState, flags };
  const parentLeaseKey = r.bytes(16);
  const epoch = r.u16();
  return { version: 2, leaseKey, leaseState, flags, parentLeaseKey, epoch };
}
export function encodeLease(l: LeaseRequest): Buffer {
  const w = new WireWriter(52).bytes(l.leaseKey).u32(l.leaseState).u32(l.flags).u64(0n);
  if (l.version === 2) w.bytes(l.parentLeaseKey ?? Buffer.alloc(16)).u16(l.epoch ?? 0).u16(0);
  return Buffer.from(w.finish());
}

/** TWrp: a FILETIME naming a previous version. AlSi: the allocation size. */
export function decodeTimewarp(data: Buffer): bigint {
  return exact(data, 8, 'TWrp').u64();
}
export function decodeAllocationSize(data: Buffer): bigint {
  return exact(data, 8, 'AlSi').u64();
}
