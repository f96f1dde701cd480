/**
 * request-budget-server.ts with directories made in process before it listens, for the listing and
 * tree tests: BUDGET_TREES is JSON `{ "share:/dir": members }` (files `member-N.txt` of one byte,
 * or `{ files, perDir }` for a tree of subdirectories of `perDir` files each). Made through the VFS,
 * so a memory share gets 20,000 files in a second or two instead of 20,000 PUTs.
 */
import { startDav } from '../webdav/helpers.ts';
import { freePort } from '../cli/helpers.ts';

const adminPort = await freePort();
const overrides = JSON.parse(process.env.BUDGET_CONFIG ?? '{}') as Record<string, unknown>;
const trees = JSON.parse(process.env.BUDGET_TREES ?? '{}') as Record<string, number | { files: number; perDir: number }>;
const stack = await startDav({ config: { 'admin.port': adminPort, ...overrides } });
await stack.addUser('alice', process.env.DAV_PASSWORD ?? 'alice-pw');
const vfs = stack.gateway.vfs!;
const ALL = { read: true, write: true, delete: true };
for (const [where, spec] of Object.entries(trees)) {
  const [share, dir] = where.split(':') as [string, string];
  const { files, perDir } = typeof spec === 'number' ? { files: spec, perDir: spec } : spec;
  await vfs.mkdir(share, dir);
  for (let i = 0; i < files; i++) {
    let parent = dir;
    if (perDir < files) {
      parent = `${dir}/d${Math.floor(i / perDir)}`;
      if (i % perDir === 0) await vfs.mkdir(share, parent);
    }
    const h = await vfs.open(share, `${parent}/member-${i}.txt`, { access: ALL, disposition: 'create', owner: 'budget-setup' });
    await vfs.write(h, 0, Buffer.from('x'));
    await vfs.close(h);
  }
}
process.stdout.write(`${JSON.stringify({ port: stack.port, adminPort, diskDir: stack.diskDir, pid: process.pid })}\n`);
process.on('SIGTERM', () => {
  stack.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
setInterval(() => {}, 1 << 30);
