/**
 * The seal worker's fallback (protocols/smb/seal-worker.ts): when its thread dies, the jobs it held
 * fail (a sealed response half encrypted cannot be sent: that connection is cut), `canTake` turns
 * false for good, and the gateway encrypts and decrypts large messages in-process from then on:
 * an encrypted smbclient put and get of a file large enough for the worker still round-trip.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeCipherName } from '../../protocols/smb/crypto.ts';
import { Cipher } from '../../protocols/smb/messages/negotiate.ts';
import { SEAL_WORKER_MIN, SealWorker, sealWorker } from '../../protocols/smb/seal-worker.ts';
import { ALICE, HAVE_SMBCLIENT, smbclient, startSmb } from './gateway.ts';

const shared = (n: number): Buffer => {
  const b = Buffer.from(new SharedArrayBuffer(n));
  randomBytes(n).copy(b);
  return b;
};

describe('seal worker: a thread that dies', () => {
  it('fails the jobs it held and takes no more', async () => {
    const w = new SealWorker();
    const data = shared(SEAL_WORKER_MIN * 8);
    expect(w.canTake(data)).toBe(true);
    const job = w.seal(nodeCipherName(Cipher.AES_128_GCM), randomBytes(16), randomBytes(12), randomBytes(32), randomBytes(64), data);
    const settled = job.then(() => 'sealed', () => 'failed');
    await w.killForTest();
    // Either the job finished before the thread ended, or it failed: never a hang.
    expect(['sealed', 'failed']).toContain(await settled);
    expect(w.canTake(shared(SEAL_WORKER_MIN))).toBe(false);
  });
});

const work = mkdtempSync(join(tmpdir(), 'portico-seal-fallback-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!HAVE_SMBCLIENT)('gateway without its seal worker', () => {
  it('an encrypted put and get of 6 MiB round-trip in-process', async () => {
    const stack = await startSmb();
    try {
      await sealWorker.killForTest();
      expect(sealWorker.canTake(shared(SEAL_WORKER_MIN))).toBe(false);
      const big = randomBytes(6 * 1024 * 1024 + 123);
      writeFileSync(join(work, 'big'), big);
      for (const dialect of ['SMB3_11', 'SMB3_00']) {
        const r = await smbclient(['//127.0.0.1/disk', '-p', String(stack.smbPort), '-U', `${ALICE.name}%${ALICE.password}`, '-m', dialect, '--client-protection=encrypt', '-c', `put big b-${dialect}; get b-${dialect} back-${dialect}`], { cwd: work, timeoutMs: 120_000 });
        expect(r.code, r.out).toBe(0);
        expect(readFileSync(join(stack.diskDir, `b-${dialect}`)).equals(big)).toBe(true);
        expect(readFileSync(join(work, `back-${dialect}`)).equals(big)).toBe(true);
      }
    } finally {
      await stack.stop();
    }
  }, 180_000);
});
