import { describe, expect, it } from 'vitest';
import { pooledSlabs, releaseSent, takeReadBuffer } from '../../protocols/nfs/read-buffers.ts';

describe('READ buffers', () => {
  it('reuses a slab once the reply holding it was sent, and only then', () => {
    const a = takeReadBuffer(1024 * 1024);
    const b = takeReadBuffer(200 * 1024);
    expect(b.buffer).not.toBe(a.buffer);
    const before = pooledSlabs();
    // A reply's chunks: a small header and the data by reference.
    releaseSent([Buffer.alloc(64), a]);
    expect(pooledSlabs()).toBe(before + 1);
    const c = takeReadBuffer(300 * 1024);
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(300 * 1024);
    // Sent twice (it cannot be, but a second release must not put the slab on the list twice).
    releaseSent([a]);
    releaseSent([c]);
    releaseSent([c]);
    expect(pooledSlabs()).toBe(before + 1);
    releaseSent([b]);
  });

  it('leaves small and oversized buffers to the allocator', () => {
    const small = takeReadBuffer(4096);
    const before = pooledSlabs();
    releaseSent([small, Buffer.alloc(2 * 1024 * 1024)]);
    expect(pooledSlabs()).toBe(before);
  });
});
