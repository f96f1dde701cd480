/** TREE_CONNECT request and response (MS-SMB2 2.2.9, 2.2.10). */
import { SmbDecodeError, WireWriter, utf16 } from '../wire.ts';
import { bodyReader, checkBound } from './body.ts';

/** \\server\share in UTF-16: Windows limits the server name to 255 and the share to 80 characters. */
export const MAX_TREE_PATH_BYTES = 1024;

export const TreeConnectFlags = { CLUSTER_RECONNECT: 0x1, REDIRECT_TO_OWNER: 0x2, EXTENSION_PRESENT: 0x4 } as const;
export const ShareType = { DISK: 0x01, PIPE: 0x02, PRINT: 0x03 } as const;
export const ShareFlags = {
  MANUAL_CACHING: 0x0000,
  AUTO_CACHING: 0x0010,
  VDO_CACHING: 0x0020,
  NO_CACHING: 0x0030,
  DFS: 0x0001,
  ACCESS_BASED_DIRECTORY_ENUM: 0x0800,
  ENCRYPT_DATA: 0x8000,
} as const;

export interface TreeConnectRequest {
  flags: number;
  /** "\\server\share" as sent. */
  path: string;
}

export interface TreeConnectResponse {
  shareType: number;
  shareFlags: number;
  capabilities: number;
  maximalAccess: number;
}

export function decodeTreeConnectRequest(element: Buffer): TreeConnectRequest {
  const r = bodyReader(element, 'TREE_CONNECT');
  r.structure(9, 'TREE_CONNECT request');
  const flags = r.u16();
  const off = r.u16();
  const len = checkBound(r.u16(), MAX_TREE_PATH_BYTES, 'tree path', r.pos - 2);
  // 3.1.1 with the extension: PathOffset counts from the extension (2.2.9.1), which a client sends
  // only for remoted identity (not supported); refuse it rather than misread the path.
  if (flags & TreeConnectFlags.EXTENSION_PRESENT) throw new SmbDecodeError('bad-value', 'TREE_CONNECT extension not supported', 66);
  return { flags, path: utf16(r.slice(off, len, 'tree path'), 'tree path') };
}

export function encodeTreeConnectRequest(w: WireWriter, q: TreeConnectRequest): void {
  const path = Buffer.from(q.path, 'utf16le');
  w.u16(9).u16(q.flags).u16(64 + 8).u16(path.length).bytes(path);
}

export function encodeTreeConnectResponse(w: WireWriter, p: TreeConnectResponse): void {
  w.u16(16).u8(p.shareType).u8(0).u32(p.shareFlags).u32(p.capabilities).u32(p.maximalAccess);
}

export function decodeTreeConnectResponse(element: Buffer): TreeConnectResponse {
  const r = bodyReader(element, 'TREE_CONNECT response');
  r.structure(16, 'TREE_CONNECT response');
  const shareType = r.u8();
  r.u8();
  return { shareType, shareFlags: r.u32(), capabilities: r.u32(), maximalAccess: r.u32() };
}
