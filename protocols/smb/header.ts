/**
 * The SMB2 packet header (MS-SMB2 2.2.1) and compounded messages (MS-SMB2 3.3.5.2.7).
 *
 * One layout serves sync and async messages: the 8 bytes after MessageId are Reserved + TreeId,
 * or AsyncId when SMB2_FLAGS_ASYNC_COMMAND is set. In requests from 3.x clients the Status field
 * carries ChannelSequence; it is kept as `status` either way and read by the command layer.
 */
import { SmbDecodeError, WireReader, WireWriter, type Decoded, tryDecode } from './wire.ts';

export const HEADER_BYTES = 64;
export const PROTOCOL_SMB2 = 0x424d53fe; // 0xFE 'S' 'M' 'B' read little-endian
export const PROTOCOL_TRANSFORM = 0x424d53fd; // 0xFD 'S' 'M' 'B'
export const PROTOCOL_COMPRESSED = 0x424d53fc; // 0xFC 'S' 'M' 'B'
export const PROTOCOL_SMB1 = 0x424d53ff; // 0xFF 'S' 'M' 'B'

export const Command = {
  NEGOTIATE: 0x00,
  SESSION_SETUP: 0x01,
  LOGOFF: 0x02,
  TREE_CONNECT: 0x03,
  TREE_DISCONNECT: 0x04,
  CREATE: 0x05,
  CLOSE: 0x06,
  FLUSH: 0x07,
  READ: 0x08,
  WRITE: 0x09,
  LOCK: 0x0a,
  IOCTL: 0x0b,
  CANCEL: 0x0c,
  ECHO: 0x0d,
  QUERY_DIRECTORY: 0x0e,
  CHANGE_NOTIFY: 0x0f,
  QUERY_INFO: 0x10,
  SET_INFO: 0x11,
  OPLOCK_BREAK: 0x12,
} as const;
export const LAST_COMMAND = Command.OPLOCK_BREAK;

export const Flags = {
  SERVER_TO_REDIR: 0x0000_0001,
  ASYNC_COMMAND: 0x0000_0002,
  RELATED_OPERATIONS: 0x0000_0004,
  SIGNED: 0x0000_0008,
  PRIORITY_MASK: 0x0000_0070,
  DFS_OPERATIONS: 0x1000_0000,
  REPLAY_OPERATION: 0x2000_0000,
} as const;

export interface Smb2Header {
  creditCharge: number;
  /** NTSTATUS in responses; ChannelSequence (low 16 bits) + Reserved in 3.x requests. */
  status: number;
  command: number;
  /** CreditRequest in requests, CreditResponse in responses. */
  credits: number;
  flags: number;
  nextCommand: number;
  messageId: bigint;
  /** Sync messages: the tree. Async messages: 0. */
  treeId: number;
  /** Async messages: the AsyncId. Sync messages: 0n. */
  asyncId: bigint;
  sessionId: bigint;
  signature: Buffer;
}

export function isAsync(h: Smb2Header): boolean {
  return (h.flags & Flags.ASYNC_COMMAND) !== 0;
}

export function isResponse(h: Smb2Header): boolean {
  return (h.flags & Flags.SERVER_TO_REDIR) !== 0;
}

/** Decodes the 64-byte header at `at` (throws SmbDecodeError). */
export function readHeader(buf: Buffer, at = 0): Smb2Header {
  const r = new WireReader(buf, at);
  r.need(HEADER_BYTES, 'SMB2 header');
  const proto = r.u32();
  if (proto !== PROTOCOL_SMB2) throw new SmbDecodeError('bad-value', `protocol id 0x${proto.toString(16)}`, at);
  const size = r.u16();
  if (size !== 64) throw new SmbDecodeError('bad-value', `header StructureSize ${size}`, at + 4);
  const creditCharge = r.u16();
  const status = r.u32();
  const command = r.u16();
  const credits = r.u16();
  const flags = r.u32();
  const nextCommand = r.u32();
  const messageId = r.u64();
  let treeId = 0;
  let asyncId = 0n;
  if (flags & Flags.ASYNC_COMMAND) asyncId = r.u64();
  else {
    r.u32();
    treeId = r.u32();
  }
  const sessionId = r.u64();
  const signature = r.bytes(16);
  return { creditCharge, status, command, credits, flags, nextCommand, messageId, treeId, asyncId, sessionId, signature };
}

