import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decryptMessage, encryptMessage, nodeCipherName, transformHeader } from '../../protocols/smb/crypto.ts';
import { Cipher } from '../../protocols/smb/messages/negotiate.ts';
import { smbNative } from '../../protocols/smb/native.ts';
import { SEAL_WORKER_MIN, SealWorker } from '../../protocols/smb/seal-worker.ts';
import { runJob } from '../../protocols/smb/seal-thread.ts';

/** A copy of `b` in shared memory, as the connection's MessagePool holds large messages. */
function shared(b: Buffer): Buffer {
  const s = Buffer.from(new SharedArrayBuffer(b.length));
  b.copy(s);
  return s;
}

describe('seal worker: GCM of large messages in shared memory, in a worker thread', () => {
  it('takes only shared memory of at least SEAL_WORKER_MIN bytes', () => {
    const w = new SealWorker();
    expect(w.canTake(shared(randomBytes(SEAL_WORKER_MIN)))).toBe(true);
    expect(w.canTake(shared(randomBytes(SEAL_WORKER_MIN - 1)))).toBe(false);
    expect(w.canTake(randomBytes(SEAL_WORKER_MIN))).toBe(false);
  });

  it.each([Cipher.AES_128_GCM, Cipher.AES_256_GCM, Cipher.AES_128_CCM, Cipher.AES_256_CCM])('cipher %i: seals a response head and payload as encryptMessage does, opens it back, refuses a tampered one', async (cipher) => {
    const w = new SealWorker();
    const name = nodeCipherName(cipher);
    const key = randomBytes(cipher === Cipher.AES_256_GCM || cipher === Cipher.AES_256_CCM ? 32 : 16);
    const nonce = randomBytes(cipher === Cipher.AES_128_CCM || cipher === Cipher.AES_256_CCM ? 11 : 12);
    const head = randomBytes(80);
    const plain = randomBytes(SEAL_WORKER_MIN * 3 + 12_345); // several worker slices and a short last one
    const whole = encryptMessage(Buffer.concat([head, plain]), key, cipher, 5n, nonce);

    const header = transformHeader(head.length + plain.length, 5n, nonce);
    const payload = shared(plain);
    const sealed = await w.seal(name, key, nonce, header.subarray(20), head, payload);
    sealed.tag.copy(header, 4);
    expect(Buffer.concat([header, sealed.head, payload]).equals(whole)).toBe(true);

    // A received message in shared memory, decrypted where it lies.
    const received = shared(whole);
    const ct = received.subarray(52);
    expect(await w.open(name, key, nonce, received.subarray(20, 52), received.subarray(4, 20), ct)).toBe(true);
    expect(ct.equals(Buffer.concat([head, plain]))).toBe(true);

    const tampered = shared(whole);
    tampered[200_000]! ^= 1;
    expect(await w.open(name, key, nonce, tampered.subarray(20, 52), tampered.subarray(4, 20), tampered.subarray(52))).toBe(false);
    expect(decryptMessage(Buffer.from(whole), key, cipher)).toBeDefined();
  });
});

describe('seal worker jobs with and without the SMB native helper (in place in one OpenSSL call, or node:crypto slices copied back)', () => {
  const helper = smbNative();
  it.skipIf(!helper).each([Cipher.AES_128_GCM, Cipher.AES_256_GCM])('cipher %i: the same ciphertext, head and tag; both open either; a bad tag refused by both', (cipher) => {
    const name = nodeCipherName(cipher);
    const key = randomBytes(cipher === Cipher.AES_256_GCM ? 32 : 16);
    const nonce = randomBytes(12);
    const aad = randomBytes(32);
    const head = randomBytes(80);
    const plain = randomBytes(SEAL_WORKER_MIN * 2 + 777);
    const viaNative = shared(plain);
    const viaNode = shared(plain);
    const a = runJob({ id: 1, op: 'seal', cipher: name, key, nonce, aad, head, data: viaNative }, helper);
    const b = runJob({ id: 2, op: 'seal', cipher: name, key, nonce, aad, head, data: viaNode }, undefined);
    expect(a.ok && b.ok).toBe(true);
    expect(viaNative.equals(viaNode)).toBe(true);
    expect(viaNative.equals(plain)).toBe(false);
    expect(Buffer.from(a.head!).equals(Buffer.from(b.head!))).toBe(true);
    expect(Buffer.from(a.tag!).equals(Buffer.from(b.tag!))).toBe(true);
    // The head is sealed first: one ciphertext of head and payload, opened as one.
    const both = shared(Buffer.concat([Buffer.from(a.head!), viaNative]));
    const both2 = Buffer.from(both);
    const shared2 = shared(both2);
    expect(runJob({ id: 3, op: 'open', cipher: name, key, nonce, aad, tag: a.tag!, data: both }, undefined).ok).toBe(true);
    expect(runJob({ id: 4, op: 'open', cipher: name, key, nonce, aad, tag: a.tag!, data: shared2 }, helper).ok).toBe(true);
    expect(both.equals(Buffer.concat([head, plain]))).toBe(true);
    expect(shared2.equals(both)).toBe(true);
    const badTag = Buffer.from(a.tag!);
    badTag[0]! ^= 1;
    expect(runJob({ id: 5, op: 'open', cipher: name, key, nonce, aad, tag: badTag, data: shared(both2) }, helper).ok).toBe(false);
    expect(runJob({ id: 6, op: 'open', cipher: name, key, nonce, aad, tag: badTag, data: shared(both2) }, undefined).ok).toBe(false);
  });
});
