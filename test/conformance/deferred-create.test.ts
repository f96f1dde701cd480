/**
 * Deferred creates on object stores (src/vfs/deferred-create.ts): a file created through a handle
 * with write access is uploaded once, by that handle's first publish, and until then this gateway
 * shows it like the empty object it used to upload at once. Run over the memory backend with
 * object-store capabilities and over S3 (s3rver, counting requests).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMORY_OBJECTSTORE_CAPABILITIES, MemoryBackend } from '../../backends/memory/memory-backend.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { makeVfsEnv, RO, RW, type VfsEnv } from '../helpers/vfs-env.ts';
import { s3Env, type S3Env } from '../s3/fixture.ts';
import { expectCode, readFile } from './vfs-conformance.ts';

const enc = (s: string): Buffer => Buffer.from(s);

async function exists(b: Backend, path: string): Promise<boolean> {
  try {
    await b.stat(path);
    return true;
  } catch (e) {
    if (isVfsError(e, 'ENOENT')) return false;
    throw e;
  }
}

async function listNames(env: VfsEnv, path: string): Promise<string[]> {
  const r = await env.session().readdir('s', path, { limit: 1000 });
  return r.entries.map((e) => e.name);
}

interface Fixture {
  name: string;
  /** A fresh backend (the store as other clients see it). */
  backend(): Promise<Backend>;
  /** Store requests so far (undefined when the backend does not count them). */
  requests?(b: Backend): number;
  before?(): Promise<void>;
  after?(): Promise<void>;
}

function suite(f: Fixture): void {
  describe(`deferred creates: ${f.name}`, () => {
    beforeAll(async () => f.before?.());
    afterAll(async () => f.after?.());

    const setup = async (): Promise<{ b: Backend; env: VfsEnv }> => {
      const b = await f.backend();
      const env = makeVfsEnv(b);
      await env.session().mkdir('s', '/d');
      return { b, env };
    };

    it('a created file shows on this gateway at once and reaches the store once, at close, with its mode', async () => {
      const { b, env } = await setup();
      const a = env.session();
      const other = env.session();
      const before = f.requests?.(b);
      const h = await a.open('s', '/d/new.txt', { access: RW, disposition: 'create', owner: 'a', expect: 'file', mode: 0o640 });
      const checks = f.requests?.(b);
      // Not in the store yet, but every lookup here sees an empty file.
      expect(await exists(b, '/d/new.txt')).toBe(false);
      const st = await other.getattr('s', '/d/new.txt');
      expect(st).toMatchObject({ type: 'file', size: 0, mode: 0o640 });
      expect(await listNames(env, '/d')).toEqual(['new.txt']);
      expect((await readFile(other, '/d/new.txt')).length).toBe(0);
      await expectCode(other.open('s', '/d/new.txt', { access: RW, disposition: 'create', owner: 'o', expect: 'file' }), 'EEXIST');
      // (the listing above cost a ListObjectsV2: not part of the create)
      const checked = checks === undefined ? 0 : f.requests!(b) - checks;
      await a.write(h, 0, enc('hello'));
      await a.close(h);
      expect((await b.read('/d/new.txt', 0, 100)).toString()).toBe('hello');
      expect((await b.stat('/d/new.txt')).mode).toBe(0o640);
      // S3: one PUT (its LastModified is taken from the answer's Date, 840f689): the parent was just
      // made here, so the name needs no lookup, and no empty object goes out first.
      if (before !== undefined) expect(f.requests!(b) - before - checked).toBe(1);
      expect((await other.getattr('s', '/d/new.txt')).id).toBe(st.id);
      await env.destroy();
    });

    it('a create without write access uploads the empty file at once', async () => {
      const { b, env } = await setup();
      const s = env.session();
      const h = await s.open('s', '/d/ro', { access: RO, disposition: 'create', owner: 'a', expect: 'file' });
      expect(await exists(b, '/d/ro')).toBe(true);
      await s.close(h);
      await env.destroy();
    });

    it('deleting a pending file forgets it: nothing is uploaded, not even at the creator\'s close', async () => {
      const { b, env } = await setup();
      const a = env.session();
      const h = await a.open('s', '/d/gone', { access: RW, disposition: 'create', owner: 'a', expect: 'file' });
      await a.write(h, 0, enc('data'));
      const before = f.requests?.(b);
      await env.session().unlink('s', '/d/gone');
      await expectCode(env.session().getattr('s', '/d/gone'), 'ENOENT');
      await a.close(h);
      expect(await exists(b, '/d/gone')).toBe(false);
      if (before !== undefined) expect(f.requests!(b) - before).toBe(0);
      expect(await listNames(env, '/d')).toEqual([]);
      await env.destroy();
    });

    it('a directory holding a pending file is not empty; a pending file is not a directory', async () => {
      const { env } = await setup();
      const a = env.session();
      const h = await a.open('s', '/d/f', { access: RW, disposition: 'create', owner: 'a', expect: 'file' });
      await expectCode(a.rmdir('s', '/d'), 'ENOTEMPTY');
      await expectCode(a.mkdir('s', '/d/f'), 'EEXIST');
      await expectCode(a.open('s', '/d/f/x', { access: RW, disposition: 'create', owner: 'a', expect: 'file' }), 'ENOTDIR');
      await a.close(h);
      await a.unlink('s', '/d/f');
      await a.rmdir('s', '/d');
      await env.destroy();
    });

    it('chmod and utimes of a pending file are applied by its one upload', async () => {
      const { b, env } = await setup();
      const a = env.session();
      const h = await a.open('s', '/d/t', { access: RW, disposition: 'create', owner: 'a', expect: 'file', mode: 0o600 });
      await a.write(h, 0, enc('abc'));
      const mtimeNs = 1_600_000_000_123_456_789n;
      const at = await a.setattr('s', '/d/t', { mode: 0o604, mtimeNs });
      expect(at.mode).toBe(0o604);
      expect(await exists(b, '/d/t')).toBe(false);
      await a.close(h);
      const st = await b.stat('/d/t');
      expect(st.mode).toBe(0o604);
      expect(st.size).toBe(3);
      if (b.capabilities.timestampPrecisionNs === 1) expect(st.mtimeNs).toBe(mtimeNs);
      await env.destroy();
    });

    it('renaming a pending file writes it first, and the open handle publishes at the new name', async () => {
      const { b, env } = await setup();
      const a = env.session();
      const h = await a.open('s', '/d/old', { access: RW, disposition: 'create', owner: 'a', expect: 'file' });
      await a.write(h, 0, enc('content'));
      await a.rename('s', '/d/old', '/d/moved');
      await expectCode(a.getattr('s', '/d/old'), 'ENOENT');
      expect(await exists(b, '/d/old')).toBe(false);
      await a.close(h);
      expect((await b.read('/d/moved', 0, 100)).toString()).toBe('content');
      expect(await listNames(env, '/d')).toEqual(['moved']);
      await env.destroy();
    });

    it('an open failure after the create leaves the empty file (as an immediate create would have)', async () => {
      const { b, env } = await setup();
      const a = env.session();
      // Two creators race on one name: the loser gets EEXIST and the winner's file stays pending.
      const [r1, r2] = await Promise.allSettled([
        a.open('s', '/d/race', { access: RW, disposition: 'create', owner: 'a', expect: 'file' }),
        a.open('s', '/d/race', { access: RW, disposition: 'create', owner: 'b', expect: 'file' }),
      ]);
      const won = [r1, r2].filter((r) => r.status === 'fulfilled');
      expect(won.length).toBe(1);
      expect([r1, r2].some((r) => r.status === 'rejected' && isVfsError(r.reason, 'EEXIST'))).toBe(true);
      await a.close((won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof a.open>>>).value);
      expect((await b.stat('/d/race')).size).toBe(0);
      await env.destroy();
    });
  });
}

