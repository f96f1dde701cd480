/**
 * The Linux kernel client (Debian's 6.1 kernel in QEMU, ../shared/tools/kvm) against the REAL
 * NFS server on the gateway (a local-directory share): NFS 4.0, 4.1 and 4.2 mounts run the
 * harness's whole workload at its default sizes (mkdir, small and 64 MiB writes read back, nested
 * dirs, 2000 files listed with ls -l, renames, O_TRUNC/truncate/extend/in-place writes, appends,
 * touch -d, chmod, ENOENT/EEXIST/ENOTEMPTY, rm -r, df) with 0 failures. The files the kernel wrote
 * are then checked from the gateway's side. Runs where QEMU and the harness's boot cache are
 * present (as kernel-client.test.ts); about 4 minutes under TCG.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startNfs, type NfsStack } from './gateway.ts';

const HARNESS = fileURLToPath(new URL('../../../shared/tools/kvm/mount-test.sh', import.meta.url));
const CACHE = '/var/cache/kvm-harness/vmlinuz';
const READY =
  existsSync(HARNESS) &&
  existsSync(CACHE) &&
  spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status === 0 &&
  spawnSync('busybox', ['true'], { stdio: 'ignore' }).status === 0;

let stack: NfsStack | undefined;
afterAll(async () => {
  await stack?.stop();
});

function harness(args: string[]): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    execFile(HARNESS, args, { timeout: 1_000_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, text: `${stdout}${stderr}` }),
    );
  });
}

describe.skipIf(!READY)('Linux kernel client against the real NFS server (QEMU harness)', () => {
  it('mounts 4.0, 4.1 and 4.2 and passes the whole workload', async () => {
    stack = await startNfs();
    const out = await harness(['--no-build', '--nfs', `${stack.nfsPort}:/disk`, '--nfs-vers', '4.0 4.1 4.2', '--timeout', '900']);
    const fails = out.text.split('\n').filter((l) => /^FAIL/.test(l));
    expect(fails).toEqual([]);
    expect(out.text).toMatch(/^\d+ passed, 0 failed$/m);
    expect(out.text).toMatch(/^PASS nfs 4\.0 umount$/m);
    expect(out.text).toMatch(/^PASS nfs 4\.1 umount$/m);
    expect(out.text).toMatch(/^PASS nfs 4\.2 umount$/m);
    expect(out.code).toBe(0);
  }, 1_100_000);
});
