import { afterEach, describe, expect, it, vi } from 'vitest';
import { isVfsError } from '../../src/vfs/errors.ts';
import { LockManager, MAX_OFFSET, WHOLE_FILE } from '../../src/locks/lock-manager.ts';
import type { LockEvent, LockInfo, LockKind, LockOwner, LockRequest, LockStyle } from '../../src/locks/lock-manager.ts';
import { DurableLocks } from '../../src/locks/lock-persistence.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const F = 100n;
const r = (start: number | bigint, end: number | bigint) => ({ start: BigInt(start), end: BigInt(end) });
const nfs = (id: string): LockOwner => ({ protocol: 'nfs', id });
const smb = (id: string): LockOwner => ({ protocol: 'smb', id });
const dav = (id: string): LockOwner => ({ protocol: 'webdav', id, principal: id });
const A = nfs('c1:a');
const B = nfs('c1:b');
const C = nfs('c2:c');

function req(owner: LockOwner, kind: LockKind, range = WHOLE_FILE, style: LockStyle = 'posix', extra: Partial<LockRequest> = {}): LockRequest {
  return { fileId: F, owner, kind, style, range, ...extra };
}

async function code(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
    return undefined;
  } catch (e) {
    if (!isVfsError(e)) throw e;
    return e.code;
  }
}

const ranges = (locks: LockInfo[]) =>
  locks
    .map((l) => `${l.owner.id}:${l.kind[0]}:${l.range.start}-${l.range.end}`)
    .sort();

let mgr: LockManager | undefined;
function make(options?: ConstructorParameters<typeof LockManager>[0]): LockManager {
  mgr = new LockManager(options);
  return mgr;
}
afterEach(() => {
  mgr?.close();
  mgr = undefined;
  vi.useRealTimers();
});

describe('conflicts per style', () => {
  it('posix: overlapping exclusive vs anything of another owner conflicts; shared+shared and disjoint do not', async () => {
    const m = make();
    const a = await m.lock(req(A, 'shared', r(0, 10)));
    expect(a.token).toMatch(/^opaquelocktoken:[0-9a-f-]{36}$/);
    await m.lock(req(B, 'shared', r(5, 15)));
    expect(await code(m.lock(req(C, 'exclusive', r(9, 10))))).toBe('ELOCKED');
    await m.lock(req(C, 'exclusive', r(15, 20))); // adjacent, end is exclusive
    expect(await code(m.lock(req(A, 'shared', r(19, 30))))).toBe('ELOCKED');
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:s:0-10', 'c1:b:s:5-15', 'c2:c:e:15-20']);
  });

  it('windows: the same handle may stack shared locks and take shared over its exclusive, but never overlapping exclusive', async () => {
    const m = make();
    const h = smb('s1:h1');
    await m.lock(req(h, 'shared', r(0, 10), 'windows'));
    await m.lock(req(h, 'shared', r(0, 10), 'windows'));
    expect(await code(m.lock(req(h, 'exclusive', r(5, 6), 'windows')))).toBe('ELOCKED');
    await m.lock(req(h, 'exclusive', r(20, 30), 'windows'));
    expect(await code(m.lock(req(h, 'exclusive', r(25, 26), 'windows')))).toBe('ELOCKED');
    await m.lock(req(h, 'shared', r(25, 26), 'windows'));
    expect(await code(m.lock(req(smb('s1:h2'), 'shared', r(25, 26), 'windows')))).toBe('ELOCKED');
    expect(m.locksOn(F)).toHaveLength(4); // windows locks never merge
  });

  it('webdav: exclusive conflicts with every other lock, even the same principal; shared locks coexist', async () => {
    const m = make();
    const u = dav('alice');
    await m.lock(req(u, 'exclusive', WHOLE_FILE, 'token'));
    expect(await code(m.lock(req(u, 'exclusive', WHOLE_FILE, 'token')))).toBe('ELOCKED');
    expect(await code(m.lock(req(u, 'shared', WHOLE_FILE, 'token')))).toBe('ELOCKED');
    const g = 200n;
    await m.lock({ ...req(u, 'shared', WHOLE_FILE, 'token'), fileId: g });
    await m.lock({ ...req(u, 'shared', WHOLE_FILE, 'token'), fileId: g });
    await m.lock({ ...req(dav('bob'), 'shared', WHOLE_FILE, 'token'), fileId: g });
    expect(await code(m.lock({ ...req(dav('bob'), 'exclusive', WHOLE_FILE, 'token'), fileId: g }))).toBe('ELOCKED');
  });

  it('cross-protocol: a WebDAV lock blocks an NFS lock and an SMB lock blocks FUSE', async () => {
    const m = make();
    await m.lock(req(dav('alice'), 'exclusive', WHOLE_FILE, 'token'));
    expect(await code(m.lock(req(A, 'shared', r(0, 1))))).toBe('ELOCKED');
    const g = { fileId: 7n };
    await m.lock({ ...req(smb('s:h'), 'exclusive', r(0, 100), 'windows'), ...g });
    expect(await code(m.lock({ ...req({ protocol: 'fuse', id: 'pid1' }, 'shared', r(50, 60)), ...g }))).toBe('ELOCKED');
  });
});

