/**
 * AsyncTable.intercept (protocols/smb/server/async.ts) runs in the socket's data handler on every
 * message: whatever the bytes, it returns a boolean and never throws; only a lone, well-formed
 * CANCEL is taken (and then never answered), anything else is left to the connection's queue.
 */
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { describe, expect, it } from 'vitest';
import { Command, Flags, headerTemplate, writeHeader } from '../../protocols/smb/header.ts';
import { WireWriter } from '../../protocols/smb/wire.ts';
import { encryptMessage } from '../../protocols/smb/crypto.ts';
import { AsyncTable } from '../../protocols/smb/server/async.ts';
import type { Conn, SmbServer, SmbSession } from '../../protocols/smb/server/server.ts';

function cancel(over: Record<string, unknown> = {}): Buffer {
  const w = new WireWriter(128);
  writeHeader(w, headerTemplate({ command: Command.CANCEL, messageId: 5n, sessionId: 0x1000n, ...over }));
  w.u16(4).u16(0);
  return Buffer.from(w.finish());
}

function table(): AsyncTable {
  const conn = { sessions: new Map(), cipher: 0x0002, signingAlgorithm: 1, seqLow: 0n, seqHigh: 100n } as unknown as Conn;
  return new AsyncTable({} as SmbServer, conn);
}

describe('AsyncTable.intercept', () => {
  it('takes a lone CANCEL, sync or async, and leaves other commands, responses and compounds', () => {
    const t = table();
    expect(t.intercept(cancel())).toBe(true);
    expect(t.takeCancelled(5n)).toBe(true); // remembered for a request not started yet
    expect(t.intercept(cancel({ flags: Flags.ASYNC_COMMAND, asyncId: 9n }))).toBe(true);
    expect(t.intercept(cancel({ command: Command.ECHO }))).toBe(false);
    expect(t.intercept(cancel({ flags: Flags.SERVER_TO_REDIR }))).toBe(false);
    expect(t.intercept(cancel({ nextCommand: 72 }))).toBe(false);
  });

  it('any bytes: a boolean, never a throw', () => {
    const seeds = [cancel(), cancel({ flags: Flags.ASYNC_COMMAND | Flags.SIGNED, asyncId: 3n }), Buffer.from([0xfd, 0x53, 0x4d, 0x42])];
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.uint8Array({ maxLength: 200 }), fc.nat(), (seed, noise, cut) => {
        const t = table();
        const mutated = Buffer.concat([seed.subarray(0, cut % (seed.length + 1)), Buffer.from(noise)]);
        const plain = Buffer.from(noise);
        for (const m of [mutated, plain]) expect(typeof t.intercept(m)).toBe('boolean');
      }),
      { numRuns: runs(2000) },
    );
  });

  it('an encrypted request that is not a CANCEL: its plaintext is handed to the queue once, for the session it was decrypted under', () => {
    const key = Buffer.alloc(16, 7);
    const sess = { id: 0x1000n, keys: { decryptionKey: key } } as unknown as SmbSession;
    const other = { id: 0x1000n, keys: { decryptionKey: key } } as unknown as SmbSession;
    const conn = { sessions: new Map([[0x1000n, sess]]), cipher: 0x0002, signingAlgorithm: 1, seqLow: 0n, seqHigh: 100n } as unknown as Conn;
    const t = new AsyncTable({} as SmbServer, conn);
    const echo = cancel({ command: Command.ECHO });
    const sealed = encryptMessage(echo, key, 0x0002, 0x1000n, Buffer.alloc(12, 1));
    expect(t.intercept(sealed)).toBe(false);
    expect(t.takePlaintext(sealed, sess)).toEqual(echo);
    expect(t.takePlaintext(sealed, sess)).toBeUndefined(); // once
    // Another session object (the first logged off, a new one under the same id): decrypted again by the caller.
    expect(t.intercept(sealed)).toBe(false);
    expect(t.takePlaintext(sealed, other)).toBeUndefined();
    // A sealed CANCEL is taken, nothing kept for the queue.
    const sealedCancel = encryptMessage(cancel(), key, 0x0002, 0x1000n, Buffer.alloc(12, 2));
    expect(t.intercept(sealedCancel)).toBe(true);
    expect(t.takePlaintext(sealedCancel, sess)).toBeUndefined();
  });
});