suite({
  name: 'memory (object-store capabilities)',
  backend: async () => new MemoryBackend({ capabilities: MEMORY_OBJECTSTORE_CAPABILITIES }),
});

let s3: S3Env;
suite({
  name: 's3 (s3rver)',
  before: async () => {
    s3 = await s3Env();
  },
  after: async () => s3.close(),
  backend: async () => s3.backend(),
  requests: (b) => (b as ReturnType<S3Env['backend']>).meters.totalRequests(),
});

describe('deferred creates on S3: failures and lookups', () => {
  let env: S3Env;
  beforeAll(async () => {
    env = await s3Env();
  });
  afterAll(async () => env.close());

  it('a failed first upload leaves an empty object, and the close reports the error', async () => {
    const b = env.backend({ maxAttempts: 2 });
    const v = makeVfsEnv(b);
    const s = v.session();
    await s.mkdir('s', '/d');
    const h = await s.open('s', '/d/f', { access: RW, disposition: 'create', owner: 'a', expect: 'file' });
    await s.write(h, 0, enc('lost'));
    env.proxy.inject({ kind: 'status500', times: 2, match: (r) => r.op === 'PutObject' });
    await expect(s.close(h)).rejects.toMatchObject({ code: 'EIO' });
    // The empty object goes out in the background once the store answers again.
    let there = false;
    for (let i = 0; i < 100 && !there; i++) {
      there = await env.rawHead(`${b.keys.prefix}d/f`);
      if (!there) await new Promise((r) => setTimeout(r, 20));
    }
    expect(there).toBe(true);
    expect((await env.rawGet(`${b.keys.prefix}d/f`))?.length).toBe(0);
    env.proxy.clearFaults();
    await v.destroy();
  });

  it('creates in a directory listed completely need no lookup; invalidate() and the TTL bound what that hides', async () => {
    const b = env.backend();
    const v = makeVfsEnv(b);
    const s = v.session();
    await env.rawPut(`${b.keys.prefix}listed/a`, 'x');
    expect(await listNames(v, '/listed')).toEqual(['a']);
    const before = b.meters.totalRequests();
    const h = await s.open('s', '/listed/b', { access: RW, disposition: 'create', owner: 'a', expect: 'file' });
    await s.write(h, 0, enc('b'));
    await s.close(h);
    // One PutObject: no lookup of the name (the directory was listed completely), no HEAD after it.
    expect(b.meters.totalRequests() - before).toBe(1);
    // Another client's object under a name we have not looked up: hidden until the TTL or an invalidate.
    await env.rawPut(`${b.keys.prefix}listed/c`, 'c');
    await expectCode(b.stat('/listed/c'), 'ENOENT');
    b.invalidate('/listed/c');
    expect((await b.stat('/listed/c')).size).toBe(1);
    // Our own files stay visible: the name was added to the directory's known membership.
    expect((await b.stat('/listed/b')).size).toBe(1);
    // TTL 0: no such shortcut.
    const fresh = env.backend({ prefix: b.keys.prefix.slice(0, -1), metaTtlMs: 0 });
    await names(fresh);
    await env.rawPut(`${b.keys.prefix}listed/d`, 'd');
    expect((await fresh.stat('/listed/d')).size).toBe(1);
    await v.destroy();

    async function names(x: Backend): Promise<string[]> {
      return (await x.list('/listed', { limit: 1000 })).entries.map((e) => e.name);
    }
  });
});
