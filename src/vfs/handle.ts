/**
 * An open file or directory. Handles are created and driven only by the Vfs; protocols keep them
 * opaque (SMB FileIds, NFSv4 stateids and FUSE fhs map onto them).
 */
import type { BackendFile, BackendStat } from './backend.ts';
import type { Volume } from './volume.ts';
import type { WriteStage } from './write-stage.ts';
import type { Access, FileId, NodeType } from './types.ts';

export class Handle {
  readonly id: string;
  readonly volume: Volume;
  readonly fileId: FileId;
  readonly type: NodeType;
  readonly access: Access;
  readonly share: Access;
  readonly owner: string;
  /** Current backend path; the Vfs updates it when the file or a parent directory is renamed. */
  path: string;
  /** Random-access file (reads always; writes on backends with randomWrites). */
  file: BackendFile | undefined;
  /** Shared write stage on backends without random writes. */
  stage: WriteStage | undefined;
  /**
   * The backend stat the open found (OpenFiles.attrAtOpen); undefined when the open created or
   * truncated the file. A field rather than a WeakMap entry per open (issue 9: one ephemeron less
   * for the GC per handle).
   */
  openStat: BackendStat | undefined;
  /** WebDAV lock tokens presented when the handle was opened (writes through it may use them). */
  readonly lockTokens: ReadonlySet<string>;
  /** Set when the file was unlinked while open: nothing is published on close. */
  orphaned = false;
  /**
   * Whether this open created its file (NFS OPEN's cinfo and attrset, SMB CREATE's CreateAction):
   * decided by the open itself, so no stat before it can race with another client's create.
   */
  created = false;
  closed = false;

  constructor(init: {
    id: string;
    volume: Volume;
    fileId: FileId;
    type: NodeType;
    access: Access;
    share: Access;
    owner: string;
    path: string;
    lockTokens?: ReadonlySet<string>;
  }) {
    this.lockTokens = init.lockTokens ?? new Set();
    this.id = init.id;
    this.volume = init.volume;
    this.fileId = init.fileId;
    this.type = init.type;
    this.access = init.access;
    this.share = init.share;
    this.owner = init.owner;
    this.path = init.path;
  }
}
