/** IOCTL request and response (MS-SMB2 2.2.31, 2.2.32). Input and output are views of the message. */
import { WireWriter, readFileId, writeFileId, type FileId } from '../wire.ts';
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
