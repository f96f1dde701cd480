/**
 * Security descriptors in self-relative form (MS-DTYP 2.4.6), with their SIDs (2.4.2.2), ACLs
 * (2.4.5) and ACEs (2.4.4): what QUERY_INFO SMB2_0_INFO_SECURITY answers and SET_INFO carries.
 *
 * The decoder is total and bounded like every SMB decoder here: any byte string gives a value or
 * an SmbDecodeError. Every offset is checked against the buffer before a view is taken, a SID has
 * at most 15 sub-authorities (2.4.2.2), an ACL lies inside the descriptor and each ACE inside its
 * ACL (AceSize ≥ 8, a multiple of 4), so an ACE count the client wrote can make no more entries
 * than the ACL's own bytes hold. ACE types other than the four plain ones are kept raw.
 */
import { SmbDecodeError, WireReader, WireWriter } from '../wire.ts';

/** SECURITY_INFORMATION bits of AdditionalInformation (MS-SMB2 2.2.37, MS-DTYP 2.4.7). */
export const SecurityInformation = {
  OWNER: 0x1, GROUP: 0x2, DACL: 0x4, SACL: 0x8, LABEL: 0x10, ATTRIBUTE: 0x20, SCOPE: 0x40, BACKUP: 0x1_0000,
} as const;

/** SECURITY_DESCRIPTOR Control bits (MS-DTYP 2.4.6). */
export const SdControl = {
  OWNER_DEFAULTED: 0x0001, GROUP_DEFAULTED: 0x0002, DACL_PRESENT: 0x0004, DACL_DEFAULTED: 0x0008,
  SACL_PRESENT: 0x0010, SACL_DEFAULTED: 0x0020, DACL_AUTO_INHERITED: 0x0400, SACL_AUTO_INHERITED: 0x0800,
  DACL_PROTECTED: 0x1000, SACL_PROTECTED: 0x2000, SELF_RELATIVE: 0x8000,
} as const;

export const AceType = { ACCESS_ALLOWED: 0x00, ACCESS_DENIED: 0x01, SYSTEM_AUDIT: 0x02, SYSTEM_ALARM: 0x03 } as const;
export const AceFlags = { OBJECT_INHERIT: 0x01, CONTAINER_INHERIT: 0x02, NO_PROPAGATE_INHERIT: 0x04, INHERIT_ONLY: 0x08, INHERITED: 0x10 } as const;

/** ACL_REVISION (MS-DTYP 2.4.5): ACLs of the four plain ACE types. */
export const ACL_REVISION = 2;
export const MAX_SUB_AUTHORITIES = 15;
const SD_HEADER_BYTES = 20;
const ACL_HEADER_BYTES = 8;
const ACE_HEADER_BYTES = 4;

export interface Sid {
  /** 48-bit IdentifierAuthority (big-endian on the wire). */
  authority: number;
  subAuthorities: number[];
}

export interface Ace {
  type: number;
  flags: number;
  /** Present for the four plain types (mask + SID bodies). */
  mask?: number;
  sid?: Sid;
  /** Any other type: the body after the 4-byte header, a view of the input. */
  raw?: Buffer;
}

export interface Acl {
  revision: number;
  aces: Ace[];
}

export interface SecurityDescriptor {
  control: number;
  owner?: Sid;
  group?: Sid;
  sacl?: Acl;
  dacl?: Acl;
}

/** A SID from its string form ("S-1-22-1-1001"); undefined for anything else. */
export function parseSid(s: string): Sid | undefined {
  const m = /^S-1-(\d+)((?:-\d+)*)$/i.exec(s);
  if (!m) return undefined;
  const authority = Number(m[1]);
  const subs = m[2] ? m[2].slice(1).split('-').map(Number) : [];
  if (!Number.isSafeInteger(authority) || authority >= 2 ** 48 || subs.length > MAX_SUB_AUTHORITIES || subs.some((x) => x > 0xffff_ffff)) return undefined;
  return { authority, subAuthorities: subs };
}

export function sidString(s: Sid): string {
  return ['S-1', String(s.authority), ...s.subAuthorities.map(String)].join('-');
}

export function sidBytes(s: Sid): number {
  return 8 + 4 * s.subAuthorities.length;
}

function aceBytes(a: Ace): number {
  const body = a.raw ? a.raw.length : 4 + sidBytes(a.sid ?? { authority: 0, subAuthorities: [] });
  return (ACE_HEADER_BYTES + body + 3) & ~3;
}

function aclBytes(acl: Acl): number {
  return acl.aces.reduce((n, a) => n + aceBytes(a), ACL_HEADER_BYTES);
}

function writeSid(w: WireWriter, s: Sid): void {
  if (s.subAuthorities.length > MAX_SUB_AUTHORITIES) throw new RangeError(`a SID has at most ${MAX_SUB_AUTHORITIES} sub-authorities`);
  w.u8(1).u8(s.subAuthorities.length);
  // IdentifierAuthority: six bytes, most significant first.
  for (let i = 5; i >= 0; i--) w.u8(Math.floor(s.authority / 2 ** (8 * i)) & 0xff);
  for (const x of s.subAuthorities) w.u32(x);
}

function writeAcl(w: WireWriter, acl: Acl): void {
  const size = aclBytes(acl);
  if (size > 0xffff || acl.aces.length > 0xffff) throw new RangeError('an ACL is at most 65,535 bytes');
  w.u8(acl.revision).u8(0).u16(size).u16(acl.aces.length).u16(0);
  for (const a of acl.aces) {
    const n = aceBytes(a);
    const start = w.len;
    w.u8(a.type).u8(a.flags).u16(n);
    if (a.raw) w.bytes(a.raw);
    else {
      w.u32(a.mask ?? 0);
      writeSid(w, a.sid ?? { authority: 0, subAuthorities: [] });
    }
    w.zeros(n - (w.len - start));
  }
}