describe('posix same-owner semantics (fcntl)', () => {
  it('coalesces adjacent same-kind locks, splits on a different kind, upgrades and downgrades', async () => {
    const m = make();
    await m.lock(req(A, 'shared', r(0, 10)));
    const merged = await m.lock(req(A, 'shared', r(10, 20)));
    expect(merged.range).toEqual(r(0, 20));
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:s:0-20']);
    await m.lock(req(A, 'exclusive', r(5, 15))); // partial upgrade splits
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:e:5-15', 'c1:a:s:0-5', 'c1:a:s:15-20']);
    await m.lock(req(A, 'shared', r(5, 15))); // downgrade re-merges
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:s:0-20']);
  });

  it('upgrade is refused while another owner shares the range, and the old lock is kept', async () => {
    const m = make();
    await m.lock(req(A, 'shared', r(0, 10)));
    await m.lock(req(B, 'shared', r(8, 12)));
    expect(await code(m.lock(req(A, 'exclusive', r(0, 10))))).toBe('ELOCKED');
    await m.lock(req(A, 'exclusive', r(0, 8)));
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:e:0-8', 'c1:a:s:8-10', 'c1:b:s:8-12']);
  });

  it('unlock of a sub-range splits; unlocking an unlocked range is a no-op', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive', r(0, 100)));
    m.unlock(F, A, r(40, 60));
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:e:0-40', 'c1:a:e:60-100']);
    m.unlock(F, A, r(40, 60));
    m.unlock(F, B);
    await m.lock(req(B, 'exclusive', r(40, 60)));
    m.unlock(F, A);
    expect(ranges(m.locksOn(F))).toEqual(['c1:b:e:40-60']);
  });
});

describe('windows exact unlock', () => {
  it('needs the exact range, removes the exclusive lock first, and only the owner’s', async () => {
    const m = make();
    const h = smb('s:h');
    await m.lock(req(h, 'exclusive', r(0, 10), 'windows'));
    await m.lock(req(h, 'shared', r(0, 10), 'windows'));
    expect(await code(() => m.unlock(F, h, r(0, 5), 'windows'))).toBe('ENOTLOCKED');
    expect(await code(() => m.unlock(F, smb('s:other'), r(0, 10), 'windows'))).toBe('ENOTLOCKED');
    m.unlock(F, h, r(0, 10), 'windows');
    expect(ranges(m.locksOn(F))).toEqual(['s:h:s:0-10']);
    m.unlock(F, h, r(0, 10), 'windows');
    expect(m.locksOn(F)).toEqual([]);
    expect(await code(() => m.unlock(F, h, r(0, 10), 'windows'))).toBe('ENOTLOCKED');
  });

  it('webdav unlock by token; unknown token is ENOTLOCKED', async () => {
    const m = make();
    const l = await m.lock(req(dav('alice'), 'exclusive', WHOLE_FILE, 'token'));
    m.unlockToken(l.token);
    expect(await code(() => m.unlockToken(l.token))).toBe('ENOTLOCKED');
    expect(m.get(l.token)).toBeUndefined();
  });
});

