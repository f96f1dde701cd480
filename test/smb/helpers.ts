/** Builders for SMB2 messages in tests: a header plus a body written by an encoder. */
import { headerTemplate, writeHeader, type Smb2Header } from '../../protocols/smb/header.ts';
import { WireWriter } from '../../protocols/smb/wire.ts';

export function element(command: number, body: (w: WireWriter) => void, over: Partial<Smb2Header> = {}): Buffer {
  const w = new WireWriter(256);
  writeHeader(w, headerTemplate({ command, credits: 1, messageId: 7n, ...over }));
  body(w);
  return Buffer.from(w.finish());
}

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
