/**
 * Session.removeIn (NFS REMOVE, FUSE unlink/rmdir): the name is looked up once (Vfs.remove), and
 * the rights, audit lines and counts are those of the getattr then unlink or rmdir it replaces —
 * read on the name before anything, write once it is found.
 */
import { describe, it, expect } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { makeVfsEnv, alice, bob, auditCapture } from '../helpers/vfs-env.ts';
import { expectCode, writeFile } from '../conformance/vfs-conformance.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import type { Principal } from '../../src/auth/authenticator.ts';

const carol: Principal = { user: 'carol', uid: 1003, gid: 1003, groups: [], guest: false };

describe('Session.removeIn', () => {
  it('looks the name up once, needs read then write, and audits unlink or rmdir', async () => {
    const { audit, lines } = auditCapture();
    const metrics = new Metrics({ defaultMetrics: false });
    const backend = new MemoryBackend();
    const stats: string[] = [];
    const stat = backend.stat.bind(backend);
    backend.stat = (path: string) => {
      stats.push(path);
      return stat(path);
    };
    const env = makeVfsEnv(backend, {
      metrics,
      audit,
      share: {
        access: [
          { users: ['alice'], rights: ['read', 'write'] },
          { users: ['bob'], rights: ['read'] },
          { users: ['carol'], rights: ['write'] },
        ],
      },
    });
    try {
      const a = env.sessions.openSession({ principal: alice, protocol: 'nfs', clientAddress: '192.0.2.7' });
      const b = env.sessions.openSession({ principal: bob, protocol: 'nfs', clientAddress: '192.0.2.8' });
      const c = env.sessions.openSession({ principal: carol, protocol: 'nfs', clientAddress: '192.0.2.9' });
      await a.mkdir('s', '/d');
      await a.mkdir('s', '/d/sub');
      await a.mkdir('s', '/d/full');
      await writeFile(a, '/d/f', 'hello');
      await writeFile(a, '/d/full/x', 'x');
      const dir = (await a.getattr('s', '/d')).id;
      await new Promise((r) => setImmediate(r));
      lines.length = 0;

      // Read but not write: refused once the name is found, audited as the unlink it would be.
      await expectCode(b.removeIn('s', dir, 'f'), 'EACCES');
      // Write but not read: refused before the name is looked up, as the getattr was (not audited).
      await expectCode(c.removeIn('s', dir, 'f'), 'EACCES');
      await expectCode(a.removeIn('s', dir, 'missing'), 'ENOENT');
      expect((await a.getattr('s', '/d/f')).type).toBe('file');

      stats.length = 0;
      await a.removeIn('s', dir, 'f');
      expect(stats.filter((p) => p === '/d/f')).toEqual(['/d/f']);
      await expectCode(a.getattr('s', '/d/f'), 'ENOENT');
      await a.removeIn('s', dir, 'sub');
      await expectCode(a.getattr('s', '/d/sub'), 'ENOENT');
      await expectCode(a.removeIn('s', dir, 'full'), 'ENOTEMPTY');
      await new Promise((r) => setImmediate(r));

      expect(lines.map((l) => `${l.user}:${l.op}:${l.path}:${l.status}`)).toEqual([
        'bob:unlink:/d/f:EACCES',
        'alice:unlink:/d/f:ok',
        'alice:rmdir:/d/sub:ok',
        'alice:rmdir:/d/full:ENOTEMPTY',
      ]);
      const text = await metrics.metricsText();
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="getattr",status="EACCES"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="getattr",status="ENOENT"\} 3/);
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="unlink",status="EACCES"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="unlink",status="ok"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="rmdir",status="ok"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="nfs",op="rmdir",status="ENOTEMPTY"\} 1/);
    } finally {
      await env.destroy();
    }
  });
});
