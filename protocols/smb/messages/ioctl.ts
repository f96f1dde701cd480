/** IOCTL request and response (MS-SMB2 2.2.31, 2.2.32). Input and output are views of the message. */
import { SmbDecodeError, WireReader, WireWriter, readFileId, writeFileId, type FileId } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

/** One IOCTL's input: FSCTL_PIPE_TRANSCEIVE carries DCE/RPC fragments (Windows: 64 KiB). */
export const MAX_IOCTL_INPUT = 1024 * 1024;

export const IoctlFlags = { IS_FSCTL: 0x1 } as const;
export const Fsctl = {
  DFS_GET_REFERRALS: 0x0006_0194,
  DFS_GET_REFERRALS_EX: 0x0006_01b0,
  PIPE_TRANSCEIVE: 0x0011_c017,
  VALIDATE_NEGOTIATE_INFO: 0x0014_0204,
  QUERY_NETWORK_INTERFACE_INFO: 0x0014_01fc,
  SRV_REQUEST_RESUME_KEY: 0x0014_0078,
  SRV_COPYCHUNK: 0x0014_40f2,
} as const;

export interface IoctlRequest {
  ctlCode: number;
  fileId: FileId;
  input: Buffer;
  maxInputResponse: number;
  maxOutputResponse: number;
  flags: number;
}
export interface IoctlResponse {
  ctlCode: number;
  fileId: FileId;
  input: Buffer;
  output: Buffer;
  flags: number;
}

export function decodeIoctlRequest(element: Buffer): IoctlRequest {
  const r = bodyReader(element, 'IOCTL');
  r.structure(57, 'IOCTL request');
  r.u16();
  const ctlCode = r.u32();
  const fileId = readFileId(r);
  const inOff = r.u32();
  const inLen = checkBound(r.u32(), MAX_IOCTL_INPUT, 'IOCTL InputCount', r.pos - 4);
  const maxInputResponse = r.u32();
  r.u32(); // OutputOffset/OutputCount: MUST be 0 in requests (2.2.31), ignored
  r.u32();
  const maxOutputResponse = r.u32();
  const flags = r.u32();
  r.u32();
  return { ctlCode, fileId, input: r.slice(inOff, inLen, 'IOCTL input'), maxInputResponse, maxOutputResponse, flags };
}
export function encodeIoctlRequest(w: WireWriter, q: IoctlRequest): void {
  w.u16(57).u16(0).u32(q.ctlCode);
  writeFileId(w, q.fileId);
  w.u32(q.input.length ? 64 + 56 : 0).u32(q.input.length).u32(q.maxInputResponse).u32(0).u32(0).u32(q.maxOutputResponse).u32(q.flags).u32(0);
  w.bytes(q.input);
  if (q.input.length === 0) w.u8(0);
}
export function encodeIoctlResponse(w: WireWriter, p: IoctlResponse): void {
  w.u16(49).u16(0).u32(p.ctlCode);
  writeFileId(w, p.fileId);
  const inOff = 64 + 48;
  const outOff = inOff + p.input.length + ((8 - (p.input.length % 8)) % 8);
  w.u32(p.input.length ? inOff : 0).u32(p.input.length).u32(p.output.length ? outOff : 0).u32(p.output.length).u32(p.flags).u32(0);
  w.bytes(p.input);
  if (p.output.length) {
    w.align(8);
    w.bytes(p.output);
  }
}
export function decodeIoctlResponse(element: Buffer): IoctlResponse {
  const r = bodyReader(element, 'IOCTL response');
  r.structure(49, 'IOCTL response');
  r.u16();
  const ctlCode = r.u32();
  const fileId = readFileId(r);
  const inOff = r.u32();
  const inLen = r.u32();
  const outOff = r.u32();
  const outLen = r.u32();
  const flags = r.u32();
  return { ctlCode, fileId, input: r.slice(inOff, inLen, 'IOCTL input'), output: r.slice(outOff, outLen, 'IOCTL output'), flags };
}

/** FSCTL_VALIDATE_NEGOTIATE_INFO input (MS-SMB2 2.2.31.4): what the client says it negotiated (3.0 and 3.0.2). */
export interface ValidateNegotiateInfoRequest {
  capabilities: number;
  guid: Buffer;
  securityMode: number;
  dialects: number[];
}

/** Its output (2.2.32.6): what the server negotiated. */
export interface ValidateNegotiateInfoResponse {
  capabilities: number;
  guid: Buffer;
  securityMode: number;
  dialect: number;
}

