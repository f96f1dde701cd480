import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLogger, createLogger, usePretty } from '../../src/log/logger.ts';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-log-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

const cfg = (audit: { enabled: boolean; file: string }, level: 'info' | 'debug' = 'info') => ({ level, format: 'json' as const, audit });

describe('logger', () => {
  it('writes JSON lines with the session/req child convention and redacts passwords', () => {
    let out = '';
    const dest = new Writable({
      write(chunk: Buffer, _e, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const root = createLogger(cfg({ enabled: false, file: '-' }), { destination: dest });
    const s = root.child({ session: 's1', protocol: 'smb' });
    s.child({ req: 7 }).info({ password: 'hunter2', user: 'bob' }, 'login');
    s.debug('hidden at info');
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ session: 's1', protocol: 'smb', req: 7, user: 'bob', msg: 'login', password: '[redacted]' });
  });

  it('audit logger appends to a file (creating its directory) under the name "audit"', () => {
    const file = join(tmp, 'sub', 'audit.log');
    const a = createAuditLogger(cfg({ enabled: true, file }));
    a.info({ action: 'write', path: '/x' });
    const b = createAuditLogger(cfg({ enabled: true, file }));
    b.info({ action: 'delete', path: '/y' });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.name, l.action])).toEqual([
      ['audit', 'write'],
      ['audit', 'delete'],
    ]);
  });

  it('the audit logger redacts the same keys as the root logger (top level and one level down) without changing the entry', () => {
    let out = '';
    const dest = new Writable({
      write(chunk: Buffer, _e, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const a = createAuditLogger(cfg({ enabled: true, file: '-' }), { destination: dest });
    const entry = { user: 'bob', password: 'hunter2', auth: { authorization: 'Basic xyz', scheme: 'basic' }, cfg: { secretKey: 'k', secret: 's' }, path: '/a' };
    a.info(entry, 'audit');
    a.info({ op: 'open', path: '/b', status: 'ok' }, 'audit');
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({
      name: 'audit',
      user: 'bob',
      password: '[redacted]',
      auth: { authorization: '[redacted]', scheme: 'basic' },
      cfg: { secretKey: '[redacted]', secret: '[redacted]' },
      path: '/a',
    });
    expect(lines[1]).toMatchObject({ name: 'audit', op: 'open', path: '/b', status: 'ok' });
    // The caller's object is left as it was.
    expect(entry.password).toBe('hunter2');
    expect(entry.auth.authorization).toBe('Basic xyz');
    // Nothing else of the line changes: the root logger (pino's redact) writes the same fields.
    const keys = (l: Record<string, unknown>): string[] => Object.keys(l).filter((k) => !['time', 'pid', 'hostname', 'name'].includes(k)).sort();
    let rootOut = '';
    const root = createLogger(cfg({ enabled: false, file: '-' }), {
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          rootOut += chunk.toString();
          cb();
        },
      }),
    });
    root.info(entry, 'audit');
    const r = JSON.parse(rootOut.trim()) as Record<string, unknown>;
    expect(keys(lines[0]!)).toEqual(keys(r));
    for (const k of keys(r)) expect(lines[0]![k]).toEqual(r[k]);
  });

  it('disabled audit is silent; pretty only on a TTY in auto mode', () => {
    const a = createAuditLogger(cfg({ enabled: false, file: join(tmp, 'never.log') }));
    expect(a.isLevelEnabled('info')).toBe(false);
    expect(usePretty('auto', false)).toBe(false);
    expect(usePretty('auto', true)).toBe(true);
    expect(usePretty('json', true)).toBe(false);
    expect(usePretty('pretty', false)).toBe(true);
  });
});
