/**
 * FoldedIndex.listed with the kept listing a readdir pass came from (ListingCache.page's source):
 * a pass over the same kept listing as the installed index renews that index instead of filling a
 * new one, and what it answers is what a rebuild would answer.
 */
import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { FoldedIndex } from '../../src/vfs/folded-index.ts';
import type { BackendStat, ListPage } from '../../src/vfs/backend.ts';

const stat = (name: string, type: 'file' | 'dir' = 'file'): BackendStat => ({ name, type, size: 0, mtimeNs: 0n, ctimeNs: 0n, atimeNs: 0n });
const fold = (n: string): string => n.toLowerCase();

/** Pages of 2 over `names`, as Vfs.readdir gives them to the index. */
function pass(ix: FoldedIndex, names: string[], source: object | undefined): void {
  const entries = names.map((n) => stat(n, n.startsWith('D') ? 'dir' : 'file'));
  for (let i = 0; i < entries.length; i += 2) {
    const page: ListPage = { entries: entries.slice(i, i + 2) };
    if (i + 2 < entries.length) page.next = entries[i + 1]!.name;
    ix.listed('/d', i === 0 ? undefined : entries[i - 1]!.name, page, page.entries.map((e) => fold(e.name)), source);
  }
}

describe('folded index renewed by a pass over the same kept listing', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
  });
  afterEach(() => vi.useRealTimers());

  it('renews the installed index: it answers past its first lifetime, as a rebuild would', () => {
    const ix = new FoldedIndex(fold, { ttlMs: 1000 });
    const src = {};
    pass(ix, ['Apple', 'Dir', 'pear'], src);
    expect(ix.peek('/d', 'apple')).toEqual({ name: 'Apple', dir: false });
    vi.setSystemTime(1_000_800);
    pass(ix, ['Apple', 'Dir', 'pear'], src);
    vi.setSystemTime(1_001_500); // past the first pass's lifetime, within the second's
    expect(ix.peek('/d', 'dir')).toEqual({ name: 'Dir', dir: true });
    expect(ix.peek('/d', 'missing')).toBeNull();
    vi.setSystemTime(1_002_000);
    expect(ix.peek('/d', 'apple')).toBeUndefined();
  });

  it('keeps Portico changes made during a renewing pass', () => {
    const ix = new FoldedIndex(fold, { ttlMs: 1000 });
    const src = {};
    pass(ix, ['a', 'b', 'c'], src);
    const entries = ['a', 'b', 'c'].map((n) => stat(n));
    ix.listed('/d', undefined, { entries: entries.slice(0, 2), next: 'b' }, ['a', 'b'], src);
    ix.added('/d', 'New', false);
    ix.removed('/d', 'a');
    ix.listed('/d', 'b', { entries: entries.slice(2) }, ['c'], src);
    expect(ix.peek('/d', 'new')).toEqual({ name: 'New', dir: false });
    expect(ix.peek('/d', 'a')).toBeNull();
  });

  it('does not renew an index forgotten during the pass, nor one from another listing', () => {
    const ix = new FoldedIndex(fold, { ttlMs: 1000 });
    const src = {};
    pass(ix, ['a', 'b', 'c'], src);
    const entries = ['a', 'b', 'c'].map((n) => stat(n));
    ix.listed('/d', undefined, { entries: entries.slice(0, 2), next: 'b' }, ['a', 'b'], src);
    ix.forget('/d'); // an outside change reported
    ix.listed('/d', 'b', { entries: entries.slice(2) }, ['c'], src);
    expect(ix.peek('/d', 'a')).toBeUndefined();
    // Built again from a new listing: its names, not the old ones.
    pass(ix, ['x', 'y'], {});
    expect(ix.peek('/d', 'x')).toEqual({ name: 'x', dir: false });
    expect(ix.peek('/d', 'a')).toBeNull();
    // Pages from a backend (no kept listing) build a new index too.
    pass(ix, ['z'], undefined);
    expect(ix.peek('/d', 'z')).toEqual({ name: 'z', dir: false });
    expect(ix.peek('/d', 'x')).toBeNull();
  });

  it('a pass whose pages change source midway is not a renewal', () => {
    const ix = new FoldedIndex(fold, { ttlMs: 1000 });
    const src = {};
    pass(ix, ['a', 'b', 'c'], src);
    const entries = ['a', 'b', 'q'].map((n) => stat(n));
    ix.listed('/d', undefined, { entries: entries.slice(0, 2), next: 'b' }, ['a', 'b'], src);
    ix.listed('/d', 'b', { entries: entries.slice(2) }, ['q'], {});
    // The renewal was abandoned: the installed index is the first one, not renewed.
    expect(ix.peek('/d', 'c')).toEqual({ name: 'c', dir: false });
    vi.setSystemTime(1_001_100);
    expect(ix.peek('/d', 'c')).toBeUndefined();
  });
});
