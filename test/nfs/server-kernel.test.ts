/**
 * The Linux kernel client (Debian's 6.1 kernel in QEMU, ../shared/tools/kvm) against the REAL
 * NFS server on the gateway (a local-directory share): NFS 4.0, 4.1 and 4.2 mounts run the
 * harness's whole workload at its default sizes (mkdir, small and 64 MiB writes read back, nested
 * dirs, 2000 files listed with ls -l, renames, O_TRUNC/truncate/extend/in-place writes, appends,
 * touch -d, chmod, ENOENT/EEXIST/ENOTEMPTY, rm -r, df) with 0 failures, and, with `--restart-cmd`,
 * the gateway is restarted in the middle of every version and the same mount goes on: files held
 * open across the restart are reclaimed in the grace period (OPEN CLAIM_PREVIOUS), handles and a
 * cwd from before it still work, renames and creates after it too. The gateway runs as a process
 * of its own (gateway-child.ts, restarted by gateway-child.sh). Runs where QEMU and the harness's
 * boot cache are present (as kernel-client.test.ts); about 5 minutes under TCG.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../cli/helpers.ts';
import { KVM_HARNESS as HARNESS, gatewayChildCmd, kvmHarnessMissing, runTool as run } from '../helpers/kvm-harness.ts';

const MISSING = kvmHarnessMissing();
if (MISSING) console.warn(`test/nfs/server-kernel.test.ts skipped: ${MISSING}`);
const READY = MISSING === undefined;

let dir: string | undefined;
let port = 0;
const child = (cmd: 'start' | 'stop' | 'restart'): string => gatewayChildCmd(cmd, port, dir!);

afterAll(() => {
  if (!dir) return;
  spawnSync('bash', ['-c', child('stop')], { stdio: 'ignore', timeout: 30_000 });
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!READY)('Linux kernel client against the real NFS server (QEMU harness)', () => {
  it('mounts 4.0, 4.1 and 4.2, passes the whole workload and goes on across a gateway restart in each', async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-nfs-kernel-'));
    port = await freePort();
    const started = await run('bash', ['-c', child('start')], 60_000);
    expect(started.code, started.text).toBe(0);
    const out = await run(HARNESS, ['--no-build', '--nfs', `${port}:/disk`, '--nfs-vers', '4.0 4.1 4.2', '--restart-cmd', child('restart'), '--timeout', '1200'], 1_300_000);
    const fails = out.text.split('\n').filter((l) => /^FAIL/.test(l));
    expect(fails).toEqual([]);
    expect(out.text).toMatch(/^\d+ passed, 0 failed$/m);
    for (const v of ['4.0', '4.1', '4.2']) {
      expect(out.text).toMatch(new RegExp(`^PASS nfs ${v.replace('.', '\\.')} restart-held-cwd$`, 'm'));
      expect(out.text).toMatch(new RegExp(`^PASS nfs ${v.replace('.', '\\.')} umount$`, 'm'));
    }
    expect(out.code).toBe(0);
  }, 1_400_000);
});
