/**
 * ChangeTime kept by Portico over a backend's ctime (src/vfs/change-times.ts), through a Session
 * on the local and memory backends: a Windows-attribute or creation-time change (kept in the store,
 * invisible to the backend) moves ChangeTime to now; an explicit ChangeTime is reported as set;
 * a later backend change (a write) shows the backend's newer ctime again; the table is bounded.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { LocalBackend } from '../../backends/local/local-backend.ts';
import { ChangeTimes, MAX_KEPT } from '../../src/vfs/change-times.ts';
import { makeVfsEnv, alice, RW, type VfsEnv } from '../helpers/vfs-env.ts';
import { writeFile } from '../conformance/vfs-conformance.ts';
import { WinAttr } from '../../src/vfs/types.ts';

describe('ChangeTimes', () => {
  it('reports the kept time until the backend ctime passes its base, and stays bounded', () => {
    const t = new ChangeTimes();
    t.set(1n, 500n, 100n);
    expect(t.apply(1n, 100n)).toBe(500n);
    expect(t.apply(1n, 90n)).toBe(500n);
    expect(t.apply(1n, 101n)).toBe(101n);
    expect(t.apply(1n, 100n)).toBe(100n); // dropped once passed
    for (let i = 0; i < MAX_KEPT + 10; i++) t.set(BigInt(i + 10), 1n, 0n);
    expect(t.size).toBe(MAX_KEPT);
    expect(t.apply(10n, 0n)).toBe(0n); // the oldest went
  });
});

for (const backend of ['memory', 'local'] as const) {
  describe(`ChangeTime through a Session (${backend})`, () => {
    let env: VfsEnv;
    let root = '';
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'portico-ctime-'));
      env = makeVfsEnv(backend === 'memory' ? new MemoryBackend() : new LocalBackend(root));
    });
    afterEach(async () => {
      await env.destroy();
      rmSync(root, { recursive: true, force: true });
    });

    it('an attribute change moves it, an explicit one is kept, a write moves past it', async () => {
      const s = env.session(alice, 'smb');
      await writeFile(s, '/f', 'x');
      const before = (await s.getattr('s', '/f')).ctimeNs;
      await new Promise((r) => setTimeout(r, 20));
      const a = await s.setattr('s', '/f', { winAttributes: WinAttr.HIDDEN });
      expect(a.ctimeNs).toBeGreaterThan(before);
      const set = 1_900_000_000_000_000_000n;
      expect((await s.setattr('s', '/f', { ctimeNs: set })).ctimeNs).toBe(set);
      expect((await s.getattr('s', '/f')).ctimeNs).toBe(set);
      await new Promise((r) => setTimeout(r, 20));
      const h = await s.open('s', '/f', { access: RW, owner: 'o' });
      await s.write(h, 0, Buffer.from('y'));
      await s.close(h);
      const after = (await s.getattr('s', '/f')).ctimeNs;
      expect(after).not.toBe(set);
      expect(after).toBeGreaterThan(a.ctimeNs);
    });
  });
}
