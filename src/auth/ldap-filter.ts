/**
 * LDAP filter templates with values escaped per RFC 4515 §3.
 *
 * A login name is untrusted input: `*)(uid=*` spliced raw into `(uid={user})` would match every
 * entry (and a bind as the first one would then be tried). RFC 4515 requires escaping `*`, `(`, `)`,
 * `\` and NUL as `\XX`; every other character (UTF-8 included) may stand as itself, so the escaped
 * value always means the literal string. Templates are filled in one pass, so a value containing
 * `{dn}` is never substituted twice.
 */

export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function fillFilter(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(user|dn)\}/g, (whole, key: string) => (Object.hasOwn(values, key) ? escapeFilterValue(values[key]!) : whole));
}
