/**
 * The Linux kernel's cifs client (Debian's 6.1 kernel in QEMU, ../shared/tools/kvm) against the
 * real SMB server on the gateway (a local-directory share), in two boots:
 *  1. vers=3.1.1, 3.0 and 2.1, signed, the harness's whole workload (mkdir, small and big writes
 *     read back, nested dirs, a listing with ls -l, renames, O_TRUNC/truncate/extend/in-place
 *     writes, appends, touch -d, ENOENT/EEXIST/ENOTEMPTY, rm -r, df, umount) with 0 failures,
 *     and with --restart-cmd the gateway is restarted in the middle of every version: the same
 *     mount reconnects (new SMB session), files held open across the restart read and append on,
 *     a cwd from before it still lists, creates and renames work;
 *  2. `seal` (encryption: AES-128-GCM on 3.1.1, AES-128-CCM on 3.0) on 3.1.1 and 3.0, the workload
 *     again; /proc/mounts must show seal. (2.1 has no encryption.)
 * The harness takes one set of mount options per boot, hence two. Sizes are smaller than the
 * harness's defaults (100 and 20 files, 4 MiB) to keep CI time down — under TCG the guest signs and
 * encrypts in emulation, ~0.3-0.5 MB/s, so a 16 MiB file cost ~1 min per dialect: every step runs. The gateway runs as a process of its own (test/smb/gateway-child.ts, started and restarted
 * by test/nfs/gateway-child.sh). Skipped, with the reason printed, where QEMU or the harness's
 * boot cache is missing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../cli/helpers.ts';
import { KVM_HARNESS, failLines, gatewayChildCmd, kvmHarnessMissing, runTool } from '../helpers/kvm-harness.ts';
import { ALICE } from './gateway.ts';

const CHILD = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));
const MISSING = kvmHarnessMissing();
if (MISSING) console.warn(`test/smb/kernel-client.test.ts skipped: ${MISSING}`);

let dir: string | undefined;
let port = 0;
const child = (cmd: 'start' | 'stop' | 'restart'): string => gatewayChildCmd(cmd, port, dir!, CHILD);

afterAll(() => {
  if (!dir) return;
  spawnSync('bash', ['-c', child('stop')], { stdio: 'ignore', timeout: 30_000 });
  rmSync(dir, { recursive: true, force: true });
});

const esc = (v: string): string => v.replace(/\./g, '\\.');

describe.skipIf(MISSING !== undefined)('Linux kernel cifs client against the real SMB server (QEMU harness)', () => {
  it('mounts 3.1.1, 3.0 and 2.1, passes the whole workload and reconnects across a gateway restart in each; sealed on 3.1.1 and 3.0', async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-smb-kernel-'));
    port = await freePort();
    const started = await runTool('bash', ['-c', child('start')], 120_000);
    expect(started.code, started.text).toBe(0);
    const smb = `${port}:disk:${ALICE.name}:${ALICE.password}`;

    const t0 = Date.now();
    const signed = await runTool(KVM_HARNESS, ['--no-build', '--smb', smb, '--smb-vers', '3.1.1 3.0 2.1', '--files', '100', '--big-mb', '4', '--restart-cmd', child('restart'), '--timeout', '1500'], 1_600_000);
    console.log(`cifs signed + restart: ${Math.round((Date.now() - t0) / 1000)} s, ${signed.text.match(/^\d+ passed, \d+ failed$/m)?.[0]}`);
    expect(failLines(signed.text), signed.text).toEqual([]);
    expect(signed.text).toMatch(/^\d+ passed, 0 failed$/m);
    for (const v of ['3.1.1', '3.0', '2.1']) {
      for (const step of ['mount', 'rm-r', 'restart-read', 'restart-held-fd', 'restart-held-cwd', 'restart-rename', 'umount']) {
        expect(signed.text).toMatch(new RegExp(`^PASS smb ${esc(v)} ${step}$`, 'm'));
      }
    }
    expect(signed.code).toBe(0);

    const log = join(dir, 'sealed-console.log');
    const t1 = Date.now();
    const sealed = await runTool(KVM_HARNESS, ['--no-build', '--smb', smb, '--smb-vers', '3.1.1 3.0', '--smb-opts', 'seal', '--files', '20', '--big-mb', '4', '--log', log, '--timeout', '900'], 1_000_000);
    console.log(`cifs sealed: ${Math.round((Date.now() - t1) / 1000)} s, ${sealed.text.match(/^\d+ passed, \d+ failed$/m)?.[0]}`);
    expect(failLines(sealed.text), sealed.text).toEqual([]);
    expect(sealed.text).toMatch(/^\d+ passed, 0 failed$/m);
    for (const v of ['3.1.1', '3.0']) expect(sealed.text).toMatch(new RegExp(`^PASS smb ${esc(v)} umount$`, 'm'));
    // The mounts really were sealed (/proc/mounts, printed by the mount step into the console log).
    const mounts = readFileSync(log, 'utf8').split('\n').filter((l) => / cifs .*vers=3/.test(l));
    expect(mounts.length).toBeGreaterThanOrEqual(2);
    for (const m of mounts) expect(m).toMatch(/[,\s]seal[,\s]/);
    expect(sealed.code).toBe(0);
  }, 2_700_000);
});
