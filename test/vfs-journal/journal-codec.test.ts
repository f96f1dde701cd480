/**
 * The tree-move journal record: codec round trip, field-by-field validation and size bounds, and
 * start-up with damaged journal rows (set aside and logged, never a failed start; the good rows are
 * still finished).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { runs } from '../setup/fuzz-seed.ts';
import { MemoryBackend, MEMORY_OBJECTSTORE_CAPABILITIES } from '../../backends/memory/memory-backend.ts';
import { MetadataStore } from '../../src/store/metadata-store.ts';
import { decodeTreeMove, encodeTreeMove, TREE_MOVE_RECORD_MAX_BYTES, type TreeMoveRecord } from '../../src/vfs/tree-move/index.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { expectCode, gate, get, hooked, idsOf, makeTree, memoryLogger, moved, openEnv, removeDir, treeSpec, until, type Env } from './helpers.ts';

const good: TreeMoveRecord = {
  v: 1,
  id: '2b0c6a1e-8f0e-4c57-9d1e-1c2b3a4d5e6f',
  volume: 's',
  backend: 'memory',
  from: '/a/from dir',
  to: '/b/to',
  dirId: 42n,
  mode: 0o755,
  created: 1_700_000_000_000,
};

function withField(field: string, value: unknown): string {
  const o = JSON.parse(encodeTreeMove(good)) as Record<string, unknown>;
  if (value === undefined) delete o[field];
  else o[field] = value;
  return JSON.stringify(o);
}

function rejects(text: unknown, why: RegExp): void {
  let err: unknown;
  try {
    decodeTreeMove(text, 's');
  } catch (e) {
    err = e;
  }
  expect(isVfsError(err, 'EINVAL'), `decoding ${String(text).slice(0, 80)}`).toBe(true);
  expect((err as Error).message).toMatch(why);
}

describe('tree-move journal record', () => {
  it('round-trips, with and without a mode; ids keep 63 bits', () => {
    expect(decodeTreeMove(encodeTreeMove(good), 's')).toEqual(good);
    const { mode: _mode, ...noMode } = good;
    expect(decodeTreeMove(encodeTreeMove(noMode), 's')).toEqual(noMode);
    const big = { ...good, dirId: (1n << 63n) - 1n };
    expect(decodeTreeMove(encodeTreeMove(big), 's').dirId).toBe((1n << 63n) - 1n);
    const unicode = { ...good, from: '/données/\u00e9t\u00e9 "quoted"', to: '/\u{1F600}/x' };
    expect(decodeTreeMove(encodeTreeMove(unicode), 's')).toEqual(unicode);
  });

  it('rejects damaged or out-of-bounds records with the reason', () => {
    rejects(undefined, /not text/);
    rejects('', /not JSON/);
    rejects('{"v":1', /not JSON/);
    rejects('[1,2]', /not an object/);
    rejects('null', /not an object/);
    rejects(withField('v', 2), /unsupported version/);
    rejects(withField('v', undefined), /unsupported version/);
    rejects(withField('id', '../../etc'), /id/);
    rejects(withField('id', 'x'.repeat(65)), /id/);
    rejects(withField('volume', 'other'), /volume/);
    rejects(withField('backend', ''), /backend/);
    rejects(withField('backend', 7), /backend/);
    rejects(withField('from', 'relative'), /from/);
    rejects(withField('from', '/a/../b'), /from/);
    rejects(withField('from', '/a//b'), /from/);
    rejects(withField('from', '/'), /from/);
    rejects(withField('from', '/a\u0000b'), /from/);
    rejects(withField('to', '/' + 'n'.repeat(1025)), /to/);
    rejects(withField('to', 12), /to/);
    rejects(withField('to', '/a/from dir/in'), /overlap/);
    rejects(withField('to', '/a'), /overlap/);
    rejects(withField('dirId', '0'), /dirId/);
    rejects(withField('dirId', '-1'), /dirId/);
    rejects(withField('dirId', 42), /dirId/);
    rejects(withField('dirId', '9223372036854775808'), /dirId/);
    rejects(withField('dirId', '1e3'), /dirId/);
    rejects(withField('mode', 0o10000), /mode/);
    rejects(withField('mode', 1.5), /mode/);
    rejects(withField('created', 'yesterday'), /created/);
    rejects(withField('created', undefined), /created/);
    rejects(JSON.stringify({ ...JSON.parse(encodeTreeMove(good)), pad: 'x'.repeat(TREE_MOVE_RECORD_MAX_BYTES) }), /longer than/);
  });

  it('decoding any string either returns a valid record or throws EINVAL (total, bounded)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json({ maxDepth: 3 })), (text) => {
        try {
          const r = decodeTreeMove(text, 's');
          expect(decodeTreeMove(encodeTreeMove(r), 's')).toEqual(r);
        } catch (e) {
          expect(isVfsError(e, 'EINVAL')).toBe(true);
        }
      }),
      { numRuns: runs(2000) },
    );
    // Mutations of a valid record: every field replaced by arbitrary JSON.
    fc.assert(
      fc.property(fc.constantFrom('v', 'id', 'volume', 'backend', 'from', 'to', 'dirId', 'mode', 'created'), fc.jsonValue({ maxDepth: 2 }), (field, value) => {
        try {
          decodeTreeMove(withField(field, value), 's');
        } catch (e) {
          expect(isVfsError(e, 'EINVAL')).toBe(true);
        }
      }),
      { numRuns: runs(1000) },
    );
  });
});

describe('journal rows in the metadata store', () => {
  it('durableTransaction commits with synchronous=FULL and puts NORMAL back; a failure rolls back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-durable-'));
    const store = MetadataStore.open(dir);
    try {
      const sync = (): number => Number((store.db.prepare('PRAGMA synchronous').get() as { synchronous: number | bigint }).synchronous);
      expect(sync()).toBe(1);
      let inside = -1;
      store.durableTransaction(() => {
        inside = sync();
        store.insertTreeMove('a', 's', '{}');
      });
      expect(inside).toBe(2);
      expect(sync()).toBe(1);
      expect(() => store.durableTransaction(() => {
        store.insertTreeMove('b', 's', '{}');
        throw new Error('boom');
      })).toThrow('boom');
      expect(sync()).toBe(1);
      expect(store.pendingTreeMoves('s').map((r) => r.id)).toEqual(['a']);
      store.quarantineTreeMove('a', 'why');
      expect(store.pendingTreeMoves('s')).toEqual([]);
    } finally {
      store.close();
      removeDir(dir);
    }
  });
});

describe('start-up with damaged journal rows', () => {
  const envs: Env[] = [];
  afterEach(async () => {
    for (const e of envs.splice(0)) {
      await e.stop();
      removeDir(e.stateDir);
    }
  });

  it('sets damaged rows aside with the reason, logs them, and still finishes the good one', async () => {
    const inner = new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES });
    // A real interrupted move: the first copy never returns, then the "process" is abandoned.
    const stuck = gate();
    const env1 = openEnv(hooked(inner, { before: (op) => (op === 'copy' ? stuck.wait() : undefined) }));
    const tree = treeSpec('/src', 2, 2, 3);
    await makeTree(env1.vfs, tree);
    const ids = await idsOf(env1.vfs, tree);
    void env1.vfs.rename('s', '/src', '/dst').catch(() => undefined);
    await until(() => stuck.waiting() > 0, 'the first copy');
    env1.store.close();

    // Damage: garbage, an unknown version, a record of another backend kind, a row whose id does
    // not match its record, and a row of a share that is not configured (left alone).
    const raw = MetadataStore.open(env1.stateDir);
    const ins = raw.db.prepare('INSERT INTO tree_moves(id, vol, record, created) VALUES (?, ?, ?, 0)');
    ins.run('bad-json', 's', '{"v":1,"id":');
    ins.run('bad-version', 's', withField('v', 9));
    ins.run(good.id, 's', encodeTreeMove({ ...good, from: '/x', to: '/y', backend: 's3' }));
    ins.run('other-id', 's', encodeTreeMove({ ...good, from: '/p', to: '/q' }));
    ins.run('gone-share', 'gone', '{"not":"even valid"}');
    raw.close();

    const logger = memoryLogger();
    const env2 = openEnv(inner, { stateDir: env1.stateDir, treeMoves: { logger } });
    envs.push(env2);
    const report = await env2.vfs.resumeTreeMoves();
    expect(report).toEqual({ resumed: 1, retrying: 0, quarantined: 4, conflicts: 0 });
    for (const [p, c] of tree.files) {
      expect((await get(env2.vfs, moved(p, '/src', '/dst'))).toString()).toBe(c);
      expect((await env2.vfs.getattr('s', moved(p, '/src', '/dst'))).id).toBe(ids.get(p));
    }
    await expectCode(env2.vfs.getattr('s', '/src'), 'ENOENT');
    const rows = env2.store.db.prepare('SELECT id, vol, quarantined FROM tree_moves ORDER BY id').all() as { id: string; vol: string; quarantined: string | null }[];
    expect(rows.map((r) => [r.id, r.quarantined === null ? null : r.quarantined.replace(/:.*$/, '')])).toEqual([
      [good.id, 'bad tree move record'],
      ['bad-json', 'bad tree move record'],
      ['bad-version', 'bad tree move record'],
      ['gone-share', null],
      ['other-id', 'bad tree move record'],
    ]);
    expect(rows.find((r) => r.id === good.id)!.quarantined).toMatch(/made on a s3 backend/);
    expect(rows.find((r) => r.id === 'other-id')!.quarantined).toMatch(/id does not match/);
    const warned = logger.lines.filter((l) => l.level === 'warn' && l.msg.includes('set aside'));
    expect(warned).toHaveLength(4);
    // Quarantined rows are not retried at the next start, and nothing is guarded by them.
    await env2.vfs.mkdir('s', '/x');
    await env2.stop();
    const env3 = openEnv(inner, { stateDir: env1.stateDir });
    envs.push(env3);
    expect(await env3.vfs.resumeTreeMoves()).toEqual({ resumed: 0, retrying: 0, quarantined: 0, conflicts: 0 });
  });
});