describe('depth infinity', () => {
  const ROOT = 1n;
  const DIR = 2n;
  const FILE = 3n;

  it('a collection lock blocks locks on members below it', async () => {
    const m = make();
    const dir = await m.lock({ fileId: DIR, owner: dav('alice'), kind: 'exclusive', style: 'token', depth: 'infinity', ancestors: [ROOT] });
    expect(dir.depth).toBe('infinity');
    expect(await code(m.lock({ fileId: FILE, owner: dav('bob'), kind: 'shared', style: 'token', ancestors: [ROOT, DIR] }))).toBe('ELOCKED');
    expect(await code(m.lock({ fileId: FILE, owner: A, kind: 'exclusive', style: 'posix', range: r(0, 1), ancestors: [ROOT, DIR] }))).toBe('ELOCKED');
    // A sibling outside the collection is free.
    await m.lock({ fileId: 9n, owner: dav('bob'), kind: 'exclusive', style: 'token', ancestors: [ROOT] });
    expect(m.locksOn(FILE, { includeAncestors: [ROOT, DIR] }).map((l) => l.token)).toEqual([dir.token]);
    expect(m.test({ fileId: FILE, owner: dav('bob'), kind: 'shared', style: 'token', ancestors: [ROOT, DIR] })?.token).toBe(dir.token);
  });

  it('a collection lock request is blocked by existing locks below the collection', async () => {
    const m = make();
    const member = await m.lock({ fileId: FILE, owner: dav('bob'), kind: 'shared', style: 'token', ancestors: [ROOT, DIR] });
    expect(await code(m.lock({ fileId: ROOT, owner: dav('alice'), kind: 'exclusive', style: 'token', depth: 'infinity' }))).toBe('ELOCKED');
    // depth 0 on the directory does not cover members
    const dir0 = await m.lock({ fileId: DIR, owner: dav('alice'), kind: 'exclusive', style: 'token', depth: 0, ancestors: [ROOT] });
    m.unlockToken(member.token);
    // DIR itself is a member of ROOT, so its exclusive lock still blocks a ROOT collection lock.
    expect(await code(m.lock({ fileId: ROOT, owner: dav('carol'), kind: 'shared', style: 'token', depth: 'infinity' }))).toBe('ELOCKED');
    m.unlockToken(dir0.token);
    await m.lock({ fileId: ROOT, owner: dav('carol'), kind: 'shared', style: 'token', depth: 'infinity' });
    expect(await code(m.lock({ fileId: DIR, owner: dav('dave'), kind: 'exclusive', style: 'token', depth: 'infinity', ancestors: [ROOT] }))).toBe('ELOCKED');
  });

  it('depth infinity must cover the whole file', async () => {
    const m = make();
    expect(await code(m.lock({ fileId: DIR, owner: dav('a'), kind: 'exclusive', style: 'token', depth: 'infinity', range: r(0, 10) }))).toBe('EINVAL');
  });
});

