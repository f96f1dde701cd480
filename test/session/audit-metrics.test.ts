/**
 * The session gate's side effects: one audit entry per change (with who, from where, what, and the
 * outcome, including refusals), none for reads; every operation counted in the metrics with its
 * status; bytes counted per protocol.
 */
import { describe, it, expect } from 'vitest';
import { MemoryBackend } from '../../backends/memory/memory-backend.ts';
import { makeVfsEnv, alice, bob, RO, auditCapture } from '../helpers/vfs-env.ts';
import { expectCode, writeFile, readFile } from '../conformance/vfs-conformance.ts';
import { Metrics } from '../../src/metrics/metrics.ts';

describe('audit log and metrics through the session gate', () => {
  it('audits changes and refusals, not reads; counts operations, statuses and bytes', async () => {
    const { audit, lines } = auditCapture();
    const metrics = new Metrics({ defaultMetrics: false });
    const env = makeVfsEnv(new MemoryBackend(), {
      metrics,
      audit,
      share: { access: [{ users: ['alice'], rights: ['read', 'write'] }, { users: ['bob'], rights: ['read'] }] },
    });
    try {
      const a = env.sessions.openSession({ principal: alice, protocol: 'webdav', clientAddress: '192.0.2.7' });
      await a.mkdir('s', '/d');
      await writeFile(a, '/d/f', 'hello');
      expect((await readFile(a, '/d/f')).toString()).toBe('hello');
      await a.rename('s', '/d/f', '/d/g');
      const b = env.sessions.openSession({ principal: bob, protocol: 'smb', clientAddress: '192.0.2.8' });
      await expectCode(b.unlink('s', '/d/g'), 'EACCES');
      await expectCode(b.open('s', '/missing', { access: RO, owner: 'o' }), 'ENOENT');
      await new Promise((r) => setImmediate(r));

      const ops = lines.map((l) => `${l.user}:${l.op}:${l.status}`);
      expect(ops).toEqual(['alice:mkdir:ok', 'alice:open:ok', 'alice:rename:ok', 'bob:unlink:EACCES']);
      const ren = lines.find((l) => l.op === 'rename')!;
      expect(ren).toMatchObject({ name: 'audit', share: 's', path: '/d/f', to: '/d/g', client: '192.0.2.7', protocol: 'webdav' });
      expect(typeof ren.session).toBe('string');

      const text = await metrics.metricsText();
      expect(text).toMatch(/portico_requests_total\{protocol="webdav",op="mkdir",status="ok"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="smb",op="unlink",status="EACCES"\} 1/);
      expect(text).toMatch(/portico_requests_total\{protocol="smb",op="open",status="ENOENT"\} 1/);
      expect(text).toMatch(/portico_bytes_written_total\{protocol="webdav"\} 5/);
      expect(text).toMatch(/portico_bytes_read_total\{protocol="webdav"\} 5/);
      expect(text).toMatch(/portico_sessions_open\{protocol="smb"\} 1/);
      await b.end();
      expect(await metrics.metricsText()).toMatch(/portico_sessions_open\{protocol="smb"\} 0/);
    } finally {
      await env.destroy();
    }
  });
});
