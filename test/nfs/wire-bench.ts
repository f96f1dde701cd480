/**
 * Quick wire benchmark (not part of the suite): `npx node test/nfs/wire-bench.ts`.
 * The server (RPC server + NFSv4 program + the test-only toy dispatcher) runs in a child process;
 * this process is the client, pipelining calls on TCP connections to 127.0.0.1. Figures: NULL
 * calls per second, PUTFH+GETATTR per second, and READ throughput in 1 MiB replies (the data is
 * spliced into the reply by reference: no copy in the server).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RpcClient, callRecord, startServer } from './helpers.ts';
import { createToyDispatcher } from './toy-dispatcher.ts';

if (process.argv[2] === 'server') {
  const { port } = await startServer({ dispatcher: createToyDispatcher() });
  console.log(port);
} else {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), 'server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
  // Handle of sub/big.bin (id 5 in the toy tree): PUTFH + GETATTR(type, change, size, fileid, mode, times).
  const fh = '00000008 0000000000000005';
  const getattr = callRecord({ xid: 0, proc: 1, args: hex(`00000000 00000000 00000002 00000016 ${fh} 00000009 00000002 0010001a 00a0a002`) });
  const read = (off: number) => callRecord({ xid: 0, proc: 1, args: hex(`00000000 00000000 00000002 00000016 ${fh} 00000019 00000000 000000000000000000000000 ${off.toString(16).padStart(16, '0')} 00100000`) });
  const nul = callRecord({ xid: 0, proc: 0 });

  async function run(name: string, conns: number, depth: number, seconds: number, make: (i: number) => Buffer, unit: (bytes: number, n: number, s: number) => string): Promise<void> {
    const clients = await Promise.all(Array.from({ length: conns }, () => RpcClient.connect(port)));
    let xid = 1;
    let n = 0;
    let bytes = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      clients.flatMap((c) =>
        Array.from({ length: depth }, async () => {
          while (performance.now() < end) {
            const rec = Buffer.from(make(n));
            const id = xid++;
            rec.writeUInt32BE(id, 0);
            const r = await c.call(id, rec, { timeoutMs: 30_000 });
            bytes += r.results.length;
            n++;
          }
        }),
      ),
    );
    const s = seconds;
    console.log(`${name.padEnd(46)} ${unit(bytes, n, s)}`);
    for (const c of clients) c.close();
  }

  const rate = (_b: number, n: number, s: number) => `${Math.round(n / s).toLocaleString('en')} calls/s`;
  const mbps = (b: number, _n: number, s: number) => `${(b / s / 1e6).toFixed(0)} MB/s`;
  await run('NULL, 1 connection, 32 in flight', 1, 32, 3, () => nul, rate);
  await run('PUTFH+GETATTR, 1 connection, 16 in flight', 1, 16, 3, () => getattr, rate);
  await run('PUTFH+GETATTR, 4 connections, 16 in flight each', 4, 16, 3, () => getattr, rate);
  await run('READ 1 MiB, 1 connection, 4 in flight', 1, 4, 3, (i) => read((i % 3) << 20), mbps);
  child.kill();
}
