import { describe, expect, it } from 'vitest';
import { KeptLru } from '../../src/util/kept-lru.ts';

// src/util/kept-lru.ts: an LRUCache whose deletes never empty it (lru-cache resets an emptied cache
// over all `max` slots). The placeholder must be invisible to the cache's users.
describe('KeptLru', () => {
  it('deletes the only entry and keeps working; size does not count the placeholder', () => {
    const c = new KeptLru<string, number>({ max: 4 }, '\0', -1);
    expect(c.size).toBe(0);
    for (let i = 0; i < 10; i++) {
      c.set(`k${i}`, i);
      expect(c.size).toBe(1);
      expect(c.get(`k${i}`)).toBe(i);
      expect(c.delete(`k${i}`)).toBe(true);
      expect(c.size).toBe(0);
      expect(c.get(`k${i}`)).toBeUndefined();
    }
    expect(c.delete('missing')).toBe(false);
    expect(c.delete('\0')).toBe(false);
  });

  it('evicts the placeholder first when full and puts it back when a delete would empty the cache', () => {
    const c = new KeptLru<string, number>({ max: 3 }, '\0', -1);
    for (const k of ['a', 'b', 'c']) c.set(k, 1);
    expect(c.has('\0')).toBe(false); // the least recently used went first
    expect(c.size).toBe(3);
    expect([...c.keys()].sort()).toEqual(['a', 'b', 'c']);
    c.delete('a');
    c.delete('b');
    c.delete('c');
    expect(c.size).toBe(0);
    expect(c.has('\0')).toBe(true);
  });

  it('keeps the placeholder across clear() and out of ttl expiry', async () => {
    const c = new KeptLru<string, number>({ max: 100, ttl: 5, ttlAutopurge: false }, '\0', -1);
    c.set('x', 1);
    c.clear();
    expect(c.size).toBe(0);
    c.set('y', 2);
    await new Promise((r) => setTimeout(r, 20));
    expect(c.get('y')).toBeUndefined(); // stale: gone, the cache stays usable
    expect(c.size).toBe(0);
    c.set('z', 3);
    expect(c.get('z')).toBe(3);
  });
});
