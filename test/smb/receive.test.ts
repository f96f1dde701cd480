/**
 * The SMB server's two ways of reading a connection (server.ts receiveInPlace): into its own
 * buffers — a 64 KiB read buffer, or straight into the large message being received — and, where
 * the accepted socket's handle cannot be taken over, through 'data' events. Both carry a large put
 * and get byte for byte, signed and encrypted (8 MiB WRITEs and READs, spanning many reads; GCM and
 * CCM, sealed and opened by the seal worker), with smbclient against the real gateway's sessions.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb, type SmbStack } from './gateway.ts';
import { SmbServer } from '../../protocols/smb/server/server.ts';

describe.skipIf(!HAVE_SMBCLIENT)('SMB server: receiving in place and through data events', () => {
  let stack: SmbStack;
  let work: string;
  let fallback: SmbServer;
  let fallbackPort = 0;
  const body = randomBytes(24 * 1024 * 1024 + 12_345);

  beforeAll(async () => {
    stack = await startSmb();
    work = mkdtempSync(join(tmpdir(), 'portico-smbrecv-'));
    writeFileSync(join(work, 'big'), body);
    fallback = new SmbServer({ sessions: stack.smb.server!.sessions, receiveInPlace: false });
    fallbackPort = (await fallback.listen(0, '127.0.0.1')).port;
  });
  afterAll(async () => {
    await fallback?.close();
    await stack?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  // SMB3_11 encrypts with AES-128-GCM, SMB3_00 with AES-128-CCM: the seal worker's two ways (seal-worker.ts).
  for (const way of ['in place', 'data events'] as const) {
    for (const [protection, dialect] of [['sign', 'SMB3_11'], ['encrypt', 'SMB3_11'], ['encrypt', 'SMB3_00']] as const) {
      it(`${way}, ${protection} ${dialect}: a 24 MiB put and get round-trip byte for byte`, async () => {
        const port = way === 'in place' ? stack.smbPort : fallbackPort;
        const name = `r-${way === 'in place' ? 'p' : 'd'}-${protection}-${dialect}`;
        rmSync(join(work, name), { force: true });
        const r = await smbclient(['//127.0.0.1/disk', '-p', String(port), '-U', `${ALICE.name}%${ALICE.password}`, '-m', dialect, `--client-protection=${protection}`, '-c', `put big ${name}; get ${name} ${name}; rm ${name}`], { cwd: work, timeoutMs: 120_000 });
        expect(r.out).not.toMatch(/NT_STATUS_/);
        expect(r.code).toBe(0);
        expect(readFileSync(join(work, name)).equals(body)).toBe(true);
      }, 150_000);
    }
  }
});