export function writeHeader(w: WireWriter, h: Smb2Header): void {
  w.u32(PROTOCOL_SMB2).u16(64).u16(h.creditCharge).u32(h.status).u16(h.command).u16(h.credits).u32(h.flags).u32(h.nextCommand).u64(h.messageId);
  if (h.flags & Flags.ASYNC_COMMAND) w.u64(h.asyncId);
  else w.u32(0).u32(h.treeId);
  w.u64(h.sessionId);
  if (h.signature.length !== 16) w.zeros(16);
  else w.bytes(h.signature);
}

/**
 * A response's header, written as writeHeader writes headerTemplate({ status, command, credits,
 * creditCharge, flags: SERVER_TO_REDIR | the request's RELATED_OPERATIONS, messageId, treeId and
 * sessionId of the request, ...over }) — the same bytes without the two objects.
 */
export function writeResponseHeader(w: WireWriter, req: Smb2Header, status: number, credits: number, over: Partial<Smb2Header>): void {
  const flags = over.flags ?? (Flags.SERVER_TO_REDIR | (req.flags & Flags.RELATED_OPERATIONS));
  w.u32(PROTOCOL_SMB2).u16(64).u16(over.creditCharge ?? req.creditCharge).u32(over.status ?? status).u16(over.command ?? req.command).u16(credits).u32(flags).u32(over.nextCommand ?? 0).u64(over.messageId ?? req.messageId);
  if (flags & Flags.ASYNC_COMMAND) w.u64(over.asyncId ?? 0n);
  else w.u32(0).u32(over.treeId ?? req.treeId);
  w.u64(over.sessionId ?? req.sessionId);
  const sig = over.signature;
  if (sig === undefined || sig.length !== 16) w.zeros(16);
  else w.bytes(sig);
}

/**
 * The signature field of a header made here: zeros, shared (writeHeader only copies it; a Buffer.alloc
 * per response was an ArrayBuffer of its own each time). Never written to.
 */
const NO_SIGNATURE = Buffer.alloc(16);

export function headerTemplate(over: Partial<Smb2Header> = {}): Smb2Header {
  return {
    creditCharge: 0,
    status: 0,
    command: 0,
    credits: 0,
    flags: 0,
    nextCommand: 0,
    messageId: 0n,
    treeId: 0,
    asyncId: 0n,
    sessionId: 0n,
    signature: NO_SIGNATURE,
    ...over,
  };
}

/** One element of a (possibly compounded) message. */
export interface CompoundElement {
  header: Smb2Header;
  /** The element's own bytes, header included, up to NextCommand (or the message's end): what is signed. */
  bytes: Buffer;
  /** The command body (after the 64-byte header, within `bytes`). */
  body: Buffer;
  /** This element's offset in the message (offsets inside a body count from its header). */
  offset: number;
}

/** The most elements one message may carry: bounds the work one frame can cause. */
export const DEFAULT_MAX_COMPOUND = 64;

/**
 * Splits a message into its compound elements. NextCommand must point forward, 8-byte aligned
 * (MS-SMB2 3.3.5.2.7: "NextCommand ... MUST be 8-byte aligned"), to a whole header inside the
 * message; the last element has 0. Whether each element is related is left to RelatedChain.
 */
export function splitCompound(msg: Buffer, maxElements = DEFAULT_MAX_COMPOUND): Decoded<CompoundElement[]> {
  return tryDecode(() => {
    const out: CompoundElement[] = [];
    let at = 0;
    for (;;) {
      if (out.length >= maxElements) throw new SmbDecodeError('too-long', `more than ${maxElements} compounded requests`, at);
      const header = readHeader(msg, at);
      const next = header.nextCommand;
      let end = msg.length;
      if (next !== 0) {
        if (next % 8 !== 0) throw new SmbDecodeError('bad-value', `NextCommand ${next} not 8-byte aligned`, at + 20);
        if (next < HEADER_BYTES || at + next > msg.length - HEADER_BYTES) throw new SmbDecodeError('bad-offset', `NextCommand ${next} outside the message`, at + 20);
        end = at + next;
      }
      const bytes = msg.subarray(at, end);
      out.push({ header, bytes, body: bytes.subarray(HEADER_BYTES), offset: at });
      if (next === 0) return out;
      at = end;
    }
  });
}

