import { describe, expect, it } from 'vitest';
import { md4, ntHash } from '../../src/auth/md4.ts';

describe('md4 (RFC 1320 appendix A.5)', () => {
  const vectors: [string, string][] = [
    ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
    ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
    ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
    ['message digest', 'd9130a8164549fe818874806e1c7014b'],
    ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
    ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
  ];
  for (const [input, digest] of vectors) {
    it(`MD4(${JSON.stringify(input)})`, () => {
      expect(md4(Buffer.from(input, 'ascii')).toString('hex')).toBe(digest);
    });
  }

  it('pads correctly around the 56-byte boundary (one vs two blocks)', () => {
    // Same input via a Uint8Array that is not a Buffer; lengths 55/56/64 exercise the padding edge cases.
    for (const n of [55, 56, 63, 64, 65]) {
      const d = md4(new Uint8Array(n).fill(0x61));
      expect(d).toHaveLength(16);
      expect(md4(Buffer.alloc(n, 'a')).equals(d)).toBe(true);
    }
    expect(md4(Buffer.alloc(55, 'a')).equals(md4(Buffer.alloc(56, 'a')))).toBe(false);
  });
});

describe('ntHash', () => {
  it('is MD4 of the UTF-16LE password', () => {
    expect(ntHash('password').toString('hex')).toBe('8846f7eaee8fb117ad06bdd830b7586c');
    expect(ntHash('').toString('hex')).toBe('31d6cfe0d16ae931b73c59d7e0c089c0');
    // [MS-NLMP] §4.2.2.1.2 NTOWFv1("Password").
    expect(ntHash('Password').toString('hex')).toBe('a4f49c406510bdcab6824ee7c30fd852');
  });
});
