"""
The SMB driver's client process (smb-driver.ts): one impacket SMBConnection (SMB 3.1.1, signed,
NTLMv2 as the scenario user) to one share, driven by JSON lines on stdin, one reply line per
request on stdout:

  request  {"op": "write", "path": "/a/b", ...}
  reply    {"ok": true, ...}  or  {"ok": false, "status": "STATUS_OBJECT_NAME_NOT_FOUND", "detail": "..."}

Every operation is what a Windows client sends for it: CREATE with the disposition and options
that say file or directory, READ/WRITE, QUERY_INFO/SET_INFO of one information class, CLOSE.
Data travels base64 in the JSON. Paths are share-relative with '/', sent with '\\'.
"""
import base64
import json
import struct
import sys

import builtins

from Cryptodome.Cipher import AES
from Cryptodome.Hash import CMAC

from impacket import nt_errors, smb3
from impacket.smb3structs import (
    SMB2_DIALECT_311, SMB2_0_INFO_FILE,
    FILE_READ_DATA, FILE_WRITE_DATA, FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES, DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE,
    FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE_IF,
    FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE,
    FILE_DIRECTORY_INFORMATION,
)
from impacket.smb3 import SessionError as Smb3Error
from impacket.smbconnection import SMBConnection, SessionError

# impacket 0.10 writes a name's byte length as len(name) * 2, counting code points where SMB counts
# UTF-16 units: a name with a character beyond U+FFFF (an emoji) goes out cut short. Inside its
# SMB2 module, a string's length is its UTF-16 length.
smb3.len = lambda x: builtins.len(x.encode('utf-16le', 'surrogatepass')) // 2 if isinstance(x, str) else builtins.len(x)

# Its AES-CMAC (the 3.x signature) copies the rest of the message for every 16-byte block, which
# is quadratic: signing one 1 MiB WRITE takes seconds. Same algorithm from pycryptodome.
smb3.crypto.AES_CMAC = lambda key, message, length: CMAC.new(bytes(key), msg=bytes(message[:length]), ciphermod=AES).digest()

SHARE_ALL = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
ATTR_DIRECTORY = 0x10
# MS-FSCC 2.4: the information classes the driver queries and sets.
FILE_BASIC_INFO = 4
FILE_RENAME_INFO = 10
FILE_DISPOSITION_INFO = 13
FILE_END_OF_FILE_INFO = 20
FILE_NETWORK_OPEN_INFO = 34
FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns
CHUNK = 1024 * 1024


def wire(path):
    return path.strip('/').replace('/', '\\')


