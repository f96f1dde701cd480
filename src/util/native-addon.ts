/**
 * Loading one of the project's optional N-API addons (backends/local/native, protocols/smb/native):
 * the module, or why it is unavailable, in the words the log and /health show. `path` is the
 * build's output or the addon's environment override (`envVar`: an addon built elsewhere; '' turns
 * it off). Called once per addon; the caller keeps the answer.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

export type AddonLoad<T> = { mod: T } | { error: string };

/** `name` as the messages say it ("the SMB native helper"). */
export function loadAddon<T>(path: string, name: string, envVar: string): AddonLoad<T> {
  if (path === '') return { error: `turned off (${envVar} is empty)` };
  if (!existsSync(path)) return { error: `${name} is not built (${path} is missing)` };
  try {
    return { mod: createRequire(import.meta.url)(path) as T };
  } catch (e) {
    return { error: `${name} does not load: ${e instanceof Error ? e.message : String(e)}` };
  }
}