/**
 * The self-relative form: the 20-byte header, then owner, group, SACL and DACL in that order
 * (the order Windows writes them). Control gets SELF_RELATIVE and the PRESENT bits of what is there.
 */
export function encodeSecurityDescriptor(sd: SecurityDescriptor): Buffer {
  const w = new WireWriter(SD_HEADER_BYTES + 256);
  let control = sd.control | SdControl.SELF_RELATIVE;
  if (sd.dacl) control |= SdControl.DACL_PRESENT;
  if (sd.sacl) control |= SdControl.SACL_PRESENT;
  let at = SD_HEADER_BYTES;
  const place = (n: number | undefined): number => {
    if (n === undefined) return 0;
    const off = at;
    at += n;
    return off;
  };
  const ownerOff = place(sd.owner && sidBytes(sd.owner));
  const groupOff = place(sd.group && sidBytes(sd.group));
  const saclOff = place(sd.sacl && aclBytes(sd.sacl));
  const daclOff = place(sd.dacl && aclBytes(sd.dacl));
  w.u8(1).u8(0).u16(control).u32(ownerOff).u32(groupOff).u32(saclOff).u32(daclOff);
  if (sd.owner) writeSid(w, sd.owner);
  if (sd.group) writeSid(w, sd.group);
  if (sd.sacl) writeAcl(w, sd.sacl);
  if (sd.dacl) writeAcl(w, sd.dacl);
  return Buffer.from(w.finish());
}

function readSid(buf: Buffer, at: number, end: number, what: string): Sid {
  const r = new WireReader(buf, at, end);
  const rev = r.u8();
  if (rev !== 1) throw new SmbDecodeError('bad-value', `${what}: SID revision ${rev}`, at);
  const n = r.u8();
  if (n > MAX_SUB_AUTHORITIES) throw new SmbDecodeError('too-long', `${what}: ${n} sub-authorities, limit ${MAX_SUB_AUTHORITIES}`, at + 1);
  r.need(6 + 4 * n, `${what} SID`);
  let authority = 0;
  for (let i = 0; i < 6; i++) authority = authority * 256 + r.u8();
  const subAuthorities: number[] = [];
  for (let i = 0; i < n; i++) subAuthorities.push(r.u32());
  return { authority, subAuthorities };
}

function readAcl(buf: Buffer, at: number, end: number, what: string): Acl {
  const r = new WireReader(buf, at, end);
  const revision = r.u8();
  if (revision !== 2 && revision !== 4) throw new SmbDecodeError('bad-value', `${what}: ACL revision ${revision}`, at);
  r.u8();
  const size = r.u16();
  const count = r.u16();
  r.u16();
  if (size < ACL_HEADER_BYTES || at + size > end) throw new SmbDecodeError('bad-offset', `${what}: AclSize ${size} outside the descriptor`, at + 2);
  const aclEnd = at + size;
  const aces: Ace[] = [];
  let pos = at + ACL_HEADER_BYTES;
  // Each ACE takes at least 8 bytes of the ACL, so `count` cannot outrun the bytes.
  for (let i = 0; i < count; i++) {
    const h = new WireReader(buf, pos, aclEnd);
    const type = h.u8();
    const flags = h.u8();
    const aceSize = h.u16();
    if (aceSize < 8 || aceSize % 4 !== 0 || pos + aceSize > aclEnd) throw new SmbDecodeError('bad-value', `${what}: AceSize ${aceSize} of ACE ${i}`, pos + 2);
    const bodyEnd = pos + aceSize;
    if (type <= AceType.SYSTEM_ALARM) {
      const b = new WireReader(buf, pos + ACE_HEADER_BYTES, bodyEnd);
      const mask = b.u32();
      aces.push({ type, flags, mask, sid: readSid(buf, b.pos, bodyEnd, `${what} ACE ${i}`) });
    } else {
      aces.push({ type, flags, raw: buf.subarray(pos + ACE_HEADER_BYTES, bodyEnd) });
    }
    pos = bodyEnd;
  }
  return { revision, aces };
}

/** A self-relative security descriptor (the whole buffer; offsets count from its start). */
export function decodeSecurityDescriptor(buf: Buffer): SecurityDescriptor {
  const r = new WireReader(buf);
  const rev = r.u8();
  if (rev !== 1) throw new SmbDecodeError('bad-value', `security descriptor revision ${rev}`, 0);
  r.u8();
  const control = r.u16();
  if (!(control & SdControl.SELF_RELATIVE)) throw new SmbDecodeError('bad-value', 'security descriptor not self-relative', 2);
  const offs = [r.u32(), r.u32(), r.u32(), r.u32()];
  for (const [i, o] of offs.entries()) {
    if (o !== 0 && (o < SD_HEADER_BYTES || o >= buf.length)) throw new SmbDecodeError('bad-offset', `security descriptor offset ${o} outside ${buf.length} bytes`, 4 + 4 * i);
  }
  const [ownerOff, groupOff, saclOff, daclOff] = offs as [number, number, number, number];
  const sd: SecurityDescriptor = { control };
  if (ownerOff) sd.owner = readSid(buf, ownerOff, buf.length, 'owner');
  if (groupOff) sd.group = readSid(buf, groupOff, buf.length, 'group');
  // A PRESENT bit with offset 0 is a NULL ACL (MS-DTYP 2.4.6): everyone has access; kept as absent.
  if (control & SdControl.SACL_PRESENT && saclOff) sd.sacl = readAcl(buf, saclOff, buf.length, 'SACL');
  if (control & SdControl.DACL_PRESENT && daclOff) sd.dacl = readAcl(buf, daclOff, buf.length, 'DACL');
  return sd;
}