/**
 * The rules that tie a related compound element to the one before (MS-SMB2 3.3.5.2.7.2): it
 * runs with the SessionId, TreeId and FileId of the previous element (the FileId the previous
 * request named or created, used where the request sends 0xFFFF...FF), and when the previous
 * element failed, every following related element fails with the same status. The first element
 * may not be related (Windows answers STATUS_INVALID_PARAMETER); an unrelated element starts a
 * fresh chain.
 */
export class RelatedChain {
  private sessionId = 0n;
  private treeId = 0;
  private fileId: { persistent: bigint; volatile: bigint } | undefined;
  private failedStatus = 0;
  private index = 0;
  private command = -1;

  /**
   * The effective ids for the next element, or the status it must fail with without running:
   * INVALID_PARAMETER for a related first element, the previous failure for a related element
   * after one.
   */
  next(h: Smb2Header): { sessionId: bigint; treeId: number; inherit: boolean; failWith?: number } {
    const related = (h.flags & Flags.RELATED_OPERATIONS) !== 0;
    const first = this.index++ === 0;
    this.command = h.command;
    if (!related) {
      this.sessionId = h.sessionId;
      this.treeId = h.treeId;
      this.fileId = undefined;
      this.failedStatus = 0;
      return { sessionId: h.sessionId, treeId: h.treeId, inherit: false };
    }
    if (first) {
      // Refused, but its ids stay the chain's: the related elements after it fail the same way
      // (INVALID_PARAMETER) on its session, not as a missing session (smbtorture smb2.compound.invalid1).
      this.sessionId = h.sessionId;
      this.treeId = h.treeId;
      return { sessionId: h.sessionId, treeId: h.treeId, inherit: false, failWith: 0xc000_000d };
    }
    if (this.failedStatus !== 0) return { sessionId: this.sessionId, treeId: this.treeId, inherit: true, failWith: this.failedStatus };
    return { sessionId: this.sessionId, treeId: this.treeId, inherit: true };
  }

  /** Records the outcome of the element just run: its status, and the FileId it named or created. */
  done(status: number, fileId?: { persistent: bigint; volatile: bigint }, ids?: { sessionId: bigint; treeId: number }): void {
    // Errors stop the chain when they leave it without an open: a failed CREATE, or any failure
    // before the chain has a FileId (informational/warning statuses such as BUFFER_OVERFLOW never
    // do). A failure after the open, as a SET_INFO refused in CREATE + SET_INFO + CLOSE, leaves the
    // CLOSE to run: the Linux cifs client's rmdir and rename compounds rely on it (Samba and
    // Windows run it), and a CLOSE failed unrun would leak the open.
    if (status >>> 30 === 3 && (this.command === Command.CREATE || this.fileId === undefined)) this.failedStatus = status;
    if (fileId) this.fileId = fileId;
    if (ids) {
      this.sessionId = ids.sessionId;
      this.treeId = ids.treeId;
    }
  }

  /** The FileId a related element's 0xFFFF...FF stands for, if the chain has one. */
  currentFileId(): { persistent: bigint; volatile: bigint } | undefined {
    return this.fileId;
  }
}

/**
 * Builds a compound response (or request) from elements: each is padded to 8 bytes and its
 * header's NextCommand patched, the last left at 0 (MS-SMB2 3.3.4.1.3). Elements are whole
 * messages (header + body) with NextCommand 0; they are copied. Signing is per element and
 * must happen after this (the padding is part of the signed bytes).
 */
export function joinCompound(elements: Buffer[]): { message: Buffer; offsets: number[]; lengths: number[] } {
  const offsets: number[] = [];
  const lengths: number[] = [];
  let total = 0;
  elements.forEach((e, i) => {
    offsets.push(total);
    const len = i === elements.length - 1 ? e.length : e.length + ((8 - (e.length % 8)) % 8);
    lengths.push(len);
    total += len;
  });
  const out = Buffer.alloc(total);
  elements.forEach((e, i) => {
    e.copy(out, offsets[i]!);
    if (i < elements.length - 1) out.writeUInt32LE(lengths[i]!, offsets[i]! + 20);
  });
  return { message: out, offsets, lengths };
}
