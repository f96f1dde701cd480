/**
 * The real stack in a child process for the request-budget tests: the server's event loop must be
 * its own, so a client that reads as fast as it can and a monitor polling /health measure the
 * server's interleaving, not the test runner's. Config overrides (dotted keys) come as JSON in
 * BUDGET_CONFIG. Prints one JSON line {port, adminPort, diskDir, pid} when listening; SIGTERM stops it.
 */
import { startDav } from '../webdav/helpers.ts';
import { freePort } from '../cli/helpers.ts';

const adminPort = await freePort();
const overrides = JSON.parse(process.env.BUDGET_CONFIG ?? '{}') as Record<string, unknown>;
const stack = await startDav({ config: { 'admin.port': adminPort, ...overrides } });
await stack.addUser('alice', process.env.DAV_PASSWORD ?? 'alice-pw');
await stack.addUser('bob', process.env.DAV_PASSWORD ?? 'bob-pw');
process.stdout.write(`${JSON.stringify({ port: stack.port, adminPort, diskDir: stack.diskDir, pid: process.pid })}\n`);
process.on('SIGTERM', () => {
  stack.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
setInterval(() => {}, 1 << 30);