class Worker:
    def __init__(self, port, user, password, share):
        self.c = SMBConnection('127.0.0.1', '127.0.0.1', sess_port=port, preferredDialect=SMB2_DIALECT_311)
        self.s = self.c.getSMBServer()
        # impacket 0.10's NTLM login on 3.1.1 starts the session's preauth hash from zeros instead
        # of the connection's (MS-SMB2 3.2.5.3.1; its Kerberos login does it right), so its keys
        # would differ from any server's: start it as the spec says.
        self.s._Session['PreauthIntegrityHashValue'] = self.s._Connection['PreauthIntegrityHashValue']
        # Signed, not sealed: impacket seals every session of a server that can encrypt.
        self.s._Connection['SupportsEncryption'] = False
        self.c.login(user, password)
        if self.s.getDialect() != SMB2_DIALECT_311 or not self.c.isSigningRequired():
            raise RuntimeError('not SMB 3.1.1 with signing: dialect %#x' % self.s.getDialect())
        self.tid = self.c.connectTree(share)

    def opened(self, path, access, disposition, options=0):
        return self.s.create(self.tid, wire(path), access, SHARE_ALL, options, disposition, 0)

    def with_open(self, path, access, disposition, options, fn):
        fid = self.opened(path, access, disposition, options)
        try:
            return fn(fid)
        finally:
            self.s.close(self.tid, fid)

    def set_info(self, fid, cls, blob):
        self.s.setInfo(self.tid, fid, blob, SMB2_0_INFO_FILE, cls)

    def network_open(self, fid):
        b = self.s.queryInfo(self.tid, fid, b'', SMB2_0_INFO_FILE, FILE_NETWORK_OPEN_INFO)
        _c, _a, write, _ch, _alloc, eof, attrs = struct.unpack_from('<QQQQQQI', b)
        return {'type': 'dir' if attrs & ATTR_DIRECTORY else 'file', 'size': eof, 'mtime100ns': write}

    def write_all(self, fid, offset, data):
        for at in range(0, len(data), CHUNK):
            part = data[at:at + CHUNK]
            n = self.s.write(self.tid, fid, part, offset + at, len(part))
            if n != len(part):
                raise RuntimeError('short write: %d of %d' % (n, len(part)))

    def read_some(self, fid, offset, length):
        out = []
        got = 0
        while got < length:
            try:
                part = self.s.read(self.tid, fid, offset + got, min(CHUNK, length - got))
            except (SessionError, Smb3Error) as e:
                if error_code(e) == nt_errors.STATUS_END_OF_FILE:
                    break
                raise
            if not part:
                break
            out.append(part)
            got += len(part)
        return b''.join(out)

    # ------------------------------------------------------------------ operations

    def op_mkdir(self, r):
        self.s.close(self.tid, self.opened(r['path'], FILE_READ_ATTRIBUTES, FILE_CREATE, FILE_DIRECTORY_FILE))

    def remove(self, path, options):
        # Delete-on-close through FileDispositionInformation, as Explorer deletes.
        self.with_open(path, DELETE | FILE_READ_ATTRIBUTES, FILE_OPEN, options,
                       lambda fid: self.set_info(fid, FILE_DISPOSITION_INFO, b'\x01'))

    def op_rmdir(self, r):
        self.remove(r['path'], FILE_DIRECTORY_FILE)

    def op_remove(self, r):
        self.remove(r['path'], FILE_NON_DIRECTORY_FILE)

    def op_write(self, r):
        data = base64.b64decode(r['data'])
        whole = r.get('offset') is None
        disposition = FILE_OVERWRITE_IF if whole else FILE_OPEN_IF

        def go(fid):
            offset = r.get('offset') or 0
            if r.get('append'):
                offset = self.network_open(fid)['size']
            self.write_all(fid, offset, data)
        self.with_open(r['path'], FILE_READ_DATA | FILE_WRITE_DATA | FILE_READ_ATTRIBUTES, disposition, FILE_NON_DIRECTORY_FILE, go)

    def op_read(self, r):
        length = r.get('length')
        def go(fid):
            n = self.network_open(fid)['size'] if length is None else length
            return self.read_some(fid, r.get('offset') or 0, n)
        data = self.with_open(r['path'], FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_OPEN, FILE_NON_DIRECTORY_FILE, go)
        return {'data': base64.b64encode(data).decode()}

    def op_stat(self, r):
        st = self.with_open(r['path'], FILE_READ_ATTRIBUTES, FILE_OPEN, 0, self.network_open)
        return {'type': st['type'], 'size': st['size'], 'mtimeMs': (st['mtime100ns'] - FILETIME_EPOCH) / 10000}

    def op_list(self, r):
        out = []

        def go(fid):
            first = True
            for _ in range(100000):
                try:
                    b = self.s.queryDirectory(self.tid, fid, '*', 0, FILE_DIRECTORY_INFORMATION, 65536, enumRestart=first)
                except (SessionError, Smb3Error) as e:
                    if error_code(e) == nt_errors.STATUS_NO_MORE_FILES:
                        return
                    raise
                first = False
                at = 0
                while True:
                    nxt, = struct.unpack_from('<I', b, at)
                    attrs, nlen = struct.unpack_from('<II', b, at + 56)
                    name = b[at + 64:at + 64 + nlen].decode('utf-16le')
                    if name not in ('.', '..'):
                        out.append({'name': name, 'type': 'dir' if attrs & ATTR_DIRECTORY else 'file'})
                    if nxt == 0:
                        break
                    at += nxt
            raise RuntimeError('no end of the listing after 100,000 pages')
        self.with_open(r['path'], FILE_READ_DATA | FILE_READ_ATTRIBUTES, FILE_OPEN, FILE_DIRECTORY_FILE, go)
        return {'entries': out}

    def op_rename(self, r):
        # FILE_RENAME_INFORMATION (MS-FSCC 2.4.37, the SMB2 form): the target is share-relative.
        target = wire(r['to']).encode('utf-16le')
        blob = struct.pack('<B7xQI', 1 if r['replace'] else 0, 0, len(target)) + target
        self.with_open(r['from'], DELETE | FILE_READ_ATTRIBUTES, FILE_OPEN, 0,
                       lambda fid: self.set_info(fid, FILE_RENAME_INFO, blob))

    def op_truncate(self, r):
        self.with_open(r['path'], FILE_WRITE_DATA, FILE_OPEN, FILE_NON_DIRECTORY_FILE,
                       lambda fid: self.set_info(fid, FILE_END_OF_FILE_INFO, struct.pack('<Q', r['size'])))

    def op_settimes(self, r):
        # FILE_BASIC_INFORMATION: 0 leaves a time (and the attributes) as they are.
        t = FILETIME_EPOCH + int(round(r['mtimeMs'] * 10000))
        blob = struct.pack('<QQQQII', 0, 0, t, 0, 0, 0)
        self.with_open(r['path'], FILE_WRITE_ATTRIBUTES, FILE_OPEN, 0, lambda fid: self.set_info(fid, FILE_BASIC_INFO, blob))

    def op_close(self, r):
        self.c.close()


def error_code(e):
    # impacket.smbconnection.SessionError and impacket.smb3.SessionError name it differently.
    return e.getErrorCode() if hasattr(e, 'getErrorCode') else e.get_error_code()


def status_name(code):
    return nt_errors.ERROR_MESSAGES.get(code, ('STATUS_%#010x' % code,))[0]


def main():
    worker = None
    for line in sys.stdin:
        r = json.loads(line)
        try:
            if r['op'] == 'connect':
                worker = Worker(r['port'], r['user'], r['password'], r['share'])
                reply = {}
            else:
                reply = getattr(worker, 'op_' + r['op'])(r) or {}
            reply['ok'] = True
        except (SessionError, Smb3Error) as e:
            reply = {'ok': False, 'status': status_name(error_code(e)), 'detail': str(e)}
        except Exception as e:  # a client-side failure: the driver reports it as EIO with this text
            reply = {'ok': False, 'status': type(e).__name__, 'detail': str(e)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()
        if r['op'] == 'close':
            return


main()
