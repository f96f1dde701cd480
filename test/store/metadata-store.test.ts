/**
 * The metadata store's group commit of id rows and its durably reserved id ranges
 * (src/store/metadata-store.ts): rows are visible at once in the process, reach the disk within
 * milliseconds or before any other write, and ids handed out are never handed out again — even when
 * the process dies before the rows that used them were committed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { NODE, ROOT } from '../cli/helpers.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portico-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** What another connection (another process) sees of the nodes table. */
function committedNames(): string[] {
  const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
  try {
    return (db.prepare('SELECT name FROM nodes WHERE parent != 0 ORDER BY id').all() as Array<{ name: string }>).map((r) => r.name);
  } finally {
    db.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('metadata store group commit', () => {
  it('a new id row is visible at once in the process and committed within milliseconds', async () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      const a = s.ensureChild('v', root, 'a', 'a');
      expect(s.lookupChild('v', root, 'a')?.id).toBe(a.id);
      expect(s.getNode(a.id)?.name).toBe('a');
      // Not yet visible to other connections (the group is open) ...
      expect(committedNames()).toEqual([]);
      // ... but within a few milliseconds it is.
      for (let i = 0; i < 200 && committedNames().length === 0; i++) await sleep(5);
      expect(committedNames()).toEqual(['a']);
    } finally {
      s.close();
    }
  });

  it('commitWith runs its statements inside the open group and commits both at once; with nothing waiting they commit on their own', () => {
    const s = MetadataStore.open(dir);
    try {
      s.db.exec('CREATE TABLE IF NOT EXISTS t_extra (v TEXT)');
      const root = s.rootId('v');
      s.ensureChild('v', root, 'a', 'a');
      expect(committedNames()).toEqual([]);
      let inTx: boolean | undefined;
      s.commitWith(() => {
        inTx = s.db.isTransaction;
        s.db.prepare('INSERT INTO t_extra (v) VALUES (?)').run('x');
      });
      // One transaction: the waiting row and the statement, both on disk once it returns.
      expect(inTx).toBe(true);
      expect(s.db.isTransaction).toBe(false);
      expect(committedNames()).toEqual(['a']);
      const other = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
      try {
        expect(other.prepare('SELECT v FROM t_extra').all()).toEqual([{ v: 'x' }]);
      } finally {
        other.close();
      }
      // Nothing waiting: no transaction of its own, the statement commits as it runs.
      s.commitWith(() => {
        inTx = s.db.isTransaction;
      });
      expect(inTx).toBe(false);
    } finally {
      s.close();
    }
  });

  it('any other write commits the open group first, in order', () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      const a = s.ensureChild('v', root, 'a', 'a');
      s.insertChild('v', root, 'b', 'b');
      // Windows attributes join the group: a row still pending takes them into its insert ...
      s.setWinAttributes(a.id, 0x20);
      expect(committedNames()).toEqual([]);
      expect(s.getNode(a.id)?.attrs).toBe(0x20n);
      // ... and any other write commits the group first: synchronously after it, both rows and the
      // attribute are on disk.
      s.kvSet('k', 'v');
      expect(committedNames()).toEqual(['a', 'b']);
      const attrsOnDisk = (): number => {
        const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
        try {
          return (db.prepare('SELECT attrs FROM nodes WHERE name = ?').get('a') as { attrs: number }).attrs;
        } finally {
          db.close();
        }
      };
      expect(attrsOnDisk()).toBe(0x20);
      // A written row's attributes join the group too (no commit of their own), committed with it.
      s.setWinAttributes(a.id, 0x21);
      expect(attrsOnDisk()).toBe(0x20);
      expect(s.getNode(a.id)?.attrs).toBe(0x21n);
      s.kvSet('k', 'w');
      expect(attrsOnDisk()).toBe(0x21);
      // A transaction (a rename here) commits the group too, and sees its rows.
      const c = s.ensureChild('v', root, 'c', 'c');
      s.moveNode('v', c.id, root, 'c2', 'c2');
      expect(committedNames()).toEqual(['a', 'b', 'c2']);
    } finally {
      s.close();
    }
  });

  it('a full group commits at once; close commits what is open', () => {
    const s = MetadataStore.open(dir);
    const root = s.rootId('v');
    for (let i = 0; i < 300; i++) s.ensureChild('v', root, `n${i}`, `n${i}`);
    // 256 rows filled one group, which committed; the other 44 wait.
    expect(committedNames().length).toBe(256);
    s.close();
    expect(committedNames().length).toBe(300);
  });

  it('ids are unique and increasing across reservations and restarts', () => {
    const seen = new Set<bigint>();
    let last = 0n;
    for (let round = 0; round < 3; round++) {
      const s = MetadataStore.open(dir);
      const root = s.rootId('v');
      // More than one reservation (4096 ids) per round.
      for (let i = 0; i < 5000; i++) {
        const id = s.ensureChild('v', root, `r${round}-${i}`, `r${round}-${i}`).id;
        expect(seen.has(id)).toBe(false);
        expect(id > last).toBe(true);
        seen.add(id);
        last = id;
      }
      s.close();
    }
    expect(seen.size).toBe(15_000);
  });

  it('ids whose rows a crash lost are never handed out again (child process SIGKILLed before the commit)', () => {
    // The child creates rows, prints their ids and kills itself before the group can commit.
    const script = `
      import { MetadataStore } from ${JSON.stringify(join(ROOT, 'src/store/metadata-store.ts'))};
      const s = MetadataStore.open(${JSON.stringify(dir)});
      const root = s.rootId('v');
      s.ensureChild('v', root, 'kept', 'kept');
      s.kvSet('marker', '1'); // commits 'kept'
      const ids = [];
      for (let i = 0; i < 10; i++) ids.push(String(s.ensureChild('v', root, 'lost' + i, 'lost' + i).id));
      process.stdout.write(ids.join(',') + '\\n', () => process.kill(process.pid, 'SIGKILL'));
    `;
    const r = spawnSync(NODE, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.signal).toBe('SIGKILL');
    const lost = r.stdout.trim().split(',').map((x) => BigInt(x));
    expect(lost).toHaveLength(10);
    // The committed row survived; the lost ones are gone.
    expect(committedNames()).toEqual(['kept']);

    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      expect(s.lookupChild('v', root, 'lost0')).toBeUndefined();
      const fresh = [];
      for (let i = 0; i < 20; i++) fresh.push(s.ensureChild('v', root, 'lost' + i, 'lost' + i).id);
      for (const id of fresh) expect(lost).not.toContain(id);
      const maxLost = lost.reduce((a, b) => (a > b ? a : b));
      for (const id of fresh) expect(id > maxLost).toBe(true);
      // The lost ids lead nowhere.
      for (const id of lost) expect(s.getNode(id)).toBeUndefined();
    } finally {
      s.close();
    }
  });

  it('a process that calls process.exit() commits its open group on the way out', () => {
    const script = `
      import { MetadataStore } from ${JSON.stringify(join(ROOT, 'src/store/metadata-store.ts'))};
      const s = MetadataStore.open(${JSON.stringify(dir)});
      const root = s.rootId('v');
      s.ensureChild('v', root, 'late', 'late');
      process.exit(3);
    `;
    const r = spawnSync(NODE, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(3);
    expect(committedNames()).toEqual(['late']);
  });

  it('two stores on one file in one process (a simulated restart) never wait for each other', () => {
    const a = MetadataStore.open(dir);
    const root = a.rootId('v');
    a.ensureChild('v', root, 'a1', 'a1'); // opens a group: the write lock is held
    // Opening a second store commits the first one's group (else its writes would wait for a
    // timer that their own busy wait keeps from running).
    const b = MetadataStore.open(dir);
    try {
      expect(b.lookupChild('v', root, 'a1')).toBeDefined();
      b.kvSet('k', 'v');
      b.ensureChild('v', root, 'b1', 'b1');
      // While both are open neither groups: each write is visible to the other at once.
      a.ensureChild('v', root, 'a2', 'a2');
      expect(b.lookupChild('v', root, 'a2')).toBeDefined();
      expect(a.lookupChild('v', root, 'b1')).toBeDefined();
      expect(committedNames().sort()).toEqual(['a1', 'a2', 'b1']);
    } finally {
      b.close();
    }
    // Alone again: grouping resumes.
    a.ensureChild('v', root, 'a3', 'a3');
    expect(committedNames()).not.toContain('a3');
    a.close();
    expect(committedNames()).toContain('a3');
  });

  it('a pending id row (written by the batch, not by the request) is what every read sees', () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      const a = s.ensureChild('v', root, 'a', 'a', { chg: 1n, sigM: 5n, sigC: 6n, sigS: 7n, native: '1:2:3' });
      // Found by key and by id before it is written; a create at the name takes the same row.
      expect(s.lookupChild('v', root, 'a')).toBe(a);
      expect(s.getNode(a.id)).toBe(a);
      expect(s.insertChild('v', root, 'a', 'a').id).toBe(a.id);
      // A change of its state before the batch is written with it.
      a.chg = 2n;
      s.saveChange(a);
      // The rows of a listed page in one query: pending and written rows alike, none for new names.
      const many = s.childrenByKeys('v', root, ['a', 'zz']);
      expect(many.get('a')).toBe(a);
      expect(many.has('zz')).toBe(false);
      // A listing (any other statement) writes it first.
      expect(s.children(root).map((r) => r.name)).toEqual(['a']);
      expect(s.childrenByKeys('v', root, ['a']).get('a')?.id).toBe(a.id);
      // A transaction that fails does not take the row with it.
      const b = s.ensureChild('v', root, 'b', 'b');
      expect(() => s.transaction(() => {
        s.moveNode('v', b.id, root, 'b2', 'b2');
        throw new Error('boom');
      })).toThrow('boom');
      expect(s.lookupChild('v', root, 'b')?.id).toBe(b.id);
    } finally {
      s.close();
    }
    const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
    const r = db.prepare('SELECT chg, sig_m AS m, native FROM nodes WHERE name = ?').get('a') as { chg: number; m: number; native: string };
    db.close();
    expect(r).toEqual({ chg: 2, m: 5, native: '1:2:3' });
    expect(committedNames()).toEqual(['a', 'b']);
  });

  it('a written row\'s change state waits for the batch: read back as saved, written once, before any other statement, kept across a restart', async () => {
    const changeOf = (name: string): { chg: number; m: number | null } | undefined => {
      const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
      try {
        return db.prepare('SELECT chg, sig_m AS m FROM nodes WHERE name = ?').get(name) as { chg: number; m: number | null } | undefined;
      } finally {
        db.close();
      }
    };
    let s = MetadataStore.open(dir);
    let id: bigint;
    try {
      const root = s.rootId('v');
      const d = s.insertChild('v', root, 'd', 'd', { chg: 1n, sigM: 5n, sigC: 5n, sigS: 0n, native: '1:2:3' });
      s.commitGroup();
      id = d.id;
      // A directory advanced by three creates in it, then its new signature learned (change-tracker.ts).
      for (let i = 0; i < 3; i++) {
        d.chg++;
        d.sigM = d.sigC = d.sigS = null;
        s.saveChange(d);
      }
      d.sigM = 9n;
      d.sigC = 9n;
      d.sigS = 0n;
      s.saveChange(d);
      // Not written yet, but every read in this process sees it: by id, by key, by a page's keys.
      expect(changeOf('d')).toEqual({ chg: 1, m: 5 });
      const fresh = { get: s.getNode(id), child: s.lookupChild('v', root, 'd'), page: s.childrenByKeys('v', root, ['d']).get('d') };
      for (const r of Object.values(fresh)) expect([r?.chg, r?.sigM, r?.native]).toEqual([4n, 9n, '1:2:3']);
      // Any other statement writes it first (a listing here) ...
      expect(s.children(root).find((r) => r.id === id)?.chg).toBe(4n);
      // ... and the group commits it within milliseconds.
      d.chg = 5n;
      s.saveChange(d);
      for (let i = 0; i < 200 && changeOf('d')?.chg !== 5; i++) await sleep(5);
      expect(changeOf('d')).toEqual({ chg: 5, m: 9 });
      d.chg = 6n;
      s.saveChange(d);
    } finally {
      // close() writes what is left.
      s.close();
    }
    s = MetadataStore.open(dir);
    try {
      expect(s.getNode(id)?.chg).toBe(6n);
    } finally {
      s.close();
    }
  });

  it('removing a name joins the group: a pending row is forgotten unwritten, a written one goes with the group, before any other write', () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      // Created and removed within one group: never written, and its id is not handed out again.
      const gone = s.insertChild('v', root, 'tmp', 'tmp');
      expect(s.dropName('v', root, 'tmp')).toEqual([gone.id]);
      expect(s.lookupChild('v', root, 'tmp')).toBeUndefined();
      expect(s.getNode(gone.id)).toBeUndefined();
      expect(s.insertChild('v', root, 'tmp', 'tmp').id > gone.id).toBe(true);
      // A written directory with a child and a property: the removal takes the subtree and the
      // property, and is not visible to another connection until the group commits ...
      const d = s.insertChild('v', root, 'd', 'd');
      const f = s.insertChild('v', d.id, 'f', 'f');
      s.setProps(f.id, [{ ns: 'urn:x', name: 'p', value: new Uint8Array([1]) }]);
      expect(committedNames()).toEqual(['tmp', 'd', 'f']);
      expect(s.dropName('v', root, 'd').sort()).toEqual([d.id, f.id].sort());
      expect(s.lookupChild('v', root, 'd')).toBeUndefined();
      expect(s.getNode(f.id)).toBeUndefined();
      expect(s.getProps(f.id)).toEqual([]);
      expect(committedNames()).toEqual(['tmp', 'd', 'f']);
      // ... which any other write makes it do first.
      s.kvSet('k', 'v');
      expect(committedNames()).toEqual(['tmp']);
      const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
      expect((db.prepare('SELECT COUNT(*) AS n FROM props').get() as { n: number }).n).toBe(0);
      db.close();
    } finally {
      s.close();
    }
  });

  it('removing a name by the id its caller has cached asks no lookup and removes the same rows', () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      const lookups = vi.spyOn(s, 'lookupChild');
      // Pending (made within the group): found by its key, forgotten unwritten, as without the id.
      const gone = s.insertChild('v', root, 'tmp', 'tmp');
      expect(s.dropName('v', root, 'tmp', gone.id)).toEqual([gone.id]);
      expect(s.getNode(gone.id)).toBeUndefined();
      // Written: the subtree and its properties go, with no lookup of the name.
      const d = s.insertChild('v', root, 'd', 'd');
      const f = s.insertChild('v', d.id, 'f', 'f');
      const g = s.insertChild('v', root, 'g', 'g');
      s.setProps(f.id, [{ ns: 'urn:x', name: 'p', value: new Uint8Array([1]) }]);
      s.setProps(g.id, [{ ns: 'urn:x', name: 'p', value: new Uint8Array([2]) }]);
      s.commitGroup();
      lookups.mockClear();
      expect(s.dropName('v', root, 'd', d.id).sort()).toEqual([d.id, f.id].sort());
      expect(s.dropName('v', root, 'g', g.id)).toEqual([g.id]);
      expect(lookups).not.toHaveBeenCalled();
      lookups.mockRestore();
      for (const x of [d, f, g]) {
        expect(s.getNode(x.id)).toBeUndefined();
        expect(s.getProps(x.id)).toEqual([]);
      }
      expect(s.lookupChild('v', root, 'd')).toBeUndefined();
      expect(s.lookupChild('v', root, 'g')).toBeUndefined();
      s.kvSet('k', 'v');
      expect(committedNames()).toEqual([]);
    } finally {
      s.close();
    }
  });

  it('removing a file leaves the waiting change states waiting: one UPDATE per directory per batch, none for the removed row', () => {
    const s = MetadataStore.open(dir);
    try {
      const root = s.rootId('v');
      const d = s.insertChild('v', root, 'd', 'd', { chg: 1n, sigM: 5n, sigC: 5n, sigS: 0n, native: '1:2:3' });
      const files = [1, 2, 3].map((i) => s.insertChild('v', d.id, `f${i}`, `f${i}`));
      s.commitGroup();
      const setChange = vi.spyOn((s as unknown as { st: Record<string, { run: (...a: unknown[]) => unknown }> }).st.setChange!, 'run');
      // A file's own change state waiting, then the file removed: nothing to write for it.
      files[0]!.chg = 7n;
      s.saveChange(files[0]!);
      // Each removal advances the directory's change (Vfs.touchDir), as a client's REMOVEs do.
      for (const f of files) {
        d.chg++;
        s.saveChange(d);
        expect(s.dropName('v', d.id, f.key, f.id, true)).toEqual([f.id]);
        expect(s.getNode(f.id)).toBeUndefined();
      }
      expect(setChange).not.toHaveBeenCalled();
      expect(s.getNode(d.id)?.chg).toBe(4n);
      s.commitGroup();
      expect(setChange).toHaveBeenCalledTimes(1);
      setChange.mockRestore();
      expect(committedNames()).toEqual(['d']);
      const db = new DatabaseSync(join(dir, 'portico.db'), { readOnly: true });
      expect((db.prepare('SELECT chg FROM nodes WHERE name = ?').get('d') as { chg: number }).chg).toBe(4);
      db.close();
    } finally {
      s.close();
    }
  });

  it('an in-memory store (tests) needs no group and behaves the same', () => {
    const s = MetadataStore.open(':memory:');
    const root = s.rootId('v');
    const a = s.ensureChild('v', root, 'a', 'a');
    const b = s.insertChild('v', root, 'b', 'b');
    expect(b.id > a.id).toBe(true);
    expect(s.insertChild('v', root, 'a', 'a').id).toBe(a.id);
    s.close();
  });
});