describe('expiry and refresh', () => {
  it('expired locks are invisible at once and the timer reports them', async () => {
    vi.useFakeTimers();
    let now = 1_000_000;
    const m = make({ now: () => now });
    const events: LockEvent[] = [];
    m.onChange((ev) => events.push(ev));
    const l = await m.lock(req(dav('alice'), 'exclusive', WHOLE_FILE, 'token', { timeoutMs: 1000, info: { root: '/x' } }));
    expect(l).toMatchObject({ createdAt: 1_000_000, expiresAt: 1_001_000, timeoutMs: 1000, info: { root: '/x' } });
    now += 999;
    expect(m.get(l.token)).toBeDefined();
    now += 1;
    // Lazy purge: visible state is right even before the timer runs.
    expect(m.get(l.token)).toBeUndefined();
    expect(m.locksOn(F)).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['granted', 'expired']);

    const l2 = await m.lock(req(dav('bob'), 'exclusive', WHOLE_FILE, 'token', { timeoutMs: 500 }));
    now += 500;
    vi.advanceTimersByTime(500);
    expect(events.map((e) => e.type)).toEqual(['granted', 'expired', 'granted', 'expired']);
    expect(events[3]!.lock.token).toBe(l2.token);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refresh extends the lease; unknown or expired tokens are ENOTLOCKED', async () => {
    vi.useFakeTimers();
    let now = 0;
    const m = make({ now: () => now });
    const l = await m.lock(req(dav('alice'), 'exclusive', WHOLE_FILE, 'token', { timeoutMs: 1000 }));
    now = 900;
    expect(m.refresh(l.token).expiresAt).toBe(1900);
    now = 1500;
    vi.advanceTimersByTime(1500);
    expect(m.get(l.token)?.expiresAt).toBe(1900);
    expect(m.refresh(l.token, 5000)).toMatchObject({ expiresAt: 6500, timeoutMs: 5000 });
    now = 6500;
    vi.advanceTimersByTime(5000);
    expect(await code(() => m.refresh(l.token))).toBe('ENOTLOCKED');
    expect(await code(() => m.refresh('opaquelocktoken:nope'))).toBe('ENOTLOCKED');
  });

  it('expiry wakes waiters', async () => {
    vi.useFakeTimers();
    let now = 0;
    const m = make({ now: () => now });
    await m.lock(req(A, 'exclusive', r(0, 10), 'posix', { timeoutMs: 100 }));
    const p = m.lock(req(B, 'exclusive', r(0, 10), 'posix', { wait: {} }));
    now = 100;
    await vi.advanceTimersByTimeAsync(100);
    expect((await p).owner).toEqual(B);
  });
});

