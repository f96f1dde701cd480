/**
 * Which names the SMB front-end refuses to create (MS-FSCC 2.1.5.2, and Win32's naming rules):
 *
 * - a character Windows never allows in a name: `" * / : < > ? \ |` and the controls U+0000-U+001F
 *   (`\` and `:` never reach here as part of a name: they separate path components and streams);
 * - a DOS device name as the part before the first dot, in any case, with or without extension
 *   (`CON`, `nul.txt`, `Com1.tar.gz`): CON, PRN, AUX, NUL, COM1-COM9, LPT1-LPT9;
 * - a name ending in a dot or a space.
 *
 * All are STATUS_OBJECT_NAME_INVALID. Win32 clients never send such names (their path layer strips
 * trailing dots and spaces and turns device names into devices), so what reaches the server comes from
 * smbclient, Linux cifs or scripts — and a file so named could not be opened, renamed or deleted
 * from Windows Explorer afterwards. Windows' own server passes these names to NTFS, which accepts
 * the device names and trailing dots through the NT namespace; Portico is stricter on purpose.
 *
 * The rule is for names being *created* (CREATE that creates, rename targets). A name that exists
 * already — made over NFS, WebDAV or on the disk — is listed as it is and opens by its exact name:
 * hiding it would make its directory impossible to delete from SMB (DIRECTORY_NOT_EMPTY with nothing
 * shown) and would lose it for Linux SMB clients, which handle such names well; Samba's alternative,
 * 8.3 mangling, invents names that exist nowhere else (see protocols/smb/README.md).
 */

// eslint-disable-next-line no-control-regex
const INVALID_CHAR = /["*/:<>?\\|\u0000-\u001f]/;
const DEVICE = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])$/i;

/** Whether `name` (one path component) may not be created over SMB. */
export function refusedName(name: string): boolean {
  if (name === '' || name === '.' || name === '..') return false;
  if (INVALID_CHAR.test(name)) return true;
  if (/[. ]$/.test(name)) return true;
  const dot = name.indexOf('.');
  return DEVICE.test((dot < 0 ? name : name.slice(0, dot)).trimEnd());
}

/** The default data stream named explicitly (`file::$DATA`; stream types are case-insensitive). */
const DEFAULT_STREAM = /::\$DATA$/i;

/** The last component of a CREATE or rename name (backslash-separated, a `::$DATA` suffix dropped). */
export function lastComponent(wireName: string): string {
  const n = wireName.replace(/\\+$/, '');
  return n.slice(n.lastIndexOf('\\') + 1).replace(DEFAULT_STREAM, '');
}

/**
 * A CREATE or rename name as a share-relative path (`/a/b`), or undefined when it names a stream.
 *
 * Portico keeps no named streams and does not announce FILE_NAMED_STREAMS (FileFsAttributeInformation),
 * so it answers stream syntax as a file system without streams does — FAT on Windows, Samba on a
 * share without a streams module: `a:b`, `a:b:$DATA`, `a::foo`, `a:` are STATUS_OBJECT_NAME_INVALID
 * (smbtorture smb2.create_no_streams), whatever the disposition (NOT_FOUND, NTFS's answer for a
 * missing stream, would tell a client that a CREATE would make it). The one exception is the
 * unnamed data stream named explicitly, `a::$DATA`, which opens `a` as on Windows (issue 11:
 * "named streams other than ::$DATA refused"); Samba's no-streams shares refuse that one too.
 */
export function streamlessPath(wireName: string): string | undefined {
  // Every CREATE passes here: the regular expressions run only on names that need them.
  let n = wireName.includes('\\') ? wireName.replaceAll('\\', '/') : wireName;
  if (n.startsWith('/') || n.endsWith('/')) n = n.replace(/^\/+/, '').replace(/\/+$/, '');
  if (n.includes(':')) {
    n = n.replace(DEFAULT_STREAM, '');
    if (n.includes(':')) return undefined;
  }
  return `/${n}`;
}

/**
 * `.` and `..` components of a share path resolved as Windows' server canonicalizes a name before
 * the file system sees it (`dir\sub\..` is `dir`; smbtorture smb2.notify.tree opens one such);
 * undefined when `..` climbs above the share's root, which Windows and Samba answer with
 * STATUS_OBJECT_PATH_SYNTAX_BAD (smbtorture smb2.mkdir: `..\..\..`).
 */
export function resolveDots(path: string): string | undefined {
  if (!/(^|\/)\.\.?(\/|$)/.test(path)) return path;
  const out: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) return undefined;
      out.pop();
    } else out.push(c);
  }
  return `/${out.join('/')}`;
}

/**
 * Whether a CREATE of `wireName` must be refused: only when it would create the name — the
 * CREATE disposition, or OPEN_IF/OVERWRITE_IF/SUPERSEDE on a name not there (`existed` false, or
 * unknown) — never when it opens an existing one.
 */
export function refusedCreate(wireName: string, disposition: string, existed: boolean | undefined): boolean {
  const creates = disposition === 'create' || ((disposition === 'openOrCreate' || disposition === 'createOrTruncate') && existed !== true);
  return creates && refusedName(lastComponent(wireName));
}
