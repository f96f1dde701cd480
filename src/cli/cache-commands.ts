/**
 * `portico cache refresh SHARE[/path]`: asks the running gateway (through its admin endpoint) to drop
 * cached metadata, so changes made outside Portico (another S3 client, a shell on the disk) show at
 * once. The token comes from the same secret the server uses, so only whoever can read the state
 * directory (or knows auth.secretKey) can do it.
 */
import { Command, type Option } from 'commander';
import { loadOrCreateSecret } from '../auth/secret-box.ts';
import { adminToken } from '../server/admin-token.ts';
import type { PorticoConfig } from '../config/schema.ts';

export interface CacheCommandDeps {
  configOption: () => Option;
  loadToolConfig: (opts: { config?: string; state?: string }) => { config: PorticoConfig };
  action: <A extends unknown[]>(fn: (...args: A) => void | Promise<void>) => (...args: A) => Promise<void>;
}

/** 'photos/2024/raw' -> ['photos', '/2024/raw']; 'photos' -> ['photos', '/']. */
export function splitShareArg(arg: string): [string, string] {
  const i = arg.indexOf('/');
  return i < 0 ? [arg, '/'] : [arg.slice(0, i), arg.slice(i) || '/'];
}

export function cacheCommand(deps: CacheCommandDeps): Command {
  const cache = new Command('cache').description('gateway caches');
  cache
    .command('refresh')
    .description('drop cached metadata of SHARE (below /path) in the running gateway')
    .argument('<share-path>', 'SHARE or SHARE/path')
    .addOption(deps.configOption())
    .option('--state <dir>', 'state directory (for the admin token)')
    .option('--admin-url <url>', 'admin endpoint (default from the config: http://admin.listen:admin.port)')
    .action(
      deps.action(async (arg: string, opts: { config?: string; state?: string; adminUrl?: string }) => {
        const { config } = deps.loadToolConfig(opts);
        const [share, path] = splitShareArg(arg);
        if (!opts.adminUrl && config.admin.port === 0) throw new Error('the admin endpoint is disabled (admin.port: 0); pass --admin-url');
        const host = config.admin.listen === '0.0.0.0' || config.admin.listen === '::' ? '127.0.0.1' : config.admin.listen;
        const base = opts.adminUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`;
        const url = new URL('/cache/refresh', base);
        url.searchParams.set('share', share);
        url.searchParams.set('path', path);
        const token = adminToken(loadOrCreateSecret(config.server.stateDir, config.auth.secretKey));
        let res: Response;
        try {
          res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
        } catch (e) {
          throw new Error(`cannot reach the gateway's admin endpoint at ${base}: ${(e as Error).message}`);
        }
        const body = (await res.json().catch(() => ({}))) as { status?: string };
        if (!res.ok) throw new Error(`cache refresh failed: ${res.status} ${body.status ?? ''}`.trim());
        process.stdout.write(`refreshed ${share}:${path}\n`);
      }),
    );
  return cache;
}