describe('blocking waits', () => {
  it('is granted after release, FIFO per file', async () => {
    const m = make();
    const held = await m.lock(req(A, 'exclusive', r(0, 10)));
    const order: string[] = [];
    const pb = m.lock(req(B, 'exclusive', r(0, 10), 'posix', { wait: {} })).then((l) => (order.push('b'), l));
    const pc = m.lock(req(C, 'exclusive', r(5, 6), 'posix', { wait: {} })).then((l) => (order.push('c'), l));
    await Promise.resolve();
    expect(order).toEqual([]);
    m.unlockToken(held.token);
    const b = await pb;
    expect(b.owner).toEqual(B);
    m.unlock(F, B);
    await pc;
    expect(order).toEqual(['b', 'c']);
  });

  it('abort rejects with ECANCELED, already-aborted signals too', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive'));
    const ac = new AbortController();
    const p = m.lock(req(B, 'shared', WHOLE_FILE, 'posix', { wait: { signal: ac.signal } }));
    ac.abort();
    expect(await code(p)).toBe('ECANCELED');
    expect(await code(m.lock(req(B, 'shared', WHOLE_FILE, 'posix', { wait: { signal: ac.signal } })))).toBe('ECANCELED');
    // The aborted waiter is gone: releasing A grants nothing to B.
    m.unlock(F, A);
    expect(m.locksOn(F)).toEqual([]);
  });

  it('wait timeout rejects with ETIMEDOUT', async () => {
    vi.useFakeTimers();
    const m = make();
    await m.lock(req(A, 'exclusive'));
    const p = m.lock(req(B, 'shared', WHOLE_FILE, 'windows', { wait: { timeoutMs: 250 } }));
    const settled = code(p);
    await vi.advanceTimersByTimeAsync(249);
    expect(m.locksOn(F)).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled).toBe('ETIMEDOUT');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('detects deadlock cycles of length 2 and 3', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive', r(0, 10)));
    await m.lock(req(B, 'exclusive', r(10, 20)));
    await m.lock(req(C, 'exclusive', r(20, 30)));
    const aWaits = m.lock(req(A, 'exclusive', r(10, 20), 'posix', { wait: {} }));
    expect(await code(m.lock(req(B, 'exclusive', r(0, 10), 'posix', { wait: {} })))).toBe('EDEADLK');
    const bWaits = m.lock(req(B, 'exclusive', r(20, 30), 'posix', { wait: {} }));
    expect(await code(m.lock(req(C, 'shared', r(5, 6), 'posix', { wait: {} })))).toBe('EDEADLK');
    // Not a cycle: C waiting on nobody that waits on C.
    m.unlock(F, C);
    expect((await bWaits).range).toEqual(r(10, 30)); // merged with B's adjacent exclusive lock
    m.unlock(F, B);
    expect((await aWaits).owner).toEqual(A);
  });

  it('releaseOwner drops the locks, wakes waiters and cancels the owner’s own waits', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive', r(0, 10)));
    await m.lock(req(A, 'shared', r(20, 30)));
    await m.lock({ ...req(C, 'exclusive'), fileId: 500n });
    const bWaits = m.lock(req(B, 'exclusive', r(0, 30), 'posix', { wait: {} }));
    const aWaits = m.lock({ ...req(A, 'exclusive', WHOLE_FILE, 'posix', { wait: {} }), fileId: 500n });
    expect(m.releaseOwner(A)).toBe(2);
    expect(await code(aWaits)).toBe('ECANCELED');
    expect((await bWaits).range).toEqual(r(0, 30));
    expect(m.releaseOwner(A)).toBe(0);
  });

  it('releaseFile drops locks and cancels waiters; close cancels all waiters', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive'));
    const w1 = m.lock(req(B, 'exclusive', WHOLE_FILE, 'posix', { wait: {} }));
    m.releaseFile(F);
    expect(await code(w1)).toBe('ECANCELED');
    expect(m.locksOn(F)).toEqual([]);
    await m.lock(req(A, 'exclusive'));
    const w2 = m.lock(req(B, 'exclusive', WHOLE_FILE, 'posix', { wait: {} }));
    m.close();
    expect(await code(w2)).toBe('ECANCELED');
    expect(await code(m.lock(req(C, 'shared', r(0, 1), 'posix', { fileId: 5n })))).toBe('ECANCELED');
  });

  it('bounds waiters with maxWaiters', async () => {
    const m = make({ maxWaiters: 1 });
    await m.lock(req(A, 'exclusive'));
    const w = m.lock(req(B, 'exclusive', WHOLE_FILE, 'posix', { wait: {} }));
    expect(await code(m.lock(req(C, 'exclusive', WHOLE_FILE, 'posix', { wait: {} })))).toBe('ENOLCK');
    m.unlock(F, A);
    await w;
  });
});

