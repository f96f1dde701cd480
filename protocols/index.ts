/**
 * The one place protocol servers are registered. Each protocol module adds itself here as it is
 * built. The CLI and the gateway import this file for its side effect before reading
 * `protocolRegistry`.
 */
import { registerProtocol } from '../src/server/plugin.ts';
import { webdavProtocol } from './webdav/plugin.ts';
import { nfsProtocol } from './nfs/plugin.ts';
import { smbProtocol } from './smb/plugin.ts';
import { fuseProtocol } from './fuse/plugin.ts';

registerProtocol(webdavProtocol);
registerProtocol(nfsProtocol);
registerProtocol(smbProtocol);
registerProtocol(fuseProtocol);