describe('metadata store known child keys', () => {
  /** Counts the SELECTs of one child row (lookupChild's query). */
  function countChildQueries(s: MetadataStore): { n: number } {
    const st = (s as unknown as { st: Record<string, { get: (...a: unknown[]) => unknown }> }).st;
    const child = st.child!;
    const counter = { n: 0 };
    const get = child.get.bind(child);
    st.child = { ...child, get: (...a: unknown[]) => (counter.n++, get(...a)) };
    return counter;
  }

  it('a directory whose lookups missed twice has its keys known: a miss asks no query, and every way a row gets there is seen', () => {
    // Rows made by an earlier run of the process: this one knows nothing of them.
    const s0 = MetadataStore.open(dir);
    const root = s0.rootId('v');
    const d = s0.ensureChild('v', root, 'd', 'd');
    const other = s0.ensureChild('v', root, 'o', 'o');
    const x = s0.ensureChild('v', d.id, 'x', 'x');
    const mv = s0.ensureChild('v', other.id, 'mv', 'mv');
    s0.close();
    const s = MetadataStore.open(dir);
    try {
      const q = countChildQueries(s);
      expect(s.lookupChild('v', d.id, 'm1')).toBeUndefined();
      expect(s.lookupChild('v', d.id, 'm2')).toBeUndefined();
      expect(q.n).toBe(2);
      // Known now: a miss costs no query; a stored key is still read from the table.
      expect(s.lookupChild('v', d.id, 'm3')).toBeUndefined();
      expect(q.n).toBe(2);
      expect(s.lookupChild('v', d.id, 'x')?.id).toBe(x.id);
      expect(q.n).toBe(3);
      // A new id row: pending, then written by the batch.
      const e = s.ensureChild('v', d.id, 'e', 'e');
      s.commitGroup();
      expect(s.lookupChild('v', d.id, 'e')?.id).toBe(e.id);
      // A created name, a name moved in, a name replaced, a name removed.
      const i = s.insertChild('v', d.id, 'i', 'i');
      s.commitGroup();
      expect(s.lookupChild('v', d.id, 'i')?.id).toBe(i.id);
      s.moveNode('v', mv.id, d.id, 'moved', 'moved');
      expect(s.lookupChild('v', d.id, 'moved')?.id).toBe(mv.id);
      const x2 = s.replaceName('v', d.id, 'x', 'x');
      expect(x2.id).not.toBe(x.id);
      expect(s.lookupChild('v', d.id, 'x')?.id).toBe(x2.id);
      s.dropName('v', d.id, 'e');
      s.commitGroup();
      expect(s.lookupChild('v', d.id, 'e')).toBeUndefined();
      // A rolled-back move in leaves a key too many: a query, and the right answer.
      expect(() => s.transaction(() => {
        s.moveNode('v', i.id, d.id, 'rb', 'rb');
        throw new Error('boom');
      })).toThrow('boom');
      expect(s.lookupChild('v', d.id, 'rb')).toBeUndefined();
      expect(s.lookupChild('v', d.id, 'i')?.id).toBe(i.id);
    } finally {
      s.close();
    }
  });

  it('a directory with more rows than the bound is not tracked: its misses keep asking the table', () => {
    const s0 = MetadataStore.open(dir);
    const root = s0.rootId('v');
    const d = s0.ensureChild('v', root, 'big', 'big');
    s0.transaction(() => {
      for (let k = 0; k < 4097; k++) s0.ensureChild('v', d.id, `f${k}`, `f${k}`);
    });
    s0.close();
    const s = MetadataStore.open(dir);
    try {
      const q = countChildQueries(s);
      for (let k = 0; k < 4; k++) expect(s.lookupChild('v', d.id, `none${k}`)).toBeUndefined();
      expect(q.n).toBe(4);
      expect(s.lookupChild('v', d.id, 'f4096')?.name).toBe('f4096');
    } finally {
      s.close();
    }
  });

  it('rows another store on the same file wrote are found after it closes (its open drops the known keys)', () => {
    const a = MetadataStore.open(dir);
    try {
      const root = a.rootId('v');
      const d = a.ensureChild('v', root, 'd', 'd');
      a.commitGroup();
      expect(a.lookupChild('v', d.id, 'm1')).toBeUndefined();
      expect(a.lookupChild('v', d.id, 'm2')).toBeUndefined();
      const b = MetadataStore.open(dir);
      const n = b.ensureChild('v', d.id, 'n', 'n');
      // While both are open, a's misses are not tracked either.
      expect(a.lookupChild('v', d.id, 'm3')).toBeUndefined();
      expect(a.lookupChild('v', d.id, 'm4')).toBeUndefined();
      const n2 = b.ensureChild('v', d.id, 'n2', 'n2');
      b.close();
      expect(a.lookupChild('v', d.id, 'n')?.id).toBe(n.id);
      expect(a.lookupChild('v', d.id, 'n2')?.id).toBe(n2.id);
    } finally {
      a.close();
    }
  });
});