describe('checkIo and test', () => {
  it('follows MS-FSA 2.1.4.10 for windows locks, token rules for webdav, and treats posix locks as advisory', async () => {
    const m = make();
    const h1 = smb('s:h1');
    const h2 = smb('s:h2');
    const as = (o: LockOwner, tokens: string[] = []) => ({ ownerId: o.id, tokens: new Set(tokens) });
    await m.lock(req(h1, 'exclusive', r(0, 10), 'windows'));
    await m.lock(req(h1, 'shared', r(20, 30), 'windows'));
    m.checkIo(F, as(h1), r(0, 10), 'write');
    expect(await code(() => m.checkIo(F, as(h2), r(9, 11), 'read'))).toBe('ELOCKED');
    m.checkIo(F, as(h2), r(10, 20), 'write');
    m.checkIo(F, as(h2), r(20, 30), 'read');
    expect(await code(() => m.checkIo(F, as(h2), r(25, 26), 'write'))).toBe('ELOCKED');
    // A windows shared lock blocks writes even through its own handle.
    expect(await code(() => m.checkIo(F, as(h1), r(25, 26), 'write'))).toBe('ELOCKED');
    // WebDAV write locks do not block readers; writers need the token, whoever they are.
    const g = 300n;
    const wl = await m.lock({ ...req(dav('alice'), 'exclusive', WHOLE_FILE, 'token'), fileId: g });
    m.checkIo(g, as(h2), r(0, 1), 'read');
    expect(await code(() => m.checkIo(g, as(h2), r(0, 1), 'write'))).toBe('ELOCKED');
    expect(await code(() => m.checkIo(g, as(dav('alice')), r(0, 1), 'write'))).toBe('ELOCKED');
    m.checkIo(g, as(h2, [wl.token]), r(0, 1), 'write');
    // Collection (depth infinity) locks apply to writes when ancestors are given.
    const cl = await m.lock({ fileId: 400n, owner: dav('alice'), kind: 'exclusive', style: 'token', depth: 'infinity' });
    m.checkIo(401n, as(h2), r(0, 1), 'write');
    m.checkIo(401n, as(h2), r(0, 1), 'read', [400n]);
    expect(await code(() => m.checkIo(401n, as(h2), r(0, 1), 'write', [400n]))).toBe('ELOCKED');
    m.checkIo(401n, as(h2, [cl.token]), r(0, 1), 'write', [400n]);
    // POSIX locks are advisory: they conflict with other locks, never with I/O.
    const p = 500n;
    await m.lock({ ...req(A, 'exclusive', r(0, 100)), fileId: p });
    m.checkIo(p, as(B), r(0, 100), 'write');
    m.checkIo(p, as(B), r(0, 100), 'read');
    expect(await code(() => m.lock({ ...req(B, 'shared', r(50, 60)), fileId: p }))).toBe('ELOCKED');
  });

  it('test() returns the first conflicting lock, ignoring the caller’s own posix locks', async () => {
    const m = make();
    const a = await m.lock(req(A, 'shared', r(0, 10)));
    expect(m.test(req(A, 'exclusive', r(0, 10)))).toBeUndefined();
    expect(m.test(req(B, 'shared', r(0, 10)))).toBeUndefined();
    expect(m.test(req(B, 'exclusive', r(9, 10)))).toMatchObject({ token: a.token, owner: A, range: r(0, 10) });
    expect(m.test(req(B, 'exclusive', r(10, 11)))).toBeUndefined();
    expect(m.locksOn(F)).toHaveLength(1);
  });
});

