/**
 * WAL checkpoints in a thread of their own (src/store/checkpointer.ts): with it on, commits on the
 * store's thread never checkpoint (SQLite's autocheckpoint is 0), the thread copies the WAL back into
 * the database file soon after it changes, close() waits for the thread's connection to close (the
 * last close then removes the WAL as SQLite does), and a thread that dies gives the checkpoints back
 * to SQLite.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { NODE, ROOT } from '../cli/helpers.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-ckpt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Size of the database file itself: rows committed to the WAL reach it only through a checkpoint,
 * so with no other connection open it grows only when the thread checkpoints.
 */
const dbBytes = (): number => statSync(join(dir, 'portico.db')).size;

function writeRows(s: MetadataStore, n: number, prefix: string): void {
  const root = s.rootId('v');
  for (let i = 0; i < n; i++) {
    s.ensureChild('v', root, `${prefix}${i}`, `${prefix}${i}`);
    if (i % 50 === 49) s.commitGroup();
  }
  s.commitGroup();
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('metadata store: checkpoints in a thread', () => {
  it('turns SQLite autocheckpoint off and checkpoints the WAL from the thread', async () => {
    const s = MetadataStore.open(dir);
    try {
      const auto = (): number => Number((s.db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint);
      expect(auto()).toBe(1000);
      const c = s.checkpointInBackground({ intervalMs: 50, startCommits: 0 })!;
      expect(c.running).toBe(true);
      expect(auto()).toBe(0);
      const size = dbBytes();
      // Well past 1,000 pages of WAL: SQLite alone would have checkpointed inside some COMMIT.
      writeRows(s, 6000, 'a');
      await until(() => dbBytes() > size + 100_000);
      // The file grows during the pass; the pass is counted when it is over.
      await until(() => c.runs > 0);
      expect(c.last).toBe('ok');
    } finally {
      s.close();
    }
  });

  it('in a process with the compile cache on (the gateway: bin/portico.js), the thread starts from it and checkpoints', () => {
    const cache = join(dir, 'compile-cache');
    const script = `
      import module from 'node:module';
      module.enableCompileCache(${JSON.stringify(cache)});
      const { MetadataStore } = await import(${JSON.stringify(join(ROOT, 'src/store/metadata-store.ts'))});
      const s = MetadataStore.open(${JSON.stringify(join(dir, 'state'))});
      const c = s.checkpointInBackground({ intervalMs: 20, startCommits: 0 });
      const root = s.rootId('v');
      for (let i = 0; i < 200; i++) { s.ensureChild('v', root, 'f' + i, 'f' + i); s.commitGroup(); }
      const end = Date.now() + 15000;
      while (c.runs === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      process.stdout.write(JSON.stringify({ runs: c.runs, last: c.last, running: c.running, dir: module.getCompileCacheDir() }) + '\\n');
      s.close();
    `;
    const r = spawnSync(NODE, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).not.toMatch(/checkpoint thread/);
    const out = JSON.parse(r.stdout.trim()) as { runs: number; last: string; running: boolean; dir: string };
    expect(out.dir.startsWith(cache)).toBe(true);
    expect(out.running).toBe(true);
    expect(out.runs).toBeGreaterThan(0);
    expect(out.last).toBe('ok');
    expect(existsSync(cache)).toBe(true);
  });

  it('without the thread and with autocheckpoint off, the database file does not grow (the probe is meaningful)', async () => {
    const s = MetadataStore.open(dir);
    try {
      s.db.exec('PRAGMA wal_autocheckpoint = 0');
      const size = dbBytes();
      writeRows(s, 6000, 'b');
      await sleep(300);
      expect(dbBytes()).toBe(size);
    } finally {
      s.close();
    }
  });

  it('close() waits for the thread: the last close checkpoints and removes the WAL', async () => {
    const s = MetadataStore.open(dir);
    const c = s.checkpointInBackground({ intervalMs: 20, startCommits: 0 })!;
    writeRows(s, 2000, 'c');
    await until(() => c.runs > 0);
    s.close();
    expect(c.running).toBe(false);
    // SQLite removes the WAL when the last connection to the file closes: the thread's is closed too.
    expect(existsSync(join(dir, 'portico.db-wal'))).toBe(false);
    // Reopened in the same process (a restart in tests): the rows are there and writes work.
    const again = MetadataStore.open(dir);
    try {
      again.checkpointInBackground({ intervalMs: 20, startCommits: 0 });
      const root = again.rootId('v');
      expect(again.lookupChild('v', root, 'c1999')).toBeDefined();
      writeRows(again, 10, 'd');
      expect(again.lookupChild('v', root, 'd9')).toBeDefined();
    } finally {
      again.close();
    }
  });

  it('stopping right after starting (the thread still loading) is bounded and clean', () => {
    const s = MetadataStore.open(dir);
    s.checkpointInBackground({ startCommits: 0 });
    const t0 = Date.now();
    s.close();
    expect(Date.now() - t0).toBeLessThan(6000);
    expect(existsSync(join(dir, 'portico.db-wal'))).toBe(false);
  });

  it('a thread that dies gives checkpoints back to SQLite', async () => {
    const s = MetadataStore.open(dir);
    try {
      const c = s.checkpointInBackground({ intervalMs: 20, startCommits: 0 })!;
      await until(() => c.runs > 0 || c.running);
      await c.killForTest();
      await until(() => !c.running);
      expect(Number((s.db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint)).toBe(1000);
      writeRows(s, 100, 'e');
      expect(s.lookupChild('v', s.rootId('v'), 'e99')).toBeDefined();
    } finally {
      s.close();
    }
  });

  it('starts when writes are frequent, ends when idle, starts again', async () => {
    const s = MetadataStore.open(dir);
    try {
      const auto = (): number => Number((s.db.prepare('PRAGMA wal_autocheckpoint').get() as { wal_autocheckpoint: number }).wal_autocheckpoint);
      const c = s.checkpointInBackground({ intervalMs: 20, startCommits: 30, startWindowMs: 60_000, idleMs: 200 })!;
      const root = s.rootId('v');
      for (let i = 0; i < 10; i++) s.setProps(s.ensureChild('v', root, `f${i}`, `f${i}`).id, [{ ns: 'x', name: 'n', value: new Uint8Array([i]) }]);
      expect(c.running).toBe(false);
      expect(auto()).toBe(1000);
      writeRows(s, 2000, 'g');
      expect(c.running).toBe(true);
      expect(c.starts).toBe(1);
      expect(auto()).toBe(0);
      await until(() => c.runs > 0);
      // No writes: the thread ends by itself and SQLite checkpoints again.
      await until(() => !c.running);
      expect(auto()).toBe(1000);
      const size = dbBytes();
      writeRows(s, 3000, 'h');
      expect(c.starts).toBe(2);
      await until(() => dbBytes() > size);
    } finally {
      s.close();
    }
  });

  it(':memory: stores have no thread', () => {
    const s = MetadataStore.open(':memory:');
    try {
      expect(s.checkpointInBackground()).toBeUndefined();
    } finally {
      s.close();
    }
  });
});
