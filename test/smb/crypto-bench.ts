/**
 * Throughput of the SMB crypto on this machine (not part of the tests): `node test/smb/crypto-bench.ts`.
 * Signing and encrypting 1 MiB messages (a large READ response), and decoding typical requests.
 * Figures are the median of 5 rounds of 40 operations each.
 */
import { randomBytes } from 'node:crypto';
import { computeSignature, decryptMessage, encryptMessage } from '../../protocols/smb/crypto.ts';
import { Cipher, SigningAlgorithm } from '../../protocols/smb/messages/negotiate.ts';
import { decodeSessionSetupRequest } from '../../protocols/smb/messages/session-setup.ts';
import { decodeNegotiateRequest } from '../../protocols/smb/messages/negotiate.ts';
import { decodeWriteRequest, encodeWriteRequest } from '../../protocols/smb/messages/file-ops.ts';
import { splitCompound, Command } from '../../protocols/smb/header.ts';
import { NEG_REQ, SS_REQ2 } from './fixtures/ms-smb311.ts';
import { element } from './helpers.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function bench(name: string, bytes: number, fn: () => void, n = 40): void {
  for (let i = 0; i < 5; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    rounds.push((performance.now() - t0) / n);
  }
  const ms = median(rounds);
  const rate = bytes ? `${((bytes / (1 << 20)) / (ms / 1000)).toFixed(0).padStart(6)} MiB/s` : `${(1000 / ms).toFixed(0).padStart(8)} ops/s`;
  console.log(`${name.padEnd(40)} ${rate}  ${(ms * 1000).toFixed(1).padStart(8)} µs`);
}

const msg = randomBytes(1 << 20);
msg.writeUInt32LE(0x424d53fe, 0);
const k16 = randomBytes(16);
const k32 = randomBytes(32);
bench('sign 1 MiB HMAC-SHA256', msg.length, () => computeSignature(msg, k16, SigningAlgorithm.HMAC_SHA256));
bench('sign 1 MiB AES-CMAC', msg.length, () => computeSignature(msg, k16, SigningAlgorithm.AES_CMAC));
bench('sign 1 MiB AES-GMAC', msg.length, () => computeSignature(msg, k16, SigningAlgorithm.AES_GMAC));
for (const [name, c, k, nl] of [['AES-128-CCM', Cipher.AES_128_CCM, k16, 11], ['AES-128-GCM', Cipher.AES_128_GCM, k16, 12], ['AES-256-CCM', Cipher.AES_256_CCM, k32, 11], ['AES-256-GCM', Cipher.AES_256_GCM, k32, 12]] as const) {
  const nonce = randomBytes(nl);
  bench(`encrypt 1 MiB ${name}`, msg.length, () => encryptMessage(msg, k, c, 1n, nonce));
  const e = encryptMessage(msg, k, c, 1n, nonce);
  bench(`decrypt 1 MiB ${name}`, msg.length, () => decryptMessage(e, k, c));
}
const write = element(Command.WRITE, (w) => encodeWriteRequest(w, { offset: 0n, fileId: { persistent: 1n, volatile: 1n }, channel: 0, remainingBytes: 0, flags: 0, data: msg }));
bench('split + decode a 1 MiB WRITE (zero copy)', 0, () => {
  const s = splitCompound(write);
  if (s.ok) decodeWriteRequest(s.value[0]!.bytes);
}, 2000);
bench('decode Windows NEGOTIATE (3.1.1 contexts)', 0, () => decodeNegotiateRequest(NEG_REQ), 20000);
bench('decode Windows SESSION_SETUP (AUTHENTICATE)', 0, () => decodeSessionSetupRequest(SS_REQ2), 20000);
