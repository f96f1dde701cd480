import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli } from './helpers.ts';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'portico-cli-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('portico CLI', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help lists the commands, serve --help the per-protocol port flags', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['serve', 'user', 'share', 'config']) expect(r.stdout).toContain(c);
    const s = await runCli(['serve', '--help']);
    expect(s.code).toBe(0);
    for (const f of ['--config', '--state', '--listen', '--admin-port', '--webdav-port', '--nfs-port', '--smb-port', '--nfs-squash', '--nfs-anon-uid', '--fuse-mount', '--log-level']) {
      expect(s.stdout).toContain(f);
    }
  });

  it('config check: ok for a valid file, exit 2 naming the key for a bad one', async () => {
    const good = join(tmp, 'good.yaml');
    writeFileSync(good, 'server:\n  listen: 127.0.0.1\nshares:\n  - name: docs\n    source: "memory:"\n');
    const ok = await runCli(['config', 'check', good]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe('ok');

    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'admin:\n  port: 99999\nshares:\n  - name: docs\n    source: "memory:"\n');
    const r = await runCli(['config', 'check', bad]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('admin.port');
    expect(r.stderr).toContain('99999');
    // One clear message, no stack trace.
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const missing = await runCli(['config', 'check', join(tmp, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');
  });

  it('user add --password-stdin, list, passwd, del', async () => {
    const state = join(tmp, 'state-users');
    const add = await runCli(['user', 'add', 'alice', '--state', state, '--uid', '2001', '--groups', 'staff,finance', '--password-stdin'], {
      input: 'correct horse battery\n',
    });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    expect(add.stdout).toContain('alice');

    const dup = await runCli(['user', 'add', 'alice', '--state', state, '--password-stdin'], { input: 'x-password\n' });
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');

    const list = await runCli(['user', 'list', '--state', state]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+UID\s+GID\s+GROUPS\s+DISABLED$/);
    expect(lines[1]).toMatch(/^alice\s+2001\s+2001\s+staff,finance\s+no$/);

    const pw = await runCli(['user', 'passwd', 'alice', '--state', state, '--password-stdin'], { input: 'another secret\n' });
    expect(pw.code).toBe(0);

    const del = await runCli(['user', 'del', 'alice', '--state', state]);
    expect(del.code).toBe(0);
    const after = await runCli(['user', 'list', '--state', state]);
    expect(after.stdout).not.toContain('alice');

    const delAgain = await runCli(['user', 'del', 'alice', '--state', state]);
    expect(delAgain.code).toBe(1);
    expect(delAgain.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('user add without a terminal and without --password-stdin refuses clearly', async () => {
    const r = await runCli(['user', 'add', 'bob', '--state', join(tmp, 'state-nopw')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--password-stdin');
  });

  it('share list prints the configured shares', async () => {
    const cfg = join(tmp, 'shares.yaml');
    writeFileSync(
      cfg,
      'shares:\n  - name: docs\n    source: "memory:"\n    readOnly: true\n    protocols: [webdav, smb]\n  - name: scratch\n    source: memory:objectstore\n',
    );
    const r = await runCli(['share', 'list', '--config', cfg]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+SOURCE\s+PROTOCOLS\s+READONLY$/);
    expect(lines[1]).toMatch(/^docs\s+memory:\s+webdav,smb\s+true$/);
    expect(lines[2]).toMatch(/^scratch\s+memory:objectstore\s+webdav,nfs,smb,fuse\s+false$/);
  });
});
