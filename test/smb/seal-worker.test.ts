import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decryptMessage, encryptMessage, nodeCipherName, transformHeader } from '../../protocols/smb/crypto.ts';
import { Cipher } from '../../protocols/smb/messages/negotiate.ts';
import { SEAL_WORKER_MIN, SealWorker } from '../../protocols/smb/seal-worker.ts';

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