export function decodeValidateNegotiateInfo(input: Buffer): ValidateNegotiateInfoRequest {
  const r = new WireReader(input);
  const capabilities = r.u32();
  const guid = r.bytes(16);
  const securityMode = r.u16();
  const n = r.u16();
  if (n === 0 || n > 64) throw new SmbDecodeError('bad-value', `VALIDATE_NEGOTIATE_INFO DialectCount ${n}`, 22);
  r.need(n * 2, 'dialects');
  const dialects: number[] = [];
  for (let i = 0; i < n; i++) dialects.push(r.u16());
  return { capabilities, guid, securityMode, dialects };
}

export function encodeValidateNegotiateInfo(q: ValidateNegotiateInfoRequest): Buffer {
  const w = new WireWriter(24 + q.dialects.length * 2);
  w.u32(q.capabilities).bytes(q.guid).u16(q.securityMode).u16(q.dialects.length);
  for (const d of q.dialects) w.u16(d);
  return Buffer.from(w.finish());
}

export function encodeValidateNegotiateInfoResponse(p: ValidateNegotiateInfoResponse): Buffer {
  return Buffer.from(new WireWriter(24).u32(p.capabilities).bytes(p.guid).u16(p.securityMode).u16(p.dialect).finish());
}

export function decodeValidateNegotiateInfoResponse(output: Buffer): ValidateNegotiateInfoResponse {
  const r = new WireReader(output);
  return { capabilities: r.u32(), guid: r.bytes(16), securityMode: r.u16(), dialect: r.u16() };
}

/**
 * MS-SMB2 3.3.5.15.12: the request must repeat exactly what the client's NEGOTIATE said —
 * capabilities, ClientGuid, security mode and dialect list — or the server drops the connection
 * (a man in the middle downgraded the negotiation). The caller passes the recorded NEGOTIATE.
 */
export function validateNegotiateMatches(q: ValidateNegotiateInfoRequest, negotiated: { capabilities: number; clientGuid: Buffer; securityMode: number; dialects: number[] }): boolean {
  return (
    q.capabilities === negotiated.capabilities &&
    q.guid.equals(negotiated.clientGuid) &&
    q.securityMode === negotiated.securityMode &&
    q.dialects.length === negotiated.dialects.length &&
    q.dialects.every((d, i) => d === negotiated.dialects[i])
  );
}

/** FSCTL_QUERY_NETWORK_INTERFACE_INFO output entries (2.2.32.5). */
export interface NetworkInterfaceInfo {
  ifIndex: number;
  /** RSS_CAPABLE 0x1, RDMA_CAPABLE 0x2. */
  capability: number;
  linkSpeed: bigint;
  /** IPv4 or IPv6 text form. */
  address: string;
}

const SOCKADDR_STORAGE = 128;

export function encodeNetworkInterfaceInfo(list: NetworkInterfaceInfo[]): Buffer {
  const w = new WireWriter(152 * list.length);
  list.forEach((n, i) => {
    w.u32(i === list.length - 1 ? 0 : 152).u32(n.ifIndex).u32(n.capability).u32(0).u64(n.linkSpeed);
    const start = w.len;
    if (n.address.includes(':')) {
      w.u16(0x17).u16(0).u32(0).bytes(ipv6Bytes(n.address)).u32(0);
    } else {
      w.u16(0x02).u16(0).bytes(Buffer.from(n.address.split('.').map(Number)));
    }
    w.zeros(SOCKADDR_STORAGE - (w.len - start));
  });
  return Buffer.from(w.finish());
}

export function decodeNetworkInterfaceInfo(b: Buffer): NetworkInterfaceInfo[] {
  const out: NetworkInterfaceInfo[] = [];
  let at = 0;
  for (;;) {
    if (out.length >= 256) throw new SmbDecodeError('too-long', 'more than 256 interfaces');
    const r = new WireReader(b, at);
    const next = r.u32();
    const ifIndex = r.u32();
    const capability = r.u32();
    r.u32();
    const linkSpeed = r.u64();
    const family = r.u16();
    r.u16();
    let address: string;
    if (family === 0x02) address = [...r.bytes(4)].join('.');
    else if (family === 0x17) {
      r.u32();
      const v6 = r.bytes(16);
      address = Array.from({ length: 8 }, (_, i) => v6.readUInt16BE(i * 2).toString(16)).join(':');
    } else throw new SmbDecodeError('bad-value', `address family ${family}`, at + 24);
    out.push({ ifIndex, capability, linkSpeed, address });
    if (next === 0) return out;
    if (next < 152 || next % 8 !== 0) throw new SmbDecodeError('bad-offset', `NETWORK_INTERFACE_INFO Next ${next}`, at);
    at += next;
  }
}

function ipv6Bytes(a: string): Buffer {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}
