import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway, loopbackOnly, protocolEnabled, randomPassword } from '../../src/server/gateway.ts';
import { freePort } from '../cli/helpers.ts';
import type { ProtocolContext, ProtocolDescriptor, ProtocolPlugin } from '../../src/server/plugin.ts';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  lines(): Record<string, unknown>[] {
    return this.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/** A real (if trivial) plugin: records what the gateway hands it. */
class RecordingPlugin implements ProtocolPlugin {
  name = 'fake';
  ctx: ProtocolContext | undefined;
  stoppedWith: number | undefined;
  private up = false;
  ready(): boolean {
    return this.up;
  }
  async start(ctx: ProtocolContext): Promise<void> {
    this.ctx = ctx;
    this.up = true;
  }
  async stop(graceMs: number): Promise<void> {
    this.stoppedWith = graceMs;
    this.up = false;
  }
  describe(): string {
    const p = this.ctx!.config.protocols.fake as { port: number; listen?: string };
    return `fake on ${p.listen ?? this.ctx!.config.server.listen}:${p.port}`;
  }
}

let tmp: string;
let gateway: Gateway | undefined;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-gw-'));
});
afterEach(async () => {
  await gateway?.stop(0);
  gateway = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

async function setup(extra: Record<string, unknown> = {}): Promise<{ plugin: RecordingPlugin; registry: Map<string, ProtocolDescriptor>; log: Sink; err: Sink }> {
  const config = loadConfig({
    env: {},
    overrides: {
      'server.stateDir': join(tmp, 'state'),
      'server.shutdownGraceMs': 1234,
      // admin.port 0 means disabled, so pick a free one.
      'admin.port': await freePort(),
      'auth.bcryptRounds': 4,
      'protocols.nfs.port': 0,
      'protocols.smb.port': 0,
      'protocols.fake.port': 4321,
      shares: [{ name: 'docs', source: 'memory:' }],
      ...extra,
    },
  });
  const plugin = new RecordingPlugin();
  const registry = new Map<string, ProtocolDescriptor>([['fake', { name: 'fake', defaultPort: 4321, create: () => plugin }]]);
  const log = new Sink();
  const err = new Sink();
  gateway = new Gateway(config, { registry, logger: createLogger(config.log, { destination: log }), stderr: err });
  return { plugin, registry, log, err };
}

describe('Gateway', () => {
  it('starts plugins and the admin endpoint, creates the first admin, stops in order', async () => {
    const { plugin, log, err } = await setup();
    await gateway!.start();

    expect(plugin.ready()).toBe(true);
    expect(plugin.ctx!.sessions).toBe(gateway!.sessions);
    expect(plugin.ctx!.metrics).toBe(gateway!.metrics);
    const msgs = log.lines().map((l) => l.msg);
    expect(msgs).toContain('fake on 0.0.0.0:4321');
    // webdav keeps its default port 8080 but has no plugin in this registry.
    expect(msgs).toContain('protocol webdav not built yet');
    expect(msgs.some((m) => typeof m === 'string' && m.startsWith('admin on http://127.0.0.1:'))).toBe(true);

    expect(gateway!.users!.listUsers().map((u) => u.name)).toEqual(['admin']);
    const pw = /password: (\S+)/.exec(err.text)![1]!;
    expect(pw).toHaveLength(20);
    expect(await gateway!.users!.verifyPassword('admin', pw)).toBeDefined();
    expect(log.text).not.toContain(pw);

    const port = gateway!.adminAddress()!.port;
    const ready = await fetch(`http://127.0.0.1:${port}/ready`);
    expect(ready.status).toBe(200);

    const store = gateway!.store!;
    await gateway!.stop();
    expect(plugin.stoppedWith).toBe(1234);
    expect(store.db.isOpen).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    // stop() is idempotent.
    await gateway!.stop();
  });

  it('loopback-only first run forces listeners to 127.0.0.1 and creates no user', async () => {
    const { plugin, log, err } = await setup({ 'auth.firstRun': 'loopback-only', 'protocols.webdav.port': 0 });
    await gateway!.start();
    expect(plugin.ctx!.config.server.listen).toBe('127.0.0.1');
    expect((plugin.ctx!.config.protocols.fake as { listen?: string }).listen).toBe('127.0.0.1');
    expect(gateway!.users!.count()).toBe(0);
    expect(err.text).toBe('');
    const warn = log.lines().find((l) => l.level === 40);
    expect(String(warn?.msg)).toContain('127.0.0.1');
  });

  it('cleans up when start fails (bad share source) and rethrows', async () => {
    const { plugin } = await setup({ shares: [{ name: 'docs', source: 's3x+weird://nope' }] });
    await expect(gateway!.start()).rejects.toMatchObject({ code: 'ENOTSUP' });
    expect(plugin.ctx).toBeUndefined();
    expect(gateway!.store!.db.isOpen).toBe(false);
  });

  it('first signal stops gracefully then exits 0; a second one exits 1 at once', async () => {
    const { plugin } = await setup();
    let release!: () => void;
    const draining = new Promise<void>((r) => (release = r));
    plugin.stop = async (graceMs: number) => {
      plugin.stoppedWith = graceMs;
      await draining;
    };
    await gateway!.start();
    const signals = new EventEmitter();
    const exits: number[] = [];
    const remove = gateway!.installSignalHandlers((code) => exits.push(code), signals);
    signals.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setTimeout(r, 20));
    expect(plugin.stoppedWith).toBe(1234);
    expect(exits).toEqual([]);
    signals.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([1]);
    release();
    await gateway!.stop();
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([1, 0]);
    remove();
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('helpers: protocolEnabled, loopbackOnly, randomPassword', () => {
    const config = loadConfig({ env: {}, overrides: { shares: [{ name: 'd', source: 'memory:' }], 'protocols.nfs.port': 0 } });
    expect(protocolEnabled(config, 'webdav')).toBe(true);
    expect(protocolEnabled(config, 'nfs')).toBe(false);
    expect(protocolEnabled(config, 'fuse')).toBe(false);
    expect(protocolEnabled(config, 'unknown')).toBe(false);
    const lo = loopbackOnly(config);
    expect(lo.protocols.webdav.listen).toBe('127.0.0.1');
    expect(config.protocols.webdav.listen).toBeUndefined();
    const a = randomPassword();
    expect(a).toMatch(/^[A-Za-z2-9]{20}$/);
    expect(randomPassword()).not.toBe(a);
  });
});
