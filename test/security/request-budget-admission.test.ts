/**
 * Security issue 15, part 4: per-client and per-user caps on requests in flight (limits.* in the
 * config, src/session/admission.ts), through the real WebDAV front-end: a request over a cap waits
 * up to limits.inFlightWaitMs for a slot, then gets 503 with Retry-After and a body naming the
 * limit; other clients and users are not affected; slots come back when requests end.
 */
import { request, type ClientRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '../../src/config/load.ts';
import { Admission, AdmissionRefused, admissionFor, clientKey } from '../../src/session/admission.ts';
import { dav, useDav, type DavStack } from '../webdav/helpers.ts';

const ALICE: [string, string] = ['alice', 'alice-pw'];
const BOB: [string, string] = ['bob', 'bob-pw'];
const basic = ([u, p]: [string, string]): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

/** A PUT whose body is held back until finish(): a request that stays in flight. */
function heldPut(stack: DavStack, who: [string, string], path: string): { finish: () => void; done: Promise<number>; req: ClientRequest } {
  const req = request({ host: '127.0.0.1', port: stack.port, method: 'PUT', path, agent: false, headers: { Authorization: basic(who), 'Content-Length': 2 } });
  const done = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
  req.write('a');
  return { finish: () => req.end('b'), done, req };
}

/**
 * Until the server has exactly `n` requests from 127.0.0.1 in progress (held PUTs taken in, their
 * handler waiting for the body; or all of them over). The gateway's own Admission is looked up
 * the way its plugins find it.
 */
async function inFlight(stack: DavStack, n: number): Promise<void> {
  const admission = admissionFor(stack.gateway.sessions!, stack.gateway.config.limits);
  for (let i = 0; i < 250 && admission.inFlightOf('127.0.0.1') !== n; i++) await new Promise((r) => setTimeout(r, 20));
  expect(admission.inFlightOf('127.0.0.1')).toBe(n);
}

describe('per-client in-flight cap', () => {
  let stack: DavStack;
  useDav((s) => (stack = s), { alice: 'alice-pw', bob: 'bob-pw' }, { config: { 'limits.maxInFlightPerClient': 2, 'limits.maxInFlightPerUser': 0, 'limits.inFlightWaitMs': 300 } });

  it('a request over the cap waits, then gets 503 with Retry-After naming limits.maxInFlightPerClient; once a slot frees, requests pass again', async () => {
    const a = heldPut(stack, ALICE, '/mem/a.txt');
    const b = heldPut(stack, BOB, '/mem/b.txt');
    await inFlight(stack, 2);
    const t0 = performance.now();
    // Another user from the same address: the per-client cap applies.
    const r = await dav(stack, 'GET', '/mem/', { auth: BOB });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toMatch(/^\d+$/);
    expect(r.text).toContain('limits.maxInFlightPerClient');
    // It waited for a slot before giving up.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);

    a.finish();
    expect(await a.done).toBe(201);
    expect((await dav(stack, 'GET', '/mem/a.txt', { auth: ALICE })).status).toBe(200);
    b.finish();
    expect(await b.done).toBe(201);
  });

  it('a request waiting for a slot gets the one freed within the wait', async () => {
    const a = heldPut(stack, ALICE, '/mem/c.txt');
    const b = heldPut(stack, ALICE, '/mem/d.txt');
    await inFlight(stack, 2);
    const waiting = dav(stack, 'PROPFIND', '/mem/', { auth: BOB, headers: { Depth: '0' } });
    await new Promise((r) => setTimeout(r, 50));
    a.finish();
    expect((await waiting).status).toBe(207);
    expect(await a.done).toBe(201);
    b.finish();
    expect(await b.done).toBe(201);
  });

  it('a client that gives up while waiting leaves no slot taken', async () => {
    const a = heldPut(stack, ALICE, '/mem/e.txt');
    const b = heldPut(stack, ALICE, '/mem/f.txt');
    await inFlight(stack, 2);
    // Queued behind the cap, then abandoned.
    const gone = request({ host: '127.0.0.1', port: stack.port, method: 'GET', path: '/mem/', agent: false, headers: { Authorization: basic(ALICE) } });
    gone.on('error', () => undefined);
    gone.end();
    await new Promise((r) => setTimeout(r, 50));
    gone.destroy();
    a.finish();
    b.finish();
    expect(await a.done).toBe(201);
    expect(await b.done).toBe(201);
    // Both slots are free again: two held requests fit, as at the start.
    await inFlight(stack, 0);
    const c = heldPut(stack, ALICE, '/mem/g.txt');
    const d = heldPut(stack, ALICE, '/mem/h.txt');
    await inFlight(stack, 2);
    c.finish();
    d.finish();
    expect(await c.done).toBe(201);
    expect(await d.done).toBe(201);
    expect((await dav(stack, 'GET', '/mem/g.txt', { auth: ALICE })).status).toBe(200);
  });
});

describe('per-user in-flight cap', () => {
  let stack: DavStack;
  useDav((s) => (stack = s), { alice: 'alice-pw', bob: 'bob-pw' }, { config: { 'limits.maxInFlightPerClient': 0, 'limits.maxInFlightPerUser': 2, 'limits.inFlightWaitMs': 200 } });

  it('a user over the cap gets 503 with Retry-After naming limits.maxInFlightPerUser; another user is served meanwhile', async () => {
    const a = heldPut(stack, ALICE, '/mem/a.txt');
    const b = heldPut(stack, ALICE, '/mem/b.txt');
    await inFlight(stack, 2);
    const r = await dav(stack, 'GET', '/mem/', { auth: ALICE });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toMatch(/^\d+$/);
    expect(r.text).toContain('limits.maxInFlightPerUser');
    expect((await dav(stack, 'GET', '/mem/', { auth: BOB })).status).toBe(200);
    a.finish();
    b.finish();
    expect(await a.done).toBe(201);
    expect(await b.done).toBe(201);
    expect((await dav(stack, 'GET', '/mem/a.txt', { auth: ALICE })).status).toBe(200);
  });
});

describe('Admission counters', () => {
  it('client keys: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64', () => {
    expect(clientKey('192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe(clientKey('2001:db8:1:2:aaaa::1'));
    expect(clientKey('2001:db8:1:2::1')).not.toBe(clientKey('2001:db8:1:3::1'));
    expect(clientKey('2001:0DB8:0001:0002::9')).toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey('fe80::1%eth0')).toBe(clientKey('fe80::2'));
  });

  it('connections: refused over the cap, counted per /64, released once', () => {
    const a = new Admission({ maxConnectionsPerClient: 2, maxInFlightPerClient: 0, maxInFlightPerUser: 0, inFlightWaitMs: 0 });
    const r1 = a.openConnection('2001:db8::1');
    const r2 = a.openConnection('2001:db8::2');
    if (!r1 || !r2) throw new Error('the first two connections must be admitted');
    expect(a.openConnection('2001:db8::3')).toBeUndefined();
    expect(a.openConnection('192.0.2.1')).toBeTruthy();
    r1();
    r1();
    expect(a.connectionsOf('2001:db8::1')).toBe(1);
    expect(a.openConnection('2001:db8::3')).toBeTruthy();
    expect(a.openConnection('2001:db8::4')).toBeUndefined();
  });

  it('requests: first come first served, a refusal names its limit, a pass releases once', async () => {
    const a = new Admission({ maxConnectionsPerClient: 0, maxInFlightPerClient: 1, maxInFlightPerUser: 0, inFlightWaitMs: 500 });
    const first = await a.enter('192.0.2.1');
    const order: string[] = [];
    const second = Promise.resolve(a.enter('192.0.2.1')).then((p) => (order.push('second'), p));
    const third = Promise.resolve(a.enter('192.0.2.1')).then((p) => (order.push('third'), p));
    first.release();
    first.release();
    (await second).release();
    (await third).release();
    expect(order).toEqual(['second', 'third']);
    expect(a.inFlightOf('192.0.2.1')).toBe(0);
    const none = new Admission({ maxConnectionsPerClient: 0, maxInFlightPerClient: 1, maxInFlightPerUser: 0, inFlightWaitMs: 0 });
    const held = await none.enter('192.0.2.1');
    expect(() => none.enter('192.0.2.1')).toThrow(AdmissionRefused);
    held.release();
  });
});

describe('limits config', () => {
  const base = { shares: [{ name: 'd', source: 'memory:' }] };

  it('has defaults, and each key can be set from the environment', () => {
    const d = loadConfig({ env: {}, overrides: base });
    expect(d.limits).toEqual({ maxConnectionsPerClient: 256, maxInFlightPerClient: 64, maxInFlightPerUser: 64, inFlightWaitMs: 1000 });
    const c = loadConfig({ env: { PORTICO_LIMITS__MAX_IN_FLIGHT_PER_USER: '8', PORTICO_PROTOCOLS__WEBDAV__MAX_PROPFIND_PROPERTIES: '32' }, overrides: base });
    expect(c.limits.maxInFlightPerUser).toBe(8);
    expect((c.protocols.webdav as Record<string, unknown>).maxPropfindProperties).toBe(32);
  });

  it('refuses bad values naming the key', () => {
    const bad = (o: Record<string, unknown>): string => {
      try {
        loadConfig({ env: {}, overrides: { ...base, ...o } });
      } catch (e) {
        if (e instanceof ConfigError) return e.message;
        throw e;
      }
      return 'accepted';
    };
    expect(bad({ 'limits.maxConnectionsPerClient': -1 })).toContain('limits.maxConnectionsPerClient');
    expect(bad({ 'limits.inFlightWaitMs': 1.5 })).toContain('limits.inFlightWaitMs');
    expect(bad({ 'limits.maxConections': 3 })).toContain('limits');
    expect(bad({ 'protocols.webdav.maxPropfindProperties': 0 })).toContain('protocols.webdav.maxPropfindProperties');
    expect(bad({ 'protocols.webdav.maxPropfindResponseBytes': 10 })).toContain('protocols.webdav.maxPropfindResponseBytes');
  });
});
