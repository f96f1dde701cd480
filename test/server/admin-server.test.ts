import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer } from '../../src/server/admin-server.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import type { ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';
import type { Backend } from '../../src/vfs/backend.ts';
import { VfsError } from '../../src/vfs/errors.ts';

/** A minimal real plugin: "listening" once start() ran, not after stop(). */
function fakePlugin(name: string): ProtocolPlugin {
  let listening = false;
  return {
    name,
    ready: () => listening,
    start: async () => {
      listening = true;
    },
    stop: async () => {
      listening = false;
    },
    describe: () => `${name} on nowhere`,
  };
}

/** Only check() matters to /ready; a backend whose health the test controls. */
function checkOnlyBackend(state: { ok: boolean; hang?: boolean }): [string, Backend] {
  const backend = {
    kind: 'test',
    check: () =>
      state.hang ? new Promise<void>(() => {}) : state.ok ? Promise.resolve() : Promise.reject(new VfsError('EIO', 'bucket unreachable')),
  } as unknown as Backend;
  return ['data', backend];
}

let admin: AdminServer | undefined;
afterEach(async () => {
  await admin?.stop();
  admin = undefined;
});

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

describe('admin server', () => {
  it('serves /health, /ready (503 then 200), /metrics, 404 and 405', async () => {
    const registry = new Map<string, ProtocolDescriptor>();
    registry.set('fake', { name: 'fake', defaultPort: 1, create: () => fakePlugin('fake') });
    const plugin = registry.get('fake')!.create();
    const backendState = { ok: false };
    const metrics = new Metrics({ defaultMetrics: false });
    admin = new AdminServer({
      listen: '127.0.0.1',
      port: 0,
      metrics,
      plugins: () => [plugin],
      backends: () => [checkOnlyBackend(backendState)],
    });
    const { port } = await admin.start();

    const health = await get(port, '/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });

    const notReady = await get(port, '/ready');
    expect(notReady.status).toBe(503);
    const body = JSON.parse(notReady.body) as { notReady: { kind: string; name: string; reason: string }[] };
    expect(body.notReady).toEqual([
      { kind: 'protocol', name: 'fake', reason: 'not listening' },
      { kind: 'share', name: 'data', reason: 'bucket unreachable' },
    ]);

    await plugin.start({} as never);
    const stillNotReady = await get(port, '/ready');
    expect(stillNotReady.status).toBe(503);
    expect(stillNotReady.body).toContain('"share"');
    expect(stillNotReady.body).not.toContain('"protocol"');

    backendState.ok = true;
    const ready = await get(port, '/ready');
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });

    metrics.observeRequest('webdav', 'PROPFIND', 'ok', 0.002);
    metrics.observeRequest('webdav', 'GET', 'ENOENT', 0.0001);
    metrics.addBytes('webdav', 'read', 1234);
    const m = await get(port, '/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toContain('text/plain');
    expect(m.body).toContain('portico_requests_total{protocol="webdav",op="PROPFIND",status="ok"} 1');
    expect(m.body).toContain('portico_requests_total{protocol="webdav",op="GET",status="ENOENT"} 1');
    expect(m.body).toContain('portico_bytes_read_total{protocol="webdav"} 1234');
    expect(m.body).toContain('portico_request_duration_seconds_bucket{le="0.0001",protocol="webdav",op="GET"} 1');

    expect((await get(port, '/nope')).status).toBe(404);
    const post = await get(port, '/health', 'POST');
    expect(post.status).toBe(405);
    const head = await get(port, '/health', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('reports a hanging backend check as not ready within the timeout', async () => {
    admin = new AdminServer({
      listen: '127.0.0.1',
      port: 0,
      metrics: new Metrics({ defaultMetrics: false }),
      plugins: () => [],
      backends: () => [checkOnlyBackend({ ok: true, hang: true })],
      checkTimeoutMs: 150,
    });
    const { port } = await admin.start();
    const t0 = Date.now();
    const r = await get(port, '/ready');
    expect(r.status).toBe(503);
    expect(r.body).toContain('check timed out after 150 ms');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('includes default process metrics unless disabled, and separate instances do not clash', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.observeRequest('nfs', 'READ', 'ok', 0.01);
    expect(await a.metricsText()).toContain('process_cpu_user_seconds_total');
    expect(await b.metricsText()).not.toContain('portico_requests_total{');
  });

  it('request histograms: le buckets are inclusive and cumulative, with +Inf, _sum and _count', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.observeRequest('nfs', 'WRITE', 'ok', 0.001);
    m.observeRequest('nfs', 'WRITE', 'EROFS', 0.003);
    m.observeRequest('nfs', 'WRITE', 'ok', 42);
    const text = await m.metricsText();
    const line = (le: string): string => `portico_request_duration_seconds_bucket{le="${le}",protocol="nfs",op="WRITE"}`;
    expect(text).toContain(`${line('0.0005')} 0\n`);
    expect(text).toContain(`${line('0.001')} 1\n`);
    expect(text).toContain(`${line('0.005')} 2\n`);
    expect(text).toContain(`${line('10')} 2\n`);
    expect(text).toContain(`${line('+Inf')} 3\n`);
    expect(text).toContain('portico_request_duration_seconds_count{protocol="nfs",op="WRITE"} 3\n');
    expect(text).toContain('portico_request_duration_seconds_sum{protocol="nfs",op="WRITE"} 42.004\n');
    expect(text).toContain('portico_requests_total{protocol="nfs",op="WRITE",status="ok"} 2\n');
    expect(text).toContain('portico_requests_total{protocol="nfs",op="WRITE",status="EROFS"} 1\n');
    expect(text).toContain('# TYPE portico_request_duration_seconds histogram');
    // Registry JSON export (used by some exporters) works with these families too.
    const json = await m.registry.getMetricsAsJSON();
    expect(json.map((j) => j.name)).toContain('portico_backend_errors_total');
  });
});
