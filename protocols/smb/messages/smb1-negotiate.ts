/**
 * The SMB1 NEGOTIATE a client sends when it does not yet know the server speaks SMB2 (MS-SMB2
 * 3.3.5.3.1, MS-CIFS 2.2.4.52.1). Parsed just enough to find the dialect strings: "SMB 2.002"
 * gets an SMB2 NEGOTIATE response for 2.0.2, "SMB 2.???" one with the wildcard 0x02FF (the client
 * then sends an SMB2 NEGOTIATE). Any other SMB1 command, or no SMB2 dialect, is not answered:
 * Portico speaks no SMB1, and the connection is closed.
 */
import { SmbDecodeError, WireReader } from '../wire.ts';
import { PROTOCOL_SMB1 } from '../header.ts';

const SMB1_HEADER = 32;
const SMB_COM_NEGOTIATE = 0x72;
const MAX_DIALECT_STRINGS = 64;

export interface Smb1Negotiate {
  dialects: string[];
  /** Whether "SMB 2.002" / "SMB 2.???" were offered. */
  smb2002: boolean;
  smb2Wildcard: boolean;
}

export function isSmb1(message: Buffer): boolean {
  return message.length >= 4 && message.readUInt32LE(0) === PROTOCOL_SMB1;
}

export function decodeSmb1Negotiate(message: Buffer): Smb1Negotiate {
  const r = new WireReader(message);
  r.need(SMB1_HEADER + 3, 'SMB1 NEGOTIATE');
  if (r.u32() !== PROTOCOL_SMB1) throw new SmbDecodeError('bad-value', 'not an SMB1 message');
  const command = r.u8();
  if (command !== SMB_COM_NEGOTIATE) throw new SmbDecodeError('bad-value', `SMB1 command 0x${command.toString(16)}`, 4);
  r.pos = SMB1_HEADER;
  const wordCount = r.u8();
  r.skip(wordCount * 2);
  const byteCount = r.u16();
  const data = r.bytes(byteCount, 'SMB1 dialect bytes');
  // Each dialect: 0x02 (buffer format) then a NUL-terminated OEM string.
  const dialects: string[] = [];
  let at = 0;
  while (at < data.length) {
    if (dialects.length >= MAX_DIALECT_STRINGS) throw new SmbDecodeError('too-long', 'too many SMB1 dialects', SMB1_HEADER + 3 + at);
    if (data[at] !== 0x02) throw new SmbDecodeError('bad-value', `SMB1 dialect buffer format ${data[at]}`, SMB1_HEADER + 3 + at);
    const nul = data.indexOf(0, at + 1);
    if (nul < 0) throw new SmbDecodeError('short', 'unterminated SMB1 dialect string', SMB1_HEADER + 3 + at);
    dialects.push(data.toString('latin1', at + 1, nul));
    at = nul + 1;
  }
  return { dialects, smb2002: dialects.includes('SMB 2.002'), smb2Wildcard: dialects.includes('SMB 2.???') };
}

/**
 * The dialect of the SMB2 NEGOTIATE response that answers an SMB1 one (MS-SMB2 3.3.5.3.1):
 * 0x02FF when "SMB 2.???" was offered (the client then sends an SMB2 NEGOTIATE and the real
 * negotiation happens there), 0x0202 when only "SMB 2.002" was, undefined when no SMB2 dialect was
 * (the connection is closed: Portico speaks no SMB1). The response carries MessageId 0 and no
 * negotiate contexts, and does not enter the preauth hash (only SMB2 NEGOTIATEs do).
 */
export function smb2DialectForSmb1(n: Smb1Negotiate): number | undefined {
  if (n.smb2Wildcard) return 0x02ff;
  if (n.smb2002) return 0x0202;
  return undefined;
}

/** Test/client side: an SMB1 NEGOTIATE offering these dialects. */
export function encodeSmb1Negotiate(dialects: string[]): Buffer {
  const data = Buffer.concat(dialects.map((d) => Buffer.concat([Buffer.from([2]), Buffer.from(d, 'latin1'), Buffer.from([0])])));
  const msg = Buffer.alloc(SMB1_HEADER + 3 + data.length);
  msg.writeUInt32LE(PROTOCOL_SMB1, 0);
  msg[4] = SMB_COM_NEGOTIATE;
  msg[9] = 0x18; // flags: case-insensitive paths, canonical
  msg.writeUInt16LE(0xc853, 10); // flags2: unicode, NT status, extended security, long names
  msg[SMB1_HEADER] = 0;
  msg.writeUInt16LE(data.length, SMB1_HEADER + 1);
  data.copy(msg, SMB1_HEADER + 3);
  return msg;
}
