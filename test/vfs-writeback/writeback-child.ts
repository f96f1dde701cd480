/**
 * A real Portico gateway in a child process, for the write-back restart tests: one s3:// share
 * named "s" (settings from the WB_CHILD environment variable, JSON), driven through a session by
 * JSON-line commands on stdin, one JSON-line answer each on stdout ({id, ok, ...} or {id, error,
 * code}). Logs go to stderr. The parent kills it with SIGKILL (a crash) or sends `quit` (SIGTERM's
 * graceful path: Gateway.stop()).
 */
import { createInterface } from 'node:readline';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/log/logger.ts';
import { Gateway } from '../../src/server/gateway.ts';
import { isVfsError } from '../../src/vfs/errors.ts';
import { alice } from '../helpers/vfs-env.ts';

interface ChildConfig {
  stateDir: string;
  source: string;
  options: Record<string, unknown>;
  writeBack: unknown;
  adminPort?: number;
}

const cfg = JSON.parse(process.env.WB_CHILD ?? '{}') as ChildConfig;
const config = loadConfig({
  env: {},
  overrides: {
    'server.stateDir': cfg.stateDir,
    'admin.port': cfg.adminPort ?? 0,
    'auth.bcryptRounds': 4,
    'auth.firstRun': 'loopback-only',
    'protocols.webdav.port': 0,
    'protocols.nfs.port': 0,
    'protocols.smb.port': 0,
    'log.level': process.env.WB_LOG_LEVEL ?? 'warn',
    'log.audit.enabled': false,
    shares: [{ name: 's', source: cfg.source, options: cfg.options, writeBack: cfg.writeBack }],
  },
});
const gateway = new Gateway(config, { logger: createLogger(config.log, { destination: process.stderr }), stderr: process.stderr });
await gateway.start();
const session = gateway.sessions!.openSession({ principal: alice, protocol: 'webdav', clientAddress: '127.0.0.1' });
const RW = { read: true, write: true, delete: false };
const RO = { read: true, write: false, delete: false };

type Cmd = { id: number; op: string; path?: string; to?: string; data?: string; offset?: number; disposition?: 'open' | 'create' | 'openOrCreate' | 'createOrTruncate' };

async function run(c: Cmd): Promise<Record<string, unknown>> {
  switch (c.op) {
    case 'mkdir':
      await session.mkdir('s', c.path!);
      return {};
    case 'create': {
      const h = await session.open('s', c.path!, { access: RW, disposition: 'create', owner: 'child', expect: 'file' });
      await session.close(h);
      return {};
    }
    case 'write': {
      // open + write + close: the answer is sent when close() returned (what a client is told).
      const h = await session.open('s', c.path!, { access: RW, disposition: c.disposition ?? 'openOrCreate', owner: 'child', expect: 'file' });
      try {
        await session.write(h, c.offset ?? 0, Buffer.from(c.data ?? '', 'base64'));
      } finally {
        await session.close(h);
      }
      return {};
    }
    case 'put': {
      // A WebDAV PUT's path (Session.replaceContent): answered when commit() returned.
      const data = Buffer.from(c.data ?? '', 'base64');
      const w = await session.replaceContent('s', c.path!, { sizeHint: data.length });
      try {
        await w.write(data);
      } catch (e) {
        await w.abort();
        throw e;
      }
      const a = await w.commit();
      return { size: a.size, created: w.created };
    }
    case 'read': {
      const h = await session.open('s', c.path!, { access: RO, owner: 'child', expect: 'file' });
      try {
        const parts: Buffer[] = [];
        for (let off = 0; ;) {
          const b = await session.read(h, off, 4 * 1024 * 1024);
          if (b.length === 0) break;
          parts.push(b);
          off += b.length;
        }
        return { data: Buffer.concat(parts).toString('base64') };
      } finally {
        await session.close(h);
      }
    }
    case 'stat': {
      const a = await session.getattr('s', c.path!);
      return { size: a.size };
    }
    case 'list': {
      const r = await session.readdir('s', c.path!);
      return { entries: r.entries.map((e) => ({ name: e.name, size: e.attr.size })) };
    }
    case 'rename':
      await session.rename('s', c.path!, c.to!);
      return {};
    case 'unlink':
      await session.unlink('s', c.path!);
      return {};
    case 'stats':
      return { stats: gateway.vfs!.writeBack.stats(), pending: gateway.vfs!.writeBack.pendingPaths() };
    case 'quit':
      await session.end();
      await gateway.stop(0);
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown op ${c.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line) as Cmd;
  run(c).then(
    (r) => process.stdout.write(`${JSON.stringify({ id: c.id, ok: true, ...r })}\n`),
    (e: unknown) => process.stdout.write(`${JSON.stringify({ id: c.id, error: String((e as Error)?.message ?? e), code: isVfsError(e) ? e.code : undefined })}\n`),
  );
});
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
