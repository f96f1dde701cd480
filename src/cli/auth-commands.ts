/**
 * `portico auth test USER [--password-stdin]`: runs one login exactly as a protocol would (the same
 * authenticator the gateway builds from the config: local users, then the directory per
 * `auth.ldap.order`) and prints the resolved principal, or the precise reason it failed. The first
 * thing an administrator runs after writing `auth.ldap`.
 *
 * Output (stdout), success (exit 0):
 *   ok: login as "alice" accepted
 *   source:       ldap
 *   dn:           uid=alice,ou=people,dc=example,dc=org
 *   ...
 * Failure (exit 1): `failed: <reason>: <detail>`, reasons as in src/auth/ldap-directory.ts
 * (no-such-user, bad-password, ambiguous, unreachable, ...), plus the state of each directory URL
 * when the directory could not answer.
 *
 * The throttle is this process's own (the server's counts live in the server): a test run neither
 * counts against nor is blocked by the gateway's lockouts.
 */
import { Command, type Option } from 'commander';
import { buildAuthenticator, DirectoryAuthenticator, type LoginResult } from '../auth/ldap-authenticator.ts';
import { AuthFailure } from '../auth/ldap-directory.ts';
import { LocalUserStore } from '../auth/local-users.ts';
import { loadOrCreateSecret } from '../auth/secret-box.ts';
import { MetadataStore } from '../store/metadata-store.ts';
import { VfsError } from '../vfs/errors.ts';
import type { LoadedConfig, ToolConfigOptions } from './main.ts';
import { promptHidden, readStdinLine } from './user-commands.ts';

export interface AuthCommandDeps {
  configOption: () => Option;
  loadToolConfig: (opts: ToolConfigOptions) => LoadedConfig;
  action: <A extends unknown[]>(fn: (...args: A) => void | Promise<void>) => (...args: A) => Promise<void>;
}

interface TestOptions extends ToolConfigOptions {
  passwordStdin?: boolean;
}

export function formatLogin(user: string, r: LoginResult): string {
  const p = r.principal;
  const rows: [string, string][] = [
    ['source', r.source],
    ['user', p.user],
    ...(r.dn !== undefined ? [['dn', r.dn] as [string, string]] : []),
    ...(r.displayName !== undefined ? [['display name', r.displayName] as [string, string]] : []),
    ['uid', String(p.uid)],
    ['gid', String(p.gid)],
    ['groups', p.groups.length > 0 ? [...p.groups].sort().join(', ') : '(none)'],
  ];
  return `ok: login as "${user}" accepted\n${rows.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`).join('\n')}\n`;
}

async function authTest(deps: AuthCommandDeps, user: string, opts: TestOptions): Promise<void> {
  const { config } = deps.loadToolConfig(opts);
  const password = opts.passwordStdin || !process.stdin.isTTY ? await readStdinLine() : await promptHidden(`password for ${user}: `);
  const store = MetadataStore.open(config.server.stateDir);
  const auth = (() => {
    try {
      const secret = loadOrCreateSecret(config.server.stateDir, config.auth.secretKey);
      return buildAuthenticator(config.auth, new LocalUserStore(store, { secret, bcryptRounds: config.auth.bcryptRounds }));
    } catch (e) {
      store.close();
      throw e;
    }
  })();
  const ctx = { protocol: 'cli', clientAddress: '127.0.0.1' };
  try {
    let r: LoginResult;
    if (auth instanceof DirectoryAuthenticator) r = await auth.login(user, password, ctx);
    else r = { principal: await auth.authenticate(user, password, ctx), source: 'local', dn: undefined, displayName: undefined, cached: false };
    process.stdout.write(formatLogin(user, r));
  } catch (e) {
    if (!(e instanceof VfsError)) throw e;
    const reason = e instanceof AuthFailure ? `${e.reason}${e.source !== undefined ? ` (${e.source})` : ''}: ${e.detail}` : `${e.code}: ${e.message}`;
    let out = `failed: ${reason}\n`;
    if (auth.directory !== undefined && e instanceof AuthFailure && e.reason === 'unreachable') {
      for (const s of auth.directory.state()) out += `  ${s.url}: ${s.up ? 'up' : `down (${s.lastError ?? 'no answer'})`}\n`;
    }
    process.stdout.write(out);
    process.exitCode = 1;
  } finally {
    await auth.close?.();
    store.close();
  }
}

export function authCommand(deps: AuthCommandDeps): Command {
  const cmd = new Command('auth').description('authentication tools');
  cmd
    .command('test')
    .description('log USER in as a protocol would (local users, then the directory) and print the principal or why it failed')
    .argument('<user>', 'login name')
    .addOption(deps.configOption())
    .option('--state <dir>', 'state directory (local users)')
    .option('--password-stdin', 'read the password as one line from stdin (else prompted without echo)')
    .action(deps.action((user: string, opts: TestOptions) => authTest(deps, user, opts)));
  return cmd;
}
