/**
 * Client records follow opens eagerly and closes lazily (src/locks/client-records.ts): an open is
 * in the stored record before anything else runs (its reply cannot leave first), a close shrinks
 * the record with the client's next write or within LAZY_MS, an open the record already shows
 * writes nothing, and a downgrade is written at once (a reclaim must not get the wider modes).
 * Read straight from the store's table, as a restart would.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeVfsEnv, alice, RO, RW, type VfsEnv } from '../helpers/vfs-env.ts';
import { ClientRecords, LAZY_MS, encodeState } from '../../src/locks/client-records.ts';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { sleep } from './backends.ts';

interface Stored {
  opens: Array<{ f: string; a: { read: boolean; write: boolean; delete: boolean } }>;
}

describe('client records: eager opens, lazy closes', () => {
  let env: VfsEnv;
  let records: ClientRecords;
  let base = 0;

  const stored = (): Stored => {
    const row = env.store.db.prepare('SELECT state FROM client_records WHERE client = ?').get('nfs:c1') as { state: string } | undefined;
    return JSON.parse(row?.state ?? '{"opens":[]}') as Stored;
  };

  beforeEach(async () => {
    env = makeVfsEnv(new MemoryBackend());
    records = ClientRecords.install(env.vfs, { graceMs: 60_000 });
    for (const p of ['/a', '/b']) {
      const w = await env.session(alice, 'nfs').replaceContent('s', p);
      await w.write(Buffer.from('x'));
      await w.commit();
    }
    // Counts the record's rewrites (upserts of an existing row are UPDATEs).
    env.store.db.exec('CREATE TEMP TABLE n(x)');
    env.store.db.exec('CREATE TEMP TRIGGER count_up AFTER UPDATE ON main.client_records BEGIN INSERT INTO n VALUES (1); END');
    base = 0;
  });

  afterEach(async () => {
    records.stop();
    await env.destroy();
  });

  const rewrites = (): number => (env.store.db.prepare('SELECT count(*) AS c FROM n').get() as { c: number }).c;
  /** Rewrites since the last call. */
  const updates = (): number => {
    const n = rewrites();
    const d = n - base;
    base = n;
    return d;
  };

  it('an open is stored at once, its close lazily; reopening what the record shows writes nothing', async () => {
    const s = env.session(alice, 'nfs');
    s.bindClient('nfs:c1', { verifier: 'v1' });
    const h = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    const id = String(h.fileId);
    expect(stored().opens.map((o) => o.f)).toEqual([id]);
    updates();

    await s.close(h);
    await Promise.resolve();
    // Not yet written: the record still shows the open (never less than the client holds).
    expect(stored().opens.map((o) => o.f)).toEqual([id]);
    expect(updates()).toBe(0);

    // The same file with the same modes again: already in the record, no write.
    const h2 = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(0);
    // Another file (or other modes): written at once, with the current opens only.
    const hb = await s.open('s', '/b', { access: RW, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(1);
    expect(stored().opens.map((o) => o.f).sort()).toEqual([id, String(hb.fileId)].sort());

    await s.close(h2);
    await s.close(hb);
    await sleep(LAZY_MS + 300);
    expect(stored().opens).toEqual([]);
  });

  it('a downgrade is written at once', async () => {
    const s = env.session(alice, 'nfs');
    s.bindClient('nfs:c1', { verifier: 'v1' });
    const h = await s.open('s', '/a', { access: RW, owner: 'o1' });
    await Promise.resolve();
    expect(stored().opens[0]!.a.write).toBe(true);
    await s.downgrade(h, { access: RO, share: { read: true, write: true, delete: true } });
    await Promise.resolve();
    expect(stored().opens.map((o) => o.a.write)).toEqual([false]);
  });

  it('the record is encodeState\'s text, and what it shows is tracked across several changes between writes', async () => {
    const raw = (): string => (env.store.db.prepare('SELECT state FROM client_records WHERE client = ?').get('nfs:c1') as { state: string }).state;
    /** The stored text, encoded again by encodeState from what it says: the same bytes. */
    const reencoded = (text: string): string => {
      type Bits = { read: boolean; write: boolean; delete: boolean };
      const v = JSON.parse(text) as { opens: Array<{ f: string; a: Bits; s: Bits }>; locks: Array<{ f: string; b: string; e: string; k: 'shared' | 'exclusive'; y: 'posix' }> };
      return encodeState(
        v.opens.map((o) => ({ fileId: BigInt(o.f), access: o.a, share: o.s })),
        v.locks.map((l) => ({ fileId: BigInt(l.f), start: BigInt(l.b), end: BigInt(l.e), kind: l.k, style: l.y })),
      );
    };
    const s = env.session(alice, 'nfs');
    s.bindClient('nfs:c1', { verifier: 'v1' });
    const a1 = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    updates();
    // A second open of the same file and modes: its count passes the record's, so it is written.
    const a2 = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(1);
    expect(stored().opens.map((o) => o.f)).toEqual([String(a1.fileId), String(a2.fileId)]);
    expect(raw()).toBe(reencoded(raw()));
    // Both closed (lazily), then another file opened: the write drops /a from the record.
    await s.close(a1);
    await s.close(a2);
    const b = await s.open('s', '/b', { access: RW, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(1);
    expect(stored().opens.map((o) => o.f)).toEqual([String(b.fileId)]);
    expect(raw()).toBe(reencoded(raw()));
    // /a again: no longer in the record, so written at once.
    const a3 = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(1);
    expect(stored().opens.map((o) => o.f).sort()).toEqual([String(a3.fileId), String(b.fileId)].sort());
    // Closed and reopened before any write: the record still shows it, nothing to write.
    await s.close(a3);
    const a4 = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    expect(updates()).toBe(0);
    expect(raw()).toBe(reencoded(raw()));
    // Locks are in the same text.
    await s.lockHandle(b, { kind: 'exclusive', style: 'posix', range: { start: 0n, end: 100n }, ownerId: 'c1-lo' });
    await s.lockHandle(b, { kind: 'shared', style: 'posix', range: { start: 200n, end: 300n }, ownerId: 'c1-lo' });
    await Promise.resolve();
    const locked = JSON.parse(raw()) as { locks: Array<{ b: string; e: string; k: string }> };
    expect(locked.locks.map((l) => [l.b, l.e, l.k])).toEqual([['0', '100', 'exclusive'], ['200', '300', 'shared']]);
    expect(raw()).toBe(reencoded(raw()));
    await s.close(a4);
    await s.close(b);
  });

  it('freeze writes the closes still pending', async () => {
    const s = env.session(alice, 'nfs');
    s.bindClient('nfs:c1', { verifier: 'v1' });
    const h = await s.open('s', '/a', { access: RO, owner: 'o1' });
    await Promise.resolve();
    await s.close(h);
    expect(stored().opens.length).toBe(1);
    records.freeze();
    expect(stored().opens).toEqual([]);
  });
});
