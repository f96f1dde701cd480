/**
 * The gateway with SMB and WebDAV (gateway.ts's startSmb) as a process of its own, for the kernel
 * harness's restart check (test/nfs/gateway-child.sh with PORTICO_CHILD naming this file):
 * `node gateway-child.ts PORT DIR` serves DIR's state and data on SMB port PORT, writes its pid to
 * DIR/child.pid, prints `READY <port>`, and stops cleanly on SIGTERM (keeping DIR, so the next
 * start serves the same files, users and server GUID). PORTICO_CHILD_LOG=1 writes the gateway's
 * debug log to DIR/portico.log.
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSmb } from './gateway.ts';

const [port, dir] = process.argv.slice(2);
if (!port || !dir) throw new Error('usage: gateway-child.ts PORT DIR');
const log = process.env.PORTICO_CHILD_LOG ? createWriteStream(join(dir, 'portico.log'), { flags: 'a' }) : undefined;
const s = await startSmb({ smbPort: Number(port), tmp: dir, ...(log ? { log } : {}) });
writeFileSync(join(dir, 'child.pid'), String(process.pid));
process.stdout.write(`READY ${s.smbPort}\n`);
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void s.stop({ keep: true }).finally(() => process.exit(0));
});
