/**
 * The gateway with NFS and WebDAV (gateway.ts's startNfs) as a process of its own, for the kernel
 * harness's restart check: `node gateway-child.ts PORT DIR` serves DIR's state and data on NFS
 * port PORT, writes its pid to DIR/child.pid, prints `READY <port>`, and stops cleanly on SIGTERM
 * (keeping DIR, so the next start serves the same files and client records).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNfs } from './gateway.ts';

const [port, dir] = process.argv.slice(2);
if (!port || !dir) throw new Error('usage: gateway-child.ts PORT DIR');
const s = await startNfs({ nfsPort: Number(port), tmp: dir });
writeFileSync(join(dir, 'child.pid'), String(process.pid));
process.stdout.write(`READY ${s.nfsPort}\n`);
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void s.stop({ keep: true }).finally(() => process.exit(0));
});
