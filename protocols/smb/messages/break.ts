/**
 * OPLOCK_BREAK notification/acknowledgment/response (MS-SMB2 2.2.23.1, 2.2.24.1, 2.2.25.1: one
 * 24-byte layout) and LEASE_BREAK notification (2.2.23.2, 44 bytes), acknowledgment and response
 * (2.2.24.2, 2.2.25.2: 36 bytes). Both travel as command OPLOCK_BREAK; the StructureSize tells
 * them apart.
 */
import { SmbDecodeError, WireWriter, readFileId, writeFileId, type FileId } from '../wire.ts';
import { bodyReader } from './body.ts';

export interface OplockBreak {
  kind: 'oplock';
  oplockLevel: number;
  fileId: FileId;
}
export interface LeaseBreakAck {
  kind: 'lease';
  flags: number;
  leaseKey: Buffer;
  leaseState: number;
  leaseDuration: bigint;
}
export interface LeaseBreakNotification {
  newEpoch: number;
  flags: number;
  leaseKey: Buffer;
  currentLeaseState: number;
  newLeaseState: number;
}

/** An acknowledgment from the client (or the server's response, same layouts). */
export function decodeBreakAck(element: Buffer): OplockBreak | LeaseBreakAck {
  const r = bodyReader(element, 'OPLOCK_BREAK');
  const size = r.u16();
  r.pos -= 2;
  if (size === 24) {
    r.structure(24, 'OPLOCK_BREAK');
    const oplockLevel = r.u8();
    r.u8();
    r.u32();
    return { kind: 'oplock', oplockLevel, fileId: readFileId(r) };
  }
  if (size === 36) {
    r.structure(36, 'LEASE_BREAK acknowledgment');
    r.u16();
    const flags = r.u32();
    const leaseKey = r.bytes(16);
    return { kind: 'lease', flags, leaseKey, leaseState: r.u32(), leaseDuration: r.u64() };
  }
  throw new SmbDecodeError('bad-value', `OPLOCK_BREAK StructureSize ${size}`, 64);
}

export function encodeBreakAck(w: WireWriter, b: OplockBreak | LeaseBreakAck): void {
  if (b.kind === 'oplock') {
    w.u16(24).u8(b.oplockLevel).u8(0).u32(0);
    writeFileId(w, b.fileId);
  } else {
    w.u16(36).u16(0).u32(b.flags).bytes(b.leaseKey).u32(b.leaseState).u64(b.leaseDuration);
  }
}

export function encodeLeaseBreakNotification(w: WireWriter, n: LeaseBreakNotification): void {
  w.u16(44).u16(n.newEpoch).u32(n.flags).bytes(n.leaseKey).u32(n.currentLeaseState).u32(n.newLeaseState).u32(0).u32(0).u32(0);
}

export function decodeLeaseBreakNotification(element: Buffer): LeaseBreakNotification {
  const r = bodyReader(element, 'LEASE_BREAK');
  r.structure(44, 'LEASE_BREAK notification');
  const newEpoch = r.u16();
  const flags = r.u32();
  const leaseKey = r.bytes(16);
  return { newEpoch, flags, leaseKey, currentLeaseState: r.u32(), newLeaseState: r.u32() };
}
