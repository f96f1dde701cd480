/** SESSION_SETUP request and response (MS-SMB2 2.2.5, 2.2.6); the security buffer is a GSS token (SPNEGO). */
import { WireWriter } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

/** A security token bigger than this is refused (Kerberos tickets with large PACs reach ~12 KiB; NTLM ~1 KiB). */
export const MAX_SECURITY_BUFFER = 64 * 1024;

export const SessionSetupFlags = { BINDING: 0x01 } as const;
export const SessionFlags = { IS_GUEST: 0x0001, IS_NULL: 0x0002, ENCRYPT_DATA: 0x0004 } as const;

export interface SessionSetupRequest {
  flags: number;
  securityMode: number;
  capabilities: number;
  channel: number;
  previousSessionId: bigint;
  securityBuffer: Buffer;
}

export interface SessionSetupResponse {
  sessionFlags: number;
  securityBuffer: Buffer;
}

export function decodeSessionSetupRequest(element: Buffer): SessionSetupRequest {
  const r = bodyReader(element, 'SESSION_SETUP');
  r.structure(25, 'SESSION_SETUP request');
  const flags = r.u8();
  const securityMode = r.u8();
  const capabilities = r.u32();
  const channel = r.u32();
  const off = r.u16();
  const len = checkBound(r.u16(), MAX_SECURITY_BUFFER, 'security buffer', r.pos - 2);
  const previousSessionId = r.u64();
  return { flags, securityMode, capabilities, channel, previousSessionId, securityBuffer: r.slice(off, len, 'security buffer') };
}

export function encodeSessionSetupRequest(w: WireWriter, q: SessionSetupRequest): void {
  w.u16(25).u8(q.flags).u8(q.securityMode).u32(q.capabilities).u32(q.channel).u16(64 + 24).u16(q.securityBuffer.length).u64(q.previousSessionId);
  w.bytes(q.securityBuffer);
  if (q.securityBuffer.length === 0) w.u8(0);
}

export function encodeSessionSetupResponse(w: WireWriter, p: SessionSetupResponse): void {
  w.u16(9).u16(p.sessionFlags).u16(p.securityBuffer.length ? 64 + 8 : 0).u16(p.securityBuffer.length);
  w.bytes(p.securityBuffer);
  if (p.securityBuffer.length === 0) w.u8(0);
}

export function decodeSessionSetupResponse(element: Buffer): SessionSetupResponse {
  const r = bodyReader(element, 'SESSION_SETUP response');
  r.structure(9, 'SESSION_SETUP response');
  const sessionFlags = r.u16();
  const off = r.u16();
  const len = checkBound(r.u16(), MAX_SECURITY_BUFFER, 'security buffer', r.pos - 2);
  return { sessionFlags, securityBuffer: r.slice(off, len, 'security buffer') };
}
