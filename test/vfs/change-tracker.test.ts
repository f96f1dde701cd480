/**
 * Change attributes (src/vfs/change-tracker.ts) on rows of a real metadata store: stable while the
 * backend stat is unchanged — across a reopen of the store (a restart) and for a row read again
 * from the store (an eviction) —, advanced by any difference in mtime, ctime, size or native id
 * (an outside change), advanced once by our own change and then re-learned without a second
 * advance, and REPLACED for another native id on identity backends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendStat } from '../../src/vfs/backend.ts';
import { ChangeTracker, REPLACED, initialChange } from '../../src/vfs/change-tracker.ts';
import { MetadataStore, type NodeRow } from '../../src/store/metadata-store.ts';

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

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(dir?: string): { store: MetadataStore; dir: string; t: ChangeTracker; row(name: string, st?: BackendStat): NodeRow } {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'portico-chg-'));
  if (!dir) dirs.push(d);
  const store = MetadataStore.open(d);
  const root = store.rootId('v');
  return { store, dir: d, t: new ChangeTracker(store), row: (name, st) => store.ensureChild('v', root, name, name, st && initialChange(st)) };
}

describe('ChangeTracker', () => {
  it('keeps a value while the stat is the same and advances on any signature difference', () => {
    const { store, t, row } = open();
    const r = row('f');
    const a = t.observe(r, stat(), false);
    expect(t.observe(r, stat({ atimeNs: 9_999n }), false)).toBe(a); // atime is not part of it
    let cur = stat();
    let last = a;
    for (const change of [{ mtimeNs: 1_001n }, { ctimeNs: 2_001n }, { size: 11 }, { nativeId: '1:3' }, { nativeId: undefined }] as Partial<BackendStat>[]) {
      cur = { ...cur, ...change };
      const v = t.observe(r, cur, false);
      expect(v).toBe(last + 1n);
      expect(t.observe(r, cur, false)).toBe(v);
      last = v;
    }
    store.close();
  });

  it('our own change advances once; the next stat is learned without another advance', () => {
    const { store, t, row } = open();
    const r = row('f', stat());
    const a = t.observe(r, stat(), true);
    const b = t.bump(r);
    expect(b).toBe(a + 1n);
    expect(t.observe(r, stat({ size: 99, mtimeNs: 5_000n }), true)).toBe(b);
    expect(t.observe(r, stat({ size: 99, mtimeNs: 5_000n }), true)).toBe(b);
    expect(t.observe(r, stat({ size: 100, mtimeNs: 5_000n }), true)).toBe(b + 1n);
    store.close();
  });

  it('does not move at a restart or when the row is read again from the store; moves for a change made while down', () => {
    const first = open();
    const r = first.row('f', stat());
    const v1 = first.t.observe(r, stat(), true);
    first.t.bump(r);
    const v2 = first.t.observe(r, stat({ size: 20 }), true);
    expect(v2).toBe(v1 + 1n);
    // Evicted: the same row read again from the store.
    expect(first.t.observe(first.store.getNode(r.id)!, stat({ size: 20 }), true)).toBe(v2);
    first.store.close();
    const second = open(first.dir);
    const again = second.store.getNode(r.id)!;
    expect(second.t.observe(again, stat({ size: 20 }), true)).toBe(v2);
    expect(second.t.observe(second.store.getNode(r.id)!, stat({ size: 21 }), true)).toBe(v2 + 1n);
    second.store.close();
  });

  it('reports another native id at a known name as REPLACED on identity backends only; expect() adopts it', () => {
    const { store, t, row } = open();
    const r = row('f', stat());
    expect(t.observe(r, stat({ nativeId: '9:9' }), true)).toBe(REPLACED);
    expect(t.observe(r, stat({ nativeId: '9:9' }), false)).toBe(2n);
    const q = row('g', stat());
    t.expect(q);
    expect(t.observe(q, stat({ nativeId: '7:7' }), true)).toBe(1n);
    expect(t.observe(q, stat({ nativeId: '7:8' }), true)).toBe(REPLACED);
    store.close();
  });
});
