/**
 * The Linux kernel's NFS client (Debian's 6.1 kernel in QEMU, ../shared/tools/kvm) against the
 * wire layer with the test-only toy dispatcher: NFS 4.0, 4.1 and 4.2 mounts run the harness's
 * whole workload (mkdir, small and 4 MiB writes read back, nested dirs, listing, renames,
 * truncate, append, touch -d, chmod, errors, rm -r, df), and every COMPOUND the kernel sends must
 * decode whole. This checks the decoders and encoders against the client that matters most; the
 * toy is not the server's semantics. Runs where QEMU and the harness's boot cache are present
 * (`../shared/tools/kvm/build.sh`, `apt-get install qemu-system-x86 busybox-static`), skipped
 * elsewhere; about 20 s under TCG.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KVM_HARNESS as HARNESS, kvmHarnessMissing, runTool } from '../helpers/kvm-harness.ts';
import { startServer } from './helpers.ts';
import { createToyDispatcher } from './toy-dispatcher.ts';
import type { Nfs4Dispatcher } from '../../protocols/nfs/nfs4-program.ts';
import type { RpcServer } from '../../protocols/nfs/rpc-server.ts';
import { NFS4ERR } from '../../protocols/nfs/nfs4-types.ts';

const MISSING = kvmHarnessMissing();
if (MISSING) console.warn(`test/nfs/kernel-client.test.ts skipped: ${MISSING}`);
const READY = MISSING === undefined;

let server: RpcServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe.skipIf(!READY)('Linux kernel client (QEMU harness)', () => {
  it('mounts 4.0, 4.1 and 4.2 and runs the workload; every COMPOUND decodes whole', async () => {
    const toy = createToyDispatcher();
    const undecoded: string[] = [];
    const dispatcher: Nfs4Dispatcher = {
      compound: (args, ctx) => {
        if (args.stop && args.stop.status !== NFS4ERR.NOTSUPP) undecoded.push(`4.${args.minorversion} op ${args.stop.op}: ${args.stop.status} ${args.stop.reason}`);
        return toy.compound(args, ctx);
      },
    };
    const s = await startServer({ dispatcher });
    server = s.server;
    const out = await runTool(HARNESS, ['--no-build', '--nfs', `${s.port}:/`, '--nfs-vers', '4.0 4.1 4.2', '--files', '20', '--big-mb', '4', '--step-timeout', '60', '--timeout', '600'], 700_000);
    expect(out.text).not.toMatch(/^FAIL/m);
    expect(out.text).toMatch(/^\d+ passed, 0 failed$/m);
    expect(out.code).toBe(0);
    expect(undecoded).toEqual([]);
  }, 800_000);
});
