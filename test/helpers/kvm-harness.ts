/**
 * The QEMU kernel-client harness (../shared/tools/kvm/mount-test.sh: Debian's kernel with its real
 * nfs and cifs clients, booted under QEMU) for the tests that drive it, and the gateway child the
 * restart check restarts (test/nfs/gateway-child.sh; PORTICO_CHILD names the protocol's child
 * script). The harness's boot cache is built by the test command's pretest
 * (scripts/install-test-peers.sh); where QEMU or the cache is missing the tests skip and say why.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const KVM_HARNESS = fileURLToPath(new URL('../../../shared/tools/kvm/mount-test.sh', import.meta.url));
const BOOT_CACHE = '/var/cache/kvm-harness/vmlinuz';
const GATEWAY_CHILD = fileURLToPath(new URL('../nfs/gateway-child.sh', import.meta.url));

/** Why the harness cannot run here, or undefined when it can. */
export function kvmHarnessMissing(): string | undefined {
  if (!existsSync(KVM_HARNESS)) return `no harness at ${KVM_HARNESS}`;
  if (!existsSync(BOOT_CACHE)) return `no boot cache at ${BOOT_CACHE} (run ../shared/tools/kvm/build.sh)`;
  if (spawnSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' }).status !== 0) return 'no qemu-system-x86_64 (apt-get install qemu-system-x86)';
  if (spawnSync('busybox', ['true'], { stdio: 'ignore' }).status !== 0) return 'no busybox (apt-get install busybox-static)';
  return undefined;
}

/** Runs a command to its end (killed past the limit): exit code and stdout + stderr. */
export function runTool(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, text: `${stdout}${stderr}` }),
    );
  });
}

/**
 * The shell command that starts, stops or restarts a gateway child (a process of its own serving
 * `dir` on `port`), as the harness's --restart-cmd runs it. `script` is the child (default: the
 * NFS one, test/nfs/gateway-child.ts).
 */
export function gatewayChildCmd(cmd: 'start' | 'stop' | 'restart', port: number, dir: string, script?: string): string {
  return `${script ? `PORTICO_CHILD='${script}' ` : ''}PORTICO_NODE='${process.execPath}' '${GATEWAY_CHILD}' ${cmd} ${port} '${dir}'`;
}

/** The harness's FAIL lines (none when every step passed). */
export const failLines = (text: string): string[] => text.split('\n').filter((l) => /^FAIL/.test(l));