describe('limits, validation, events, persistence', () => {
  it('maxLocks -> ENOLCK, including a posix unlock that would split', async () => {
    const m = make({ maxLocks: 2 });
    await m.lock(req(A, 'exclusive', r(0, 10)));
    await m.lock(req(B, 'exclusive', r(10, 20)));
    expect(await code(m.lock(req(C, 'exclusive', r(30, 40))))).toBe('ENOLCK');
    await m.lock(req(A, 'shared', r(0, 10))); // downgrade in place: count unchanged
    expect(await code(() => m.unlock(F, A, r(4, 6)))).toBe('ENOLCK');
    expect(ranges(m.locksOn(F))).toEqual(['c1:a:s:0-10', 'c1:b:e:10-20']);
  });

  it('windows style keeps zero-byte locks: they conflict only with a range strictly around their offset', async () => {
    const m = make();
    await m.lock(req(A, 'exclusive', r(10, 10), 'windows'));
    expect(await code(m.lock(req(B, 'exclusive', r(9, 11), 'windows')))).toBe('ELOCKED');
    expect(await code(m.lock(req(B, 'shared', r(9, 12), 'windows')))).toBe('ELOCKED');
    for (const ok of [r(9, 10), r(10, 11), r(10, 12), r(10, 10)]) {
      await m.lock(req(B, 'exclusive', ok, 'windows'));
      m.unlock(F, B, ok, 'windows');
    }
    // a held range blocks a zero-byte lock strictly inside it, not at its edges
    await m.lock(req(B, 'exclusive', r(100, 110), 'windows'));
    expect(await code(m.lock(req(A, 'exclusive', r(102, 102), 'windows')))).toBe('ELOCKED');
    await m.lock(req(A, 'exclusive', r(100, 100), 'windows'));
    m.unlock(F, A, r(10, 10), 'windows');
    expect(await code(() => m.unlock(F, A, r(10, 10), 'windows'))).toBe('ENOTLOCKED');
    expect(await code(m.lock(req(A, 'shared', r(5, 5))))).toBe('EINVAL'); // posix: never empty
  });

  it('rejects invalid ranges and requests with EINVAL', async () => {
    const m = make();
    const bad = [r(5, 5), r(6, 5), r(-1, 5), { start: 0n, end: MAX_OFFSET + 2n }, { start: 0, end: 1 } as never];
    for (const range of bad) expect(await code(m.lock(req(A, 'shared', range)))).toBe('EINVAL');
    await m.lock(req(A, 'shared', { start: MAX_OFFSET, end: MAX_OFFSET + 1n }));
    expect(await code(m.lock({ ...req(A, 'shared'), fileId: 1 as unknown as bigint }))).toBe('EINVAL');
    expect(await code(m.lock({ ...req(A, 'shared'), kind: 'read' as LockKind }))).toBe('EINVAL');
    expect(await code(m.lock({ ...req(A, 'shared'), timeoutMs: -1 }))).toBe('EINVAL');
    expect(await code(() => m.unlock(F, A, r(3, 2)))).toBe('EINVAL');
    expect(await code(() => m.checkIo(F, { ownerId: A.id, tokens: new Set() }, r(3, 3), 'read'))).toBe('EINVAL');
  });

  it('emits granted/released, and unsubscribes', async () => {
    const m = make();
    const events: string[] = [];
    const off = m.onChange((ev) => events.push(`${ev.type}:${ev.lock.range.start}-${ev.lock.range.end}`));
    await m.lock(req(A, 'exclusive', r(0, 10)));
    m.unlock(F, A, r(0, 5));
    off();
    m.unlock(F, A);
    expect(events).toEqual(['granted:0-10', 'released:0-10', 'granted:5-10']);
  });

  it('exports timed WebDAV locks and imports them into a fresh manager', async () => {
    let now = 10_000;
    const m1 = make({ now: () => now });
    const kept = await m1.lock(req(dav('alice'), 'exclusive', WHOLE_FILE, 'token', { timeoutMs: 60_000, ancestors: [1n], info: { owner: '<href>a</href>' } }));
    await m1.lock({ ...req(dav('bob'), 'shared', WHOLE_FILE, 'token', { timeoutMs: 10 }), fileId: 2n });
    await m1.lock({ ...req(dav('carol'), 'exclusive', WHOLE_FILE, 'token'), fileId: 3n }); // no timeout: not durable
    await m1.lock({ ...req(A, 'exclusive', WHOLE_FILE, 'posix', { timeoutMs: 60_000 }), fileId: 4n });
    const dump = m1.exportDurable();
    expect(dump.map((l) => l.owner.id).sort()).toEqual(['alice', 'bob']);
    m1.close();

    now += 20; // bob's lock expired "while down"
    const m2 = make({ now: () => now });
    await m2.lock({ ...req(dav('dave'), 'exclusive', WHOLE_FILE, 'token'), fileId: 2n });
    m2.importDurable(dump);
    expect(m2.get(kept.token)).toEqual(kept);
    expect(m2.locksOn(2n).map((l) => l.owner.id)).toEqual(['dave']);
    expect(await code(m2.lock(req(dav('alice'), 'shared', WHOLE_FILE, 'token')))).toBe('ELOCKED');
    m2.importDurable(dump); // idempotent
    expect(m2.size).toBe(2);
  });
});

