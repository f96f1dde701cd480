/**
 * Change counters (src/vfs/change-tracker.ts): stable while the backend stat is unchanged, bumped
 * by any difference in mtime, ctime, size or native id (an outside change), bumped once by our own
 * change and then re-learned without a second bump, and never going back across restarts or
 * evictions.
 */
import { describe, expect, it } from 'vitest';
import type { BackendStat } from '../../src/vfs/backend.ts';
import { ChangeTracker } from '../../src/vfs/change-tracker.ts';

const stat = (o: Partial<BackendStat> = {}): BackendStat => ({
  name: 'f',
  type: 'file',
  size: 10,
  mtimeNs: 1_000n,
  ctimeNs: 2_000n,
  atimeNs: 3_000n,
  nativeId: '1:2',
  ...o,
});

describe('ChangeTracker', () => {
  it('keeps a value while the stat is the same and bumps on any signature difference', () => {
    const t = new ChangeTracker(1);
    const a = t.observe(1n, stat());
    expect(t.observe(1n, stat({ atimeNs: 9_999n }))).toBe(a); // atime is not part of it
    // Each field in turn, the others kept from the previous stat.
    let cur = stat();
    let last = a;
    for (const change of [{ mtimeNs: 1_001n }, { ctimeNs: 2_001n }, { size: 11 }, { nativeId: '1:3' }, { nativeId: undefined }] as Partial<BackendStat>[]) {
      cur = { ...cur, ...change };
      const v = t.observe(1n, cur);
      expect(v > last).toBe(true);
      expect(t.observe(1n, cur)).toBe(v);
      last = v;
    }
    expect(t.observe(2n, stat())).not.toBe(t.observe(1n, stat()));
  });

  it("our own change bumps once; the next stat is learned without another bump", () => {
    const t = new ChangeTracker(1);
    const a = t.observe(1n, stat());
    const b = t.bump(1n);
    expect(b > a).toBe(true);
    expect(t.observe(1n, stat({ size: 99, mtimeNs: 5_000n }))).toBe(b);
    expect(t.observe(1n, stat({ size: 99, mtimeNs: 5_000n }))).toBe(b);
    expect(t.observe(1n, stat({ size: 100, mtimeNs: 5_000n })) > b).toBe(true);
  });

  it('never goes back: a later boot generation starts above, an evicted entry comes back larger', () => {
    const first = new ChangeTracker(1, 2);
    const v1 = first.observe(1n, stat());
    first.observe(2n, stat());
    first.observe(3n, stat()); // evicts 1n (bound 2)
    expect(first.observe(1n, stat()) > v1).toBe(true);
    const second = new ChangeTracker(2);
    expect(second.observe(1n, stat()) > first.observe(1n, stat())).toBe(true);
  });
});