describe('protocol-neutral owners and token locks', () => {
  it('takes any front-end name as an owner protocol, refuses empty or colon-bearing ones', async () => {
    const m = make();
    const plugin: LockOwner = { protocol: 'sftp', id: 'c1' };
    await m.lock(req(plugin, 'exclusive', r(0, 10)));
    expect(await code(m.lock(req(nfs('x'), 'exclusive', r(5, 6))))).toBe('ELOCKED');
    expect(await code(m.lock(req({ protocol: '', id: 'a' }, 'shared', r(20, 30))))).toBe('EINVAL');
    expect(await code(m.lock(req({ protocol: 'a:b', id: 'c' }, 'shared', r(20, 30))))).toBe('EINVAL');
  });

  it('releaseOwner can keep the owner\'s token locks (a WebDAV request ends, its LOCK stays)', async () => {
    const m = make();
    const o = dav('alice');
    const tok = await m.lock({ ...req(o, 'exclusive', WHOLE_FILE, 'token', { timeoutMs: 60_000 }), fileId: 7n });
    await m.lock({ ...req(o, 'exclusive', r(0, 5), 'posix'), fileId: 8n });
    expect(m.releaseOwner(o, { keep: 'token' })).toBe(1);
    expect(m.get(tok.token)?.token).toBe(tok.token);
    expect(m.locksOn(8n)).toEqual([]);
  });

  it('restores locks saved with the old style name \'webdav\' as token locks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-locks-legacy-'));
    try {
      const store = MetadataStore.open(dir);
      const saved = [{ token: 'opaquelocktoken:legacy', fileId: { $n: '42' }, owner: { protocol: 'webdav', id: 'alice', principal: 'alice' }, kind: 'exclusive', style: 'webdav', range: { start: { $n: '0' }, end: { $n: String(MAX_OFFSET) } }, depth: 0, ancestors: [], timeoutMs: 600_000, expiresAt: Date.now() + 600_000, createdAt: Date.now() }];
      store.kvSet('durable-locks-v1', JSON.stringify(saved));
      const m = make();
      const durable = new DurableLocks(m, store);
      expect(durable.start()).toBe(1);
      expect(m.get('opaquelocktoken:legacy')?.style).toBe('token');
      durable.stop();
      m.close();
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Small xorshift PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function encode(bytes: Array<Map<string, LockKind>>): string {
  return bytes.map((b) => [...b].map(([o, k]) => `${o}=${k[0]}`).sort().join(',')).join('|');
}

describe('randomized posix model check', () => {
  it('agrees with a byte-map model over 3000 random lock/unlock ops', async () => {
    const N = 64;
    const owners = [A, B, C];
    const m = make();
    const model: Array<Map<string, LockKind>> = Array.from({ length: N }, () => new Map());
    const rand = rng(0xc0ffee);
    const pick = (n: number) => Math.floor(rand() * n);
    let granted = 0;
    let refused = 0;

    for (let i = 0; i < 3000; i++) {
      const o = owners[pick(3)]!;
      const s = pick(N);
      const e = s + 1 + pick(Math.min(16, N - s));
      const op = pick(5);
      if (op === 0) {
        m.unlock(F, o, r(s, e));
        for (let b = s; b < e; b++) model[b]!.delete(o.id);
      } else {
        const kind: LockKind = op <= 2 ? 'shared' : 'exclusive';
        let conflict = false;
        for (let b = s; b < e && !conflict; b++) {
          for (const [other, k] of model[b]!) if (other !== o.id && (k === 'exclusive' || kind === 'exclusive')) conflict = true;
        }
        const tested = m.test(req(o, kind, r(s, e)));
        expect(tested !== undefined, `op ${i} test()`).toBe(conflict);
        const got = await code(m.lock(req(o, kind, r(s, e))));
        expect(got, `op ${i}`).toBe(conflict ? 'ELOCKED' : undefined);
        if (conflict) refused++;
        else {
          granted++;
          for (let b = s; b < e; b++) model[b]!.set(o.id, kind);
        }
      }

      const locks = m.locksOn(F);
      const actual: Array<Map<string, LockKind>> = Array.from({ length: N }, () => new Map());
      for (const l of locks) {
        for (let b = Number(l.range.start); b < Number(l.range.end); b++) {
          if (actual[b]!.has(l.owner.id)) expect.fail(`op ${i}: overlapping locks of ${l.owner.id} at byte ${b}`);
          actual[b]!.set(l.owner.id, l.kind);
        }
      }
      if (encode(actual) !== encode(model)) expect(encode(actual), `op ${i}`).toBe(encode(model));
      // fcntl keeps an owner's locks coalesced: no two same-kind locks of one owner touch.
      for (const l1 of locks)
        for (const l2 of locks)
          if (l1.owner.id === l2.owner.id && l1.kind === l2.kind && l1.range.end === l2.range.start) expect.fail(`op ${i}: uncoalesced`);
    }
    expect(granted).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(200);
  });
});
