// Portico's binding on libfuse3's low-level (inode-based) API — protocols/fuse/README.md.
//
// Shape, and why:
// - One FuseSession per mount. Its /dev/fuse descriptor is non-blocking and polled by the JS
//   thread's event loop (uv_poll): when it is readable, requests are read and processed right there
//   (fuse_session_receive_buf / _process_buf, at most READ_BATCH per wake-up); each request callback
//   copies what it needs (names, written bytes) into an Event, registers the request in a table under
//   a numeric id and calls the JS handler at once (MakeCallback), which starts the request's work and
//   returns: many requests are in flight, answered as each finishes. Decision (measured, README):
//   before, fuse_session_loop ran on a thread of its own and handed each request over through a
//   threadsafe function — a mutex, an eventfd write and read, an epoll wake-up and two context
//   switches per request, which a one-request-at-a-time client (stat, create, close) pays in full.
// - JS answers with reply*(id, ...), which calls fuse_reply_* on the JS thread (libfuse allows a
//   reply from any thread). The id, not a pointer, crosses into JS: a second reply, a reply after
//   unmount, or a made-up id finds nothing and throws or is ignored instead of touching freed
//   memory. The table's mutex is held across a reply so that teardown (which answers what is still
//   pending with EIO and destroys the session) cannot run beneath it.
// - Kernel cache invalidation (fuse_lowlevel_notify_inval_inode/_entry) goes through a notifier
//   thread with a queue: a notification blocks in the kernel on the inode's or directory's lock,
//   which a request in flight may hold while it waits for the JS thread's reply — called on the JS
//   thread it could deadlock (libfuse's documentation of these calls says the same).
// - Errors are negative errno in libfuse; JS passes a positive errno, the reply negates nothing
//   (fuse_reply_err takes the positive value).
// - Numbers: inode numbers, file handles and readdir offsets cross as JS numbers (doubles); the
//   TypeScript layer keeps them below 2^53 (protocols/fuse/inodes.ts).
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <napi.h>

#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

enum Op {
  OP_LOOKUP = 1, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR, OP_UNLINK, OP_RMDIR,
  OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE, OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_READDIR,
  OP_READDIRPLUS, OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE, OP_GETLK, OP_SETLK, OP_FLOCK,
  // FUSE_INTERRUPT of a request in flight (ev->id is that request's id; nothing to answer).
  OP_INTERRUPT, OP_LSEEK, OP_COPY_FILE_RANGE, OP_FALLOCATE,
};

// Attribute layout shared with protocols/fuse/native.ts (ATTR_*).
constexpr int ATTR_LEN = 14;

class FuseSession;
struct Event {
  int op = 0;
  uint64_t id = 0;
  uint64_t ino = 0;
  std::string name, name2;
  double n1 = 0, n2 = 0, n3 = 0;
  char *data = nullptr;  // written bytes (OP_WRITE, OP_SETXATTR): handed to JS as a Buffer
  size_t dataLen = 0;
  int slab = -1;          // OP_WRITE: the bytes are in this slab at slabOff (data is null then)
  size_t slabOff = 0;
  double set[8] = {0};    // setattr: mode uid gid size atime_s atime_ns mtime_s mtime_ns; locks: type start len sleep;
                          // copy_file_range: off_in fh_in ino_out off_out fh_out len flags; fallocate: offset length
  bool hasSet = false;
};

struct Pending {
  fuse_req_t req;
  size_t size;    // getxattr/listxattr: the size the caller asked for
  int slab = -1;  // write slab freed with the reply
  size_t slabOff = 0, slabLen = 0;  // where in the slab the written bytes are (WriteFd)
};

// Requests are read from /dev/fuse straight into one of a few slabs that JS holds as Buffers for the
// whole mount, so a WRITE's bytes stay where the kernel put them: JS writes them to the store from
// the slab, and the slab is not read into again until the request is answered (the session's write
// has completed by then). Before, requests were read into libfuse's one buffer and each WRITE's
// bytes copied into a slab (a 1 MiB memmove per WRITE: ~6 % of a sequential write's CPU); and
// before that, a new 1 MiB external Buffer per write made V8 collect garbage after every few writes.
// A slab is as large as libfuse's receive buffer (se->bufsize: FUSE_MAX_MAX_PAGES pages and a 4 KiB
// header area, libfuse 3.0-3.16; a later libfuse may size it otherwise, so it gets its own buffer
// and the copy, RecvIntoSlabs). No free slab: libfuse's buffer, and the copy into a slab or malloc.
constexpr int SLABS = 16;
constexpr size_t SLAB_SIZE = 1 << 20;
size_t RecvSize() { return 256 * static_cast<size_t>(sysconf(_SC_PAGESIZE)) + 0x1000; }
bool RecvIntoSlabs() { return fuse_version() < 317 && RecvSize() >= SLAB_SIZE + 0x1000; }

struct Notice {
  bool entry;
  uint64_t ino;
  std::string name;
};

class FuseSession;
void CallJs(Napi::Env env, Napi::Function fn, std::nullptr_t *, Event *ev);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Event, CallJs>;

class FuseSession : public Napi::ObjectWrap<FuseSession> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit FuseSession(const Napi::CallbackInfo &info);
  ~FuseSession() override;

  // Called on the JS thread by the request callbacks (inside Readable). `interruptible`: a FUSE_INTERRUPT of the
  // request reaches JS as an OP_INTERRUPT event with the request's id (blocking lock waits).
  void Dispatch(fuse_req_t req, Event *ev, size_t size = 0, bool interruptible = false) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (ended_) {
        fuse_reply_err(req, EIO);
        free(ev->data);
        delete ev;
        return;
      }
      ev->id = ++nextId_;
      pending_.emplace(ev->id, Pending{req, size, ev->slab, ev->slabOff, ev->dataLen});
    }
    uint64_t id = ev->id;
    Call(ev);
    if (interruptible) {
      // Registered after the request's event is handled, so that an interrupt that already came
      // (libfuse then calls OnInterrupt at once) reaches JS after the request it names. Under mu_,
      // and only while the request is pending: a reply (which frees the request) holds mu_ too.
      // Lock order mu_ -> req lock -> session lock; OnInterrupt takes neither mu_ nor a reply.
      std::lock_guard<std::mutex> g(mu_);
      auto it = pending_.find(id);
      if (it != pending_.end()) fuse_req_interrupt_func(it->second.req, OnInterrupt, reinterpret_cast<void *>(static_cast<uintptr_t>(id)));
    }
  }
  // libfuse's interrupt callback (JS thread, inside request processing or the registration above,
  // the request's lock held): tells JS through the threadsafe function, i.e. later and outside these
  // locks, which cancels the wait and answers the request (EINTR) through the usual reply path.
  static void OnInterrupt(fuse_req_t req, void *data);
  void Interrupt(uint64_t id) {
    auto *ev = new Event();
    ev->op = OP_INTERRUPT;
    ev->id = id;
    if (tsfn_.BlockingCall(ev) != napi_ok) delete ev;
  }
  void Forget(uint64_t ino, uint64_t n) {
    auto *ev = new Event();
    ev->op = OP_FORGET;
    ev->ino = ino;
    ev->n1 = static_cast<double>(n);
    Call(ev);
  }
  // Hands an event to the JS handler now (JS thread) and frees it.
  void Call(Event *ev);
  bool writeback_ = false;
  // The mount's max_read option (0: none): libfuse wants init() to ask for the same.
  unsigned maxRead_ = 0;
  // The addon's own option no_auto_inval_data (not passed to libfuse): init() leaves
  // FUSE_CAP_AUTO_INVAL_DATA out.
  bool noAutoInval_ = false;
  // A free slab for `len` written bytes (-1: none; the caller mallocs). JS thread (request processing).
  int TakeSlab(size_t len) {
    if (len > SLAB_SIZE) return -1;
    std::lock_guard<std::mutex> g(mu_);
    for (int i = 0; i < nslabs_; i++)
      if (!slabBusy_[i] && i != recvSlab_) {
        slabBusy_[i] = true;
        return i;
      }
    return -1;
  }
  // op_write of the request being processed: whether its bytes lie in the slab it was read into;
  // if so the slab is kept for them (busy until the reply) and *off says where they start.
  bool KeepRecvSlab(const char *buf, size_t len, int *slab, size_t *off) {
    if (recvSlab_ < 0) return false;
    const char *base = slabs_[recvSlab_];
    if (buf < base || buf + len > base + slabSize_) return false;
    std::lock_guard<std::mutex> g(mu_);
    slabBusy_[recvSlab_] = true;
    *slab = recvSlab_;
    *off = static_cast<size_t>(buf - base);
    return true;
  }
  // A descriptor read (ReplyFd) finished on the thread pool (JS thread): the last one lets a
  // teardown that waited for it end the session.
  void FdReplyDone() {
    if (--fdReplies_ == 0 && teardownWaits_) FinishTeardown();
    Unref();
  }
  // A descriptor write (WriteFd) finished: its slab may be read into again.
  void SlabDone(int slab) {
    std::lock_guard<std::mutex> g(mu_);
    slabBusy_[slab] = false;
  }
  // Queues a descriptor worker (FdReply, FdWrite): counted until FdReplyDone (a teardown waits for
  // it), this object kept alive for its callbacks; its promise is the caller's answer.
  template <class Worker>
  Napi::Value QueueFdWorker(Worker *w) {
    fdReplies_++;
    Ref();
    Napi::Promise promise = w->Promise();
    w->Queue();
    return promise;
  }
  // replyFd/writeFd for a request already answered or dropped: nothing sent, nothing written.
  static Napi::Value NothingSent(Napi::Env env) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(Napi::Number::New(env, 0));
    return d.Promise();
  }
  struct fuse_session *Se() const { return se_; }
  char *slabs_[SLABS] = {nullptr};
  bool slabBusy_[SLABS] = {false};
  int nslabs_ = 0;
  size_t slabSize_ = SLAB_SIZE;
  // The slab the request being processed was read into (-1: libfuse's own buffer). JS thread.
  int recvSlab_ = -1;

 private:
  Napi::Value Mount(const Napi::CallbackInfo &info);
  Napi::Value Unmount(const Napi::CallbackInfo &info);
  Napi::Value ReplyErr(const Napi::CallbackInfo &info);
  Napi::Value ReplyEntry(const Napi::CallbackInfo &info);
  Napi::Value ReplyCreate(const Napi::CallbackInfo &info);
  Napi::Value ReplyAttr(const Napi::CallbackInfo &info);
  Napi::Value ReplyOpen(const Napi::CallbackInfo &info);
  Napi::Value ReplyBuf(const Napi::CallbackInfo &info);
  Napi::Value ReplyFd(const Napi::CallbackInfo &info);
  Napi::Value ReplyWrite(const Napi::CallbackInfo &info);
  Napi::Value WriteFd(const Napi::CallbackInfo &info);
  Napi::Value ReplyReadlink(const Napi::CallbackInfo &info);
  Napi::Value ReplyStatfs(const Napi::CallbackInfo &info);
  Napi::Value ReplyXattr(const Napi::CallbackInfo &info);
  Napi::Value ReplyDir(const Napi::CallbackInfo &info);
  Napi::Value ReplyLock(const Napi::CallbackInfo &info);
  Napi::Value ReplyLseek(const Napi::CallbackInfo &info);
  Napi::Value Slabs(const Napi::CallbackInfo &info);
  std::vector<Napi::Reference<Napi::Buffer<char>>> slabRefs_;
  Napi::Value InvalInode(const Napi::CallbackInfo &info);
  Napi::Value InvalEntry(const Napi::CallbackInfo &info);

  // Takes the request of an id out of the table (the mutex must be held). Throws for an unknown id
  // unless the session ended (a late reply after unmount is not the caller's bug).
  bool Take(Napi::Env env, uint64_t id, Pending *out) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      if (!ended_) throw Napi::Error::New(env, "fuse: no pending request " + std::to_string(id));
      return false;
    }
    *out = it->second;
    if (out->slab >= 0) slabBusy_[out->slab] = false;
    pending_.erase(it);
    return true;
  }
  void Fail(uint64_t id, int err) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    fuse_reply_err(it->second.req, err);
    if (it->second.slab >= 0) slabBusy_[it->second.slab] = false;
    pending_.erase(it);
  }
  static void OnPoll(uv_poll_t *h, int status, int events);
  void Readable(int status);
  void Teardown();
  void FinishTeardown();
  void Notifier();
  // Descriptor reads in flight on the thread pool (JS thread only): the session is destroyed after them.
  int fdReplies_ = 0;
  bool teardownWaits_ = false;

  struct fuse_session *se_ = nullptr;
  std::string mountpoint_;
  std::vector<std::string> args_;
  Tsfn tsfn_;  // interrupts only (they must reach JS outside libfuse's request lock)
  Napi::FunctionReference handler_;
  Napi::FunctionReference onExit_;
  napi_env env_ = nullptr;
  napi_async_context actx_ = nullptr;
  uv_poll_t poll_;
  struct fuse_buf fbuf_ = {};
  bool tornDown_ = false;
  std::thread notifier_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t nextId_ = 0;
  bool ended_ = false;
  bool mounted_ = false;
  std::mutex nmu_;
  std::condition_variable ncv_;
  std::deque<Notice> notices_;
  bool nstop_ = false;
};

FuseSession *Of(fuse_req_t req) { return static_cast<FuseSession *>(fuse_req_userdata(req)); }
void FuseSession::OnInterrupt(fuse_req_t req, void *data) { Of(req)->Interrupt(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data))); }

// ---------------------------------------------------------------- request callbacks (JS thread, inside Readable)

Event *Ev(int op, fuse_ino_t ino) {
  auto *e = new Event();
  e->op = op;
  e->ino = ino;
  return e;
}
double FhOf(struct fuse_file_info *fi) { return fi ? static_cast<double>(fi->fh) : -1; }

void op_init(void *ud, struct fuse_conn_info *conn) {
  auto *s = static_cast<FuseSession *>(ud);
  if (s->maxRead_ != 0) conn->max_read = s->maxRead_;
  // Explicit invalidation only (protocols/fuse/README.md, "page cache"): the kernel keeps the pages
  // this mount wrote when the file's mtime moves; changes from elsewhere arrive as notifications.
  if (s->noAutoInval_) conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  if (s->writeback_ && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  // Several reads of one file in flight at once (the JS side serves them concurrently).
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  // Locks go to Portico's lock manager (they conflict with NFS, SMB and WebDAV locks).
  if (conn->capable & FUSE_CAP_POSIX_LOCKS) conn->want |= FUSE_CAP_POSIX_LOCKS;
  if (conn->capable & FUSE_CAP_FLOCK_LOCKS) conn->want |= FUSE_CAP_FLOCK_LOCKS;
  // Read replies from a descriptor (ReplyFd) go file -> pipe -> /dev/fuse by splice, not through
  // a buffer; without it libfuse preads into a buffer and writes that (its own fallback).
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
}
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  auto *e = Ev(OP_LOOKUP, parent);
  e->name = name;
  Of(req)->Dispatch(req, e);
}
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  Of(req)->Forget(ino, n);
  fuse_reply_none(req);
}
void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  for (size_t i = 0; i < count; i++) Of(req)->Forget(f[i].ino, f[i].nlookup);
  fuse_reply_none(req);
}
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  auto *e = Ev(OP_GETATTR, ino);
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set, struct fuse_file_info *fi) {
  auto *e = Ev(OP_SETATTR, ino);
  e->n1 = to_set;
  e->n3 = FhOf(fi);
  e->hasSet = true;
  double v[8] = {static_cast<double>(a->st_mode), static_cast<double>(a->st_uid), static_cast<double>(a->st_gid),
                 static_cast<double>(a->st_size), static_cast<double>(a->st_atim.tv_sec), static_cast<double>(a->st_atim.tv_nsec),
                 static_cast<double>(a->st_mtim.tv_sec), static_cast<double>(a->st_mtim.tv_nsec)};
  memcpy(e->set, v, sizeof v);
  Of(req)->Dispatch(req, e);
}
void op_readlink(fuse_req_t req, fuse_ino_t ino) { Of(req)->Dispatch(req, Ev(OP_READLINK, ino)); }
void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  auto *e = Ev(OP_MKNOD, parent);
  e->name = name;
  e->n1 = mode;
  e->n2 = static_cast<double>(rdev);
  Of(req)->Dispatch(req, e);
}
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  auto *e = Ev(OP_MKDIR, parent);
  e->name = name;
  e->n1 = mode;
  Of(req)->Dispatch(req, e);
}
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  auto *e = Ev(OP_UNLINK, parent);
  e->name = name;
  Of(req)->Dispatch(req, e);
}
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  auto *e = Ev(OP_RMDIR, parent);
  e->name = name;
  Of(req)->Dispatch(req, e);
}
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  auto *e = Ev(OP_SYMLINK, parent);
  e->name = name;
  e->name2 = link;
  Of(req)->Dispatch(req, e);
}
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname, unsigned int flags) {
  auto *e = Ev(OP_RENAME, parent);
  e->name = name;
  e->name2 = newname;
  e->n1 = static_cast<double>(newparent);
  e->n2 = flags;
  Of(req)->Dispatch(req, e);
}
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  auto *e = Ev(OP_LINK, ino);
  e->name = newname;
  e->n1 = static_cast<double>(newparent);
  Of(req)->Dispatch(req, e);
}
void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  auto *e = Ev(OP_OPEN, ino);
  e->n1 = fi->flags;
  Of(req)->Dispatch(req, e);
}
void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  auto *e = Ev(OP_READ, ino);
  e->n1 = static_cast<double>(size);
  e->n2 = static_cast<double>(off);
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  auto *e = Ev(OP_WRITE, ino);
  // The request buffer is reused for the next request once this returns: the bytes are copied
  // once, into a slab JS already holds (or memory that becomes the JS Buffer).
  FuseSession *s = Of(req);
  if (s->KeepRecvSlab(buf, size, &e->slab, &e->slabOff)) {
    // read into a slab: the bytes stay there (no copy)
  } else if ((e->slab = s->TakeSlab(size)) >= 0) {
    memcpy(s->slabs_[e->slab], buf, size);
  } else {
    e->data = static_cast<char *>(malloc(size ? size : 1));
    if (!e->data) {
      delete e;
      fuse_reply_err(req, ENOMEM);
      return;
    }
    memcpy(e->data, buf, size);
  }
  e->dataLen = size;
  e->n2 = static_cast<double>(off);
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
std::string OwnerHex(uint64_t owner) {
  char b[17];
  snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(owner));
  return b;
}
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  auto *e = Ev(OP_FLUSH, ino);
  e->n3 = FhOf(fi);
  e->name = OwnerHex(fi->lock_owner);  // close(2) drops this owner's POSIX locks on the file
  Of(req)->Dispatch(req, e);
}
void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  auto *e = Ev(OP_RELEASE, ino);
  e->n1 = fi->flags;
  e->n2 = fi->flock_release;
  e->name = OwnerHex(fi->lock_owner);
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  auto *e = Ev(OP_FSYNC, ino);
  e->n1 = datasync;
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
void op_opendir(fuse_req_t req, fuse_ino_t, struct fuse_file_info *fi) {
  // Listing rights are decided by readdir (the session's readdirById); an open directory holds nothing.
  fi->fh = 0;
  fuse_reply_open(req, fi);
}
void op_releasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info *) { fuse_reply_err(req, 0); }
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info *) { fuse_reply_err(req, 0); }
void op_readdir_any(int op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  auto *e = Ev(op, ino);
  e->n1 = static_cast<double>(size);
  e->n2 = static_cast<double>(off);
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e, size);
}
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  op_readdir_any(OP_READDIR, req, ino, size, off, fi);
}
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  op_readdir_any(OP_READDIRPLUS, req, ino, size, off, fi);
}
void op_statfs(fuse_req_t req, fuse_ino_t ino) { Of(req)->Dispatch(req, Ev(OP_STATFS, ino)); }
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  auto *e = Ev(OP_SETXATTR, ino);
  e->name = name;
  e->data = static_cast<char *>(malloc(size ? size : 1));
  if (!e->data) {
    delete e;
    fuse_reply_err(req, ENOMEM);
    return;
  }
  memcpy(e->data, value, size);
  e->dataLen = size;
  e->n1 = flags;
  Of(req)->Dispatch(req, e);
}
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  // Only user.* is kept (src/vfs/xattrs.ts). The kernel asks for others all the time — for
  // security.capability before every write(2), for ACLs and labels on every `ls -l` entry — so
  // they are answered here, without a trip through JS.
  if (strncmp(name, "user.", 5) != 0) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  auto *e = Ev(OP_GETXATTR, ino);
  e->name = name;
  e->n1 = static_cast<double>(size);
  Of(req)->Dispatch(req, e, size);
}
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto *e = Ev(OP_LISTXATTR, ino);
  e->n1 = static_cast<double>(size);
  Of(req)->Dispatch(req, e, size);
}
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  auto *e = Ev(OP_REMOVEXATTR, ino);
  e->name = name;
  Of(req)->Dispatch(req, e);
}
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  auto *e = Ev(OP_CREATE, parent);
  e->name = name;
  e->n1 = mode;
  e->n2 = fi->flags;
  Of(req)->Dispatch(req, e);
}

// POSIX locks and flock: the owner (the kernel's lock owner id) crosses as hex text (it does not
// fit a double); the lock as set[] = {type, start, len, sleep}.
void op_lk(int op, fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock, int sleep) {
  auto *e = Ev(op, ino);
  e->n3 = FhOf(fi);
  e->name = OwnerHex(fi->lock_owner);
  e->hasSet = true;
  e->set[0] = lock->l_type;
  e->set[1] = static_cast<double>(lock->l_start);
  e->set[2] = static_cast<double>(lock->l_len);
  e->set[3] = sleep;
  Of(req)->Dispatch(req, e, 0, sleep != 0);
}
void op_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock) { op_lk(OP_GETLK, req, ino, fi, lock, 0); }
void op_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock, int sleep) { op_lk(OP_SETLK, req, ino, fi, lock, sleep); }
void op_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op) {
  auto *e = Ev(OP_FLOCK, ino);
  e->n3 = FhOf(fi);
  e->n1 = op;
  e->name = OwnerHex(fi->lock_owner);
  Of(req)->Dispatch(req, e, 0, (op & (LOCK_SH | LOCK_EX)) != 0 && (op & LOCK_NB) == 0);
}
void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  auto *e = Ev(OP_LSEEK, ino);
  e->n1 = static_cast<double>(off);
  e->n2 = whence;
  e->n3 = FhOf(fi);
  Of(req)->Dispatch(req, e);
}
void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in, fuse_ino_t ino_out,
                        off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags) {
  auto *e = Ev(OP_COPY_FILE_RANGE, ino_in);
  e->hasSet = true;
  double v[8] = {static_cast<double>(off_in), FhOf(fi_in), static_cast<double>(ino_out), static_cast<double>(off_out),
                 FhOf(fi_out), static_cast<double>(len), static_cast<double>(flags), 0};
  memcpy(e->set, v, sizeof v);
  Of(req)->Dispatch(req, e);
}
void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, struct fuse_file_info *fi) {
  auto *e = Ev(OP_FALLOCATE, ino);
  e->n1 = mode;
  e->n3 = FhOf(fi);
  e->hasSet = true;
  e->set[0] = static_cast<double>(offset);
  e->set[1] = static_cast<double>(length);
  Of(req)->Dispatch(req, e);
}

struct fuse_lowlevel_ops MakeOps() {
  struct fuse_lowlevel_ops o;
  memset(&o, 0, sizeof o);
  o.init = op_init;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.symlink = op_symlink;
  o.rename = op_rename;
  o.link = op_link;
  o.open = op_open;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.readdirplus = op_readdirplus;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.setxattr = op_setxattr;
  o.getxattr = op_getxattr;
  o.listxattr = op_listxattr;
  o.removexattr = op_removexattr;
  o.create = op_create;
  o.getlk = op_getlk;
  o.setlk = op_setlk;
  o.flock = op_flock;
  o.lseek = op_lseek;
  o.copy_file_range = op_copy_file_range;
  o.fallocate = op_fallocate;
  return o;
}
const struct fuse_lowlevel_ops kOps = MakeOps();

// ---------------------------------------------------------------- JS thread

void FreeData(Napi::Env, char *data) { free(data); }

// The handler's nine arguments for an event (op, id, ino, name, name2, n1, n2, n3, data); frees
// nothing (the caller deletes the event). A scope must be open.
void EventArgs(Napi::Env env, Event *ev, napi_value *args) {
  Napi::Value data = env.Undefined();
  if (ev->slab >= 0) {
    // JS takes slab ev->slab, bytes [off, off + n1): n1 carries the length, name2 "slab@off".
    ev->n1 = static_cast<double>(ev->dataLen);
    ev->name2 = std::to_string(ev->slab) + "@" + std::to_string(ev->slabOff);
  } else if (ev->data) {
    data = Napi::Buffer<char>::New(env, ev->data, ev->dataLen, FreeData);
    ev->data = nullptr;
  } else if (ev->hasSet) {
    auto arr = Napi::Float64Array::New(env, 8);
    for (int i = 0; i < 8; i++) arr[i] = ev->set[i];
    data = arr;
  }
  args[0] = Napi::Number::New(env, ev->op);
  args[1] = Napi::Number::New(env, static_cast<double>(ev->id));
  args[2] = Napi::Number::New(env, static_cast<double>(ev->ino));
  args[3] = Napi::String::New(env, ev->name);
  args[4] = Napi::String::New(env, ev->name2);
  args[5] = Napi::Number::New(env, ev->n1);
  args[6] = Napi::Number::New(env, ev->n2);
  args[7] = Napi::Number::New(env, ev->n3);
  args[8] = data;
}

// The threadsafe function's callback (interrupts).
void CallJs(Napi::Env env, Napi::Function fn, std::nullptr_t *, Event *ev) {
  if (env == nullptr || fn.IsEmpty()) {
    if (ev) free(ev->data);
    delete ev;
    return;
  }
  Napi::HandleScope scope(env);
  napi_value args[9];
  EventArgs(env, ev, args);
  delete ev;
  fn.Call(9, args);
}

void FuseSession::Call(Event *ev) {
  Napi::Env env(env_);
  Napi::HandleScope scope(env);
  napi_value args[9];
  EventArgs(env, ev, args);
  delete ev;
  try {
    // MakeCallback, not Call: this runs from an event-loop callback (uv_poll), and the promise jobs
    // and nextTicks the handler queues must run when it returns, as after any I/O callback.
    handler_.Value().MakeCallback(env.Global(), 9, args, actx_);
  } catch (const Napi::Error &e) {
    // A throw out of the handler (it catches its requests' errors itself): uncaught, as from the
    // threadsafe function before.
    napi_fatal_exception(env_, e.Value());
  }
}

constexpr int READ_BATCH = 64;

void FuseSession::OnPoll(uv_poll_t *h, int status, int) { static_cast<FuseSession *>(h->data)->Readable(status); }

// /dev/fuse is readable (or the connection ended: ENODEV, or an error status): processes up to
// READ_BATCH requests, then lets the event loop run the rest of its work (the poll is level-triggered).
void FuseSession::Readable(int status) {
  if (tornDown_) return;
  if (status < 0) return Teardown();
  for (int i = 0; i < READ_BATCH; i++) {
    if (fuse_session_exited(se_)) return Teardown();
    // Into a free slab where there is one (see SLABS), else libfuse's own buffer.
    int slab = -1;
    if (slabSize_ > SLAB_SIZE) {
      std::lock_guard<std::mutex> g(mu_);
      for (int k = 0; k < nslabs_; k++)
        if (!slabBusy_[k]) {
          slab = k;
          break;
        }
    }
    struct fuse_buf sb = {};
    struct fuse_buf *b = &fbuf_;
    if (slab >= 0) {
      sb.mem = slabs_[slab];
      sb.size = slabSize_;
      b = &sb;
    }
    int res = fuse_session_receive_buf(se_, b);
    if (res == -EAGAIN) return;
    if (res == -EINTR) continue;
    if (res <= 0) return Teardown();  // 0: ENODEV (unmounted) or exited
    recvSlab_ = slab;
    fuse_session_process_buf(se_, b);
    recvSlab_ = -1;
  }
}

// The connection ended (unmount, fusermount3 -u from outside, or an error reading it): what is still
// pending is answered EIO, the session destroyed, and JS told (op 0). JS thread.
void FuseSession::Teardown() {
  if (tornDown_) return;
  tornDown_ = true;
  uv_poll_stop(&poll_);
  {
    std::lock_guard<std::mutex> g(mu_);
    ended_ = true;
    for (auto &p : pending_) fuse_reply_err(p.second.req, EIO);
    pending_.clear();
  }
  {
    std::lock_guard<std::mutex> g(nmu_);
    nstop_ = true;
  }
  ncv_.notify_all();
  if (notifier_.joinable()) notifier_.join();
  // A descriptor read still splicing on the thread pool uses the session: destroyed after it.
  if (fdReplies_ > 0) {
    teardownWaits_ = true;
    return;
  }
  FinishTeardown();
}

void FuseSession::FinishTeardown() {
  teardownWaits_ = false;
  free(fbuf_.mem);
  fbuf_.mem = nullptr;
  fuse_session_reset(se_);
  fuse_session_unmount(se_);
  fuse_session_destroy(se_);  // closes the descriptor: polled no more since uv_poll_stop
  se_ = nullptr;
  tsfn_.Release();
  // The handle goes with its close callback; the object may be collected after that.
  uv_close(reinterpret_cast<uv_handle_t *>(&poll_), [](uv_handle_t *h) { static_cast<FuseSession *>(h->data)->Unref(); });
  auto *ev = new Event();
  ev->op = 0;
  Call(ev);
}

void FillStat(const Napi::Value &v, struct stat *st) {
  memset(st, 0, sizeof *st);
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "fuse: attributes must be a Float64Array");
  auto a = v.As<Napi::Float64Array>();
  if (a.ElementLength() < ATTR_LEN) throw Napi::TypeError::New(v.Env(), "fuse: attributes too short");
  st->st_ino = static_cast<ino_t>(a[0]);
  st->st_mode = static_cast<mode_t>(a[1]);
  st->st_nlink = static_cast<nlink_t>(a[2]);
  st->st_uid = static_cast<uid_t>(a[3]);
  st->st_gid = static_cast<gid_t>(a[4]);
  st->st_size = static_cast<off_t>(a[5]);
  st->st_blocks = static_cast<blkcnt_t>(a[6]);
  st->st_atim.tv_sec = static_cast<time_t>(a[7]);
  st->st_atim.tv_nsec = static_cast<long>(a[8]);
  st->st_mtim.tv_sec = static_cast<time_t>(a[9]);
  st->st_mtim.tv_nsec = static_cast<long>(a[10]);
  st->st_ctim.tv_sec = static_cast<time_t>(a[11]);
  st->st_ctim.tv_nsec = static_cast<long>(a[12]);
  st->st_blksize = static_cast<blksize_t>(a[13]);
}

void FillEntry(const Napi::CallbackInfo &info, int at, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  FillStat(info[at], &e->attr);
  e->ino = e->attr.st_ino;
  e->attr_timeout = info[at + 1].As<Napi::Number>().DoubleValue();
  e->entry_timeout = info[at + 2].As<Napi::Number>().DoubleValue();
  e->generation = 1;
}

uint64_t IdArg(const Napi::CallbackInfo &info) {
  if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "fuse: request id must be a number");
  return static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
}

Napi::Function FuseSession::Init(Napi::Env env) {
  return DefineClass(env, "FuseSession",
                     {
                         InstanceMethod("mount", &FuseSession::Mount),
                         InstanceMethod("unmount", &FuseSession::Unmount),
                         InstanceMethod("replyErr", &FuseSession::ReplyErr),
                         InstanceMethod("replyEntry", &FuseSession::ReplyEntry),
                         InstanceMethod("replyCreate", &FuseSession::ReplyCreate),
                         InstanceMethod("replyAttr", &FuseSession::ReplyAttr),
                         InstanceMethod("replyOpen", &FuseSession::ReplyOpen),
                         InstanceMethod("replyBuf", &FuseSession::ReplyBuf),
                         InstanceMethod("replyFd", &FuseSession::ReplyFd),
                         InstanceMethod("replyWrite", &FuseSession::ReplyWrite),
                         InstanceMethod("writeFd", &FuseSession::WriteFd),
                         InstanceMethod("replyReadlink", &FuseSession::ReplyReadlink),
                         InstanceMethod("replyStatfs", &FuseSession::ReplyStatfs),
                         InstanceMethod("replyXattr", &FuseSession::ReplyXattr),
                         InstanceMethod("replyDir", &FuseSession::ReplyDir),
                         InstanceMethod("replyLock", &FuseSession::ReplyLock),
                         InstanceMethod("replyLseek", &FuseSession::ReplyLseek),
                         InstanceMethod("slabs", &FuseSession::Slabs),
                         InstanceMethod("invalInode", &FuseSession::InvalInode),
                         InstanceMethod("invalEntry", &FuseSession::InvalEntry),
                     });
}

// new FuseSession(mountpoint, options: string[] (-o values), writeback: boolean, handler, onExit)
FuseSession::FuseSession(const Napi::CallbackInfo &info) : Napi::ObjectWrap<FuseSession>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsArray() || !info[3].IsFunction() || !info[4].IsFunction())
    throw Napi::TypeError::New(env, "FuseSession(mountpoint, options[], writeback, handler, onExit)");
  mountpoint_ = info[0].As<Napi::String>();
  auto opts = info[1].As<Napi::Array>();
  args_.push_back("portico");
  for (uint32_t i = 0; i < opts.Length(); i++) {
    std::string o = opts.Get(i).As<Napi::String>();
    if (o == "no_auto_inval_data") {
      noAutoInval_ = true;
      continue;
    }
    if (o.rfind("max_read=", 0) == 0) maxRead_ = static_cast<unsigned>(std::stoul(o.substr(9)));
    args_.push_back("-o");
    args_.push_back(o);
  }
  writeback_ = info[2].ToBoolean();
  tsfn_ = Tsfn::New(env, info[3].As<Napi::Function>(), "portico-fuse", 0, 1, nullptr);
  tsfn_.Unref(env);
  handler_ = Napi::Persistent(info[3].As<Napi::Function>());
  onExit_ = Napi::Persistent(info[4].As<Napi::Function>());
  env_ = env;
  napi_value resource = Napi::Object::New(env);
  if (napi_async_init(env, resource, Napi::String::New(env, "portico-fuse"), &actx_) != napi_ok) throw Napi::Error::New(env, "fuse: napi_async_init failed");
}

FuseSession::~FuseSession() {
  // The JS object is collected only after the teardown (mount() keeps it referenced until then).
  if (actx_ != nullptr) napi_async_destroy(env_, actx_);
}

Napi::Value FuseSession::Mount(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (se_ || mounted_) throw Napi::Error::New(env, "fuse: already mounted");
  std::vector<char *> argv;
  for (auto &a : args_) argv.push_back(const_cast<char *>(a.c_str()));
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  se_ = fuse_session_new(&args, &kOps, sizeof kOps, this);
  if (!se_) throw Napi::Error::New(env, "fuse: fuse_session_new failed (bad mount option?)");
  if (fuse_session_mount(se_, mountpoint_.c_str()) != 0) {
    int err = errno;
    fuse_session_destroy(se_);
    se_ = nullptr;
    auto e = Napi::Error::New(env, std::string("fuse: cannot mount ") + mountpoint_ + ": " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  int fd = fuse_session_fd(se_);
  uv_loop_t *loop = nullptr;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || napi_get_uv_event_loop(env, &loop) != napi_ok ||
      uv_poll_init(loop, &poll_, fd) != 0) {
    fuse_session_unmount(se_);
    fuse_session_destroy(se_);
    se_ = nullptr;
    throw Napi::Error::New(env, "fuse: cannot poll the session's descriptor");
  }
  poll_.data = this;
  mounted_ = true;
  Ref();  // kept alive until the teardown's poll handle is closed
  notifier_ = std::thread([this] { Notifier(); });
  // The active poll keeps the event loop (the process) alive while mounted.
  uv_poll_start(&poll_, UV_READABLE, OnPoll);
  return env.Undefined();
}

void FuseSession::Notifier() {
  for (;;) {
    Notice n;
    {
      std::unique_lock<std::mutex> l(nmu_);
      ncv_.wait(l, [this] { return nstop_ || !notices_.empty(); });
      if (nstop_) return;
      n = std::move(notices_.front());
      notices_.pop_front();
    }
    // ENOENT: the kernel does not know the inode or name (nothing cached) — nothing to do.
    if (n.entry) fuse_lowlevel_notify_inval_entry(se_, n.ino, n.name.c_str(), n.name.size());
    else fuse_lowlevel_notify_inval_inode(se_, n.ino, 0, 0);
  }
}

Napi::Value FuseSession::Unmount(const Napi::CallbackInfo &info) {
  // A lazy unmount makes the kernel end the connection: the descriptor polls readable (or with an
  // error), its read returns ENODEV, and Readable tears the session down (Teardown). As root umount2 does it; otherwise the caller runs
  // fusermount3 -u -z (protocols/fuse/mount.ts) — this returns false then.
  if (!mounted_) return Napi::Boolean::New(info.Env(), true);
  if (se_) fuse_session_exit(se_);
  bool ok = umount2(mountpoint_.c_str(), MNT_DETACH) == 0;
  return Napi::Boolean::New(info.Env(), ok);
}

#define TAKE_OR_RETURN(p)                                      \
  std::lock_guard<std::mutex> g(mu_);                          \
  Pending p;                                                   \
  if (!Take(info.Env(), IdArg(info), &p)) return info.Env().Undefined();

Napi::Value FuseSession::ReplyErr(const Napi::CallbackInfo &info) {
  TAKE_OR_RETURN(p);
  fuse_reply_err(p.req, info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// replyEntry(id, attr, attrTimeout, entryTimeout)
Napi::Value FuseSession::ReplyEntry(const Napi::CallbackInfo &info) {
  struct fuse_entry_param e;
  FillEntry(info, 1, &e);
  TAKE_OR_RETURN(p);
  fuse_reply_entry(p.req, &e);
  return info.Env().Undefined();
}

// replyCreate(id, attr, attrTimeout, entryTimeout, fh, flags: 1 keep_cache, 2 direct_io)
Napi::Value FuseSession::ReplyCreate(const Napi::CallbackInfo &info) {
  struct fuse_entry_param e;
  FillEntry(info, 1, &e);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = static_cast<uint64_t>(info[4].As<Napi::Number>().DoubleValue());
  int flags = info[5].As<Napi::Number>().Int32Value();
  fi.keep_cache = flags & 1;
  fi.direct_io = (flags & 2) ? 1 : 0;
  TAKE_OR_RETURN(p);
  fuse_reply_create(p.req, &e, &fi);
  return info.Env().Undefined();
}

// replyAttr(id, attr, timeout)
Napi::Value FuseSession::ReplyAttr(const Napi::CallbackInfo &info) {
  struct stat st;
  FillStat(info[1], &st);
  double timeout = info[2].As<Napi::Number>().DoubleValue();
  TAKE_OR_RETURN(p);
  fuse_reply_attr(p.req, &st, timeout);
  return info.Env().Undefined();
}

// replyOpen(id, fh, flags: 1 keep_cache, 2 direct_io)
Napi::Value FuseSession::ReplyOpen(const Napi::CallbackInfo &info) {
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = static_cast<uint64_t>(info[1].As<Napi::Number>().DoubleValue());
  int flags = info[2].As<Napi::Number>().Int32Value();
  fi.keep_cache = flags & 1;
  fi.direct_io = (flags & 2) ? 1 : 0;
  TAKE_OR_RETURN(p);
  fuse_reply_open(p.req, &fi);
  return info.Env().Undefined();
}

// replyBuf(id, Uint8Array[, length])
Napi::Value FuseSession::ReplyBuf(const Napi::CallbackInfo &info) {
  if (!info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "fuse: replyBuf needs a Uint8Array");
  auto b = info[1].As<Napi::Uint8Array>();
  size_t len = b.ByteLength();
  if (info.Length() > 2 && info[2].IsNumber()) len = std::min(len, static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue()));
  TAKE_OR_RETURN(p);
  fuse_reply_buf(p.req, reinterpret_cast<const char *>(b.Data()), len);
  return info.Env().Undefined();
}

// A READ answered from a descriptor (protocols/fuse/fs.ts READ through Session.readVia): on a
// thread-pool thread, fuse_reply_data with the descriptor as the buffer, which libfuse splices
// file -> pipe -> /dev/fuse (FUSE_CAP_SPLICE_WRITE): the bytes never enter Portico's memory, and a
// read the page cache does not hold waits for the disk there, not on the JS thread. The request
// leaves the pending table here, on the JS thread; the worker always answers it (data, or the
// error reading the descriptor gave); the session outlives it (FinishTeardown waits).
// What the descriptor workers (FdReply, FdWrite) share: the request they answer, the descriptor
// and range, and the promise their caller gets.
class FdWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  FdWorker(Napi::Env env, const char *name, FuseSession *s, fuse_req_t req, int fd, off_t off, size_t len)
      : Napi::AsyncWorker(env, name), s_(s), req_(req), fd_(fd), off_(off), len_(len), deferred_(Napi::Promise::Deferred::New(env)) {}
  FuseSession *s_;
  fuse_req_t req_;
  int fd_;
  off_t off_;
  size_t len_;
  Napi::Promise::Deferred deferred_;
};

class FdReply : public FdWorker {
 public:
  FdReply(Napi::Env env, FuseSession *s, fuse_req_t req, int fd, off_t off, size_t len) : FdWorker(env, "portico-fuse-read", s, req, fd, off, len) {}
  void Execute() override {
    // Clamped to the file's size: past the end libfuse would allocate a buffer for the rest.
    struct stat st;
    size_t n = len_;
    if (fstat(fd_, &st) == 0 && S_ISREG(st.st_mode)) n = st.st_size > off_ ? std::min(len_, static_cast<size_t>(st.st_size - off_)) : 0;
    if (n == 0) {
      fuse_reply_buf(req_, nullptr, 0);
      sent_ = 0;
      return;
    }
    struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
    bv.buf[0].flags = static_cast<enum fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    bv.buf[0].fd = fd_;
    bv.buf[0].pos = off_;
    // Answered either way: data, or fuse_reply_err with the read's error (libfuse does that).
    sent_ = fuse_reply_data(req_, &bv, static_cast<enum fuse_buf_copy_flags>(0)) == 0 ? static_cast<double>(n) : 0;
  }
  void OnOK() override {
    s_->FdReplyDone();
    deferred_.Resolve(Napi::Number::New(Env(), sent_));
  }
  void OnError(const Napi::Error &e) override {
    s_->FdReplyDone();
    deferred_.Reject(e.Value());
  }

 private:
  double sent_ = 0;
};

// replyFd(id, fd, offset, length) -> Promise<bytes sent>. The caller keeps fd open until it settles.
Napi::Value FuseSession::ReplyFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[1].As<Napi::Number>().Int32Value();
  double off = info[2].As<Napi::Number>().DoubleValue();
  double len = info[3].As<Napi::Number>().DoubleValue();
  if (fd < 0 || off < 0 || len < 0) throw Napi::TypeError::New(env, "fuse: replyFd(id, fd, offset, length)");
  Pending p;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!Take(env, IdArg(info), &p)) return NothingSent(env);
  }
  return QueueFdWorker(new FdReply(env, this, p.req, fd, static_cast<off_t>(off), static_cast<size_t>(len)));
}

// A WRITE whose bytes are in a slab, written to a descriptor (protocols/fuse/fs.ts WRITE through
// Session.writeVia, after the core's checks): on a thread-pool thread, pwrite from the slab, then the
// answer to the kernel from there (fuse_reply_write, or fuse_reply_err with the write's error), so
// the writer is woken by the thread that wrote, not after one more trip through the JS thread (a
// sequential writer waits for each WRITE's answer). The request leaves the pending table here; the
// slab stays taken until the worker is done; the session outlives it (FinishTeardown waits).
class FdWrite : public FdWorker {
 public:
  FdWrite(Napi::Env env, FuseSession *s, fuse_req_t req, int fd, off_t off, const char *data, size_t len, int slab)
      : FdWorker(env, "portico-fuse-write", s, req, fd, off, len), data_(data), slab_(slab) {}
  void Execute() override {
    while (done_ < len_) {
      ssize_t n = pwrite(fd_, data_ + done_, len_ - done_, off_ + static_cast<off_t>(done_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err_ = n < 0 ? errno : EIO;
        break;
      }
      done_ += static_cast<size_t>(n);
    }
    // As write(2): the bytes written, or the error when none were.
    if (done_ > 0 || err_ == 0) fuse_reply_write(req_, done_);
    else fuse_reply_err(req_, err_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    s_->SlabDone(slab_);
    s_->FdReplyDone();
    if (done_ > 0 || err_ == 0) {
      deferred_.Resolve(Napi::Number::New(env, static_cast<double>(done_)));
      return;
    }
    // Node's shape of a system call error (code, errno), which the core maps (toVfsError).
    auto e = Napi::Error::New(env, std::string("pwrite: ") + strerror(err_));
    e.Set("code", Napi::String::New(env, uv_err_name(-err_)));
    e.Set("errno", Napi::Number::New(env, -err_));
    e.Set("syscall", Napi::String::New(env, "write"));
    deferred_.Reject(e.Value());
  }
  void OnError(const Napi::Error &e) override {
    s_->SlabDone(slab_);
    s_->FdReplyDone();
    deferred_.Reject(e.Value());
  }

 private:
  const char *data_;
  int slab_;
  size_t done_ = 0;
  int err_ = 0;
};

// writeFd(id, fd, offset) -> Promise<bytes written> (rejected with the write's error, which the
// kernel has been answered with already). Only for a WRITE whose bytes are in a slab; the caller
// keeps fd open until it settles.
Napi::Value FuseSession::WriteFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[1].As<Napi::Number>().Int32Value();
  double off = info[2].As<Napi::Number>().DoubleValue();
  if (fd < 0 || off < 0) throw Napi::TypeError::New(env, "fuse: writeFd(id, fd, offset)");
  Pending p;
  {
    std::lock_guard<std::mutex> g(mu_);
    uint64_t id = IdArg(info);
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.slab < 0) throw Napi::TypeError::New(env, "fuse: writeFd needs a WRITE whose bytes are in a slab");
    if (!Take(env, id, &p)) return NothingSent(env);
    slabBusy_[p.slab] = true;  // Take freed it: the worker reads from it
  }
  return QueueFdWorker(new FdWrite(env, this, p.req, fd, static_cast<off_t>(off), slabs_[p.slab] + p.slabOff, p.slabLen, p.slab));
}

Napi::Value FuseSession::ReplyWrite(const Napi::CallbackInfo &info) {
  size_t n = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  TAKE_OR_RETURN(p);
  fuse_reply_write(p.req, n);
  return info.Env().Undefined();
}

Napi::Value FuseSession::ReplyReadlink(const Napi::CallbackInfo &info) {
  std::string s = info[1].As<Napi::String>();
  TAKE_OR_RETURN(p);
  fuse_reply_readlink(p.req, s.c_str());
  return info.Env().Undefined();
}

// replyStatfs(id, Float64Array [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax])
Napi::Value FuseSession::ReplyStatfs(const Napi::CallbackInfo &info) {
  auto a = info[1].As<Napi::Float64Array>();
  if (a.ElementLength() < 9) throw Napi::TypeError::New(info.Env(), "fuse: statfs needs 9 values");
  struct statvfs s;
  memset(&s, 0, sizeof s);
  s.f_bsize = static_cast<unsigned long>(a[0]);
  s.f_frsize = static_cast<unsigned long>(a[1]);
  s.f_blocks = static_cast<fsblkcnt_t>(a[2]);
  s.f_bfree = static_cast<fsblkcnt_t>(a[3]);
  s.f_bavail = static_cast<fsblkcnt_t>(a[4]);
  s.f_files = static_cast<fsfilcnt_t>(a[5]);
  s.f_ffree = static_cast<fsfilcnt_t>(a[6]);
  s.f_favail = static_cast<fsfilcnt_t>(a[7]);
  s.f_namemax = static_cast<unsigned long>(a[8]);
  TAKE_OR_RETURN(p);
  fuse_reply_statfs(p.req, &s);
  return info.Env().Undefined();
}

// replyXattr(id, Uint8Array): the value (getxattr) or the NUL-separated names (listxattr). The
// size protocol is done here: size 0 asks for the length; a value longer than size is ERANGE.
Napi::Value FuseSession::ReplyXattr(const Napi::CallbackInfo &info) {
  auto b = info[1].As<Napi::Uint8Array>();
  TAKE_OR_RETURN(p);
  if (p.size == 0) fuse_reply_xattr(p.req, b.ByteLength());
  else if (b.ByteLength() > p.size) fuse_reply_err(p.req, ERANGE);
  else fuse_reply_buf(p.req, reinterpret_cast<const char *>(b.Data()), b.ByteLength());
  return info.Env().Undefined();
}

// replyDir(id, plus, names[], attrs Float64Array(n*ATTR_LEN), offsets Float64Array(n), attrTimeout,
// entryTimeout) -> how many entries fit (readdirplus: the kernel counts a lookup for each of those).
Napi::Value FuseSession::ReplyDir(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bool plus = info[1].ToBoolean();
  auto names = info[2].As<Napi::Array>();
  auto attrs = info[3].As<Napi::Float64Array>();
  auto offs = info[4].As<Napi::Float64Array>();
  double attrTimeout = info[5].As<Napi::Number>().DoubleValue();
  double entryTimeout = info[6].As<Napi::Number>().DoubleValue();
  uint32_t n = names.Length();
  if (attrs.ElementLength() < static_cast<size_t>(n) * ATTR_LEN || offs.ElementLength() < n)
    throw Napi::TypeError::New(env, "fuse: replyDir arrays too short");
  std::vector<std::string> strs(n);
  for (uint32_t i = 0; i < n; i++) strs[i] = names.Get(i).As<Napi::String>();
  std::lock_guard<std::mutex> g(mu_);
  Pending p;
  if (!Take(env, IdArg(info), &p)) return Napi::Number::New(env, 0);
  std::vector<char> buf(p.size);
  size_t used = 0;
  uint32_t added = 0;
  for (uint32_t i = 0; i < n; i++) {
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    const double *a = attrs.Data() + static_cast<size_t>(i) * ATTR_LEN;
    e.attr.st_ino = static_cast<ino_t>(a[0]);
    e.attr.st_mode = static_cast<mode_t>(a[1]);
    e.attr.st_nlink = static_cast<nlink_t>(a[2]);
    e.attr.st_uid = static_cast<uid_t>(a[3]);
    e.attr.st_gid = static_cast<gid_t>(a[4]);
    e.attr.st_size = static_cast<off_t>(a[5]);
    e.attr.st_blocks = static_cast<blkcnt_t>(a[6]);
    e.attr.st_atim.tv_sec = static_cast<time_t>(a[7]);
    e.attr.st_atim.tv_nsec = static_cast<long>(a[8]);
    e.attr.st_mtim.tv_sec = static_cast<time_t>(a[9]);
    e.attr.st_mtim.tv_nsec = static_cast<long>(a[10]);
    e.attr.st_ctim.tv_sec = static_cast<time_t>(a[11]);
    e.attr.st_ctim.tv_nsec = static_cast<long>(a[12]);
    e.attr.st_blksize = static_cast<blksize_t>(a[13]);
    e.ino = e.attr.st_ino;
    e.generation = 1;
    e.attr_timeout = attrTimeout;
    e.entry_timeout = entryTimeout;
    off_t off = static_cast<off_t>(offs[i]);
    size_t need = plus ? fuse_add_direntry_plus(p.req, nullptr, 0, strs[i].c_str(), &e, off)
                       : fuse_add_direntry(p.req, nullptr, 0, strs[i].c_str(), &e.attr, off);
    if (used + need > p.size) break;
    if (plus) fuse_add_direntry_plus(p.req, buf.data() + used, p.size - used, strs[i].c_str(), &e, off);
    else fuse_add_direntry(p.req, buf.data() + used, p.size - used, strs[i].c_str(), &e.attr, off);
    used += need;
    added++;
  }
  fuse_reply_buf(p.req, buf.data(), used);
  return Napi::Number::New(env, added);
}

// slabs(): the write slabs as Buffers (made once, before mount(); the object keeps them alive).
Napi::Value FuseSession::Slabs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto arr = Napi::Array::New(env);
  if (nslabs_ == 0 && !mounted_) {
    if (RecvIntoSlabs()) slabSize_ = RecvSize();
    for (int i = 0; i < SLABS; i++) {
      char *mem = static_cast<char *>(malloc(slabSize_));
      if (!mem) break;
      auto b = Napi::Buffer<char>::New(env, mem, slabSize_, FreeData);
      slabRefs_.push_back(Napi::Persistent(b));
      slabs_[i] = mem;
      nslabs_ = i + 1;
    }
  }
  for (size_t i = 0; i < slabRefs_.size(); i++) arr.Set(static_cast<uint32_t>(i), slabRefs_[i].Value());
  return arr;
}

// replyLock(id, type, start, len): the lock that would conflict (F_GETLK), or type F_UNLCK.
Napi::Value FuseSession::ReplyLock(const Napi::CallbackInfo &info) {
  struct flock l;
  memset(&l, 0, sizeof l);
  l.l_type = static_cast<short>(info[1].As<Napi::Number>().Int32Value());
  l.l_whence = SEEK_SET;
  l.l_start = static_cast<off_t>(info[2].As<Napi::Number>().DoubleValue());
  l.l_len = static_cast<off_t>(info[3].As<Napi::Number>().DoubleValue());
  TAKE_OR_RETURN(p);
  fuse_reply_lock(p.req, &l);
  return info.Env().Undefined();
}

// replyLseek(id, offset): the offset of the data or hole asked for (SEEK_DATA / SEEK_HOLE).
Napi::Value FuseSession::ReplyLseek(const Napi::CallbackInfo &info) {
  off_t off = static_cast<off_t>(info[1].As<Napi::Number>().DoubleValue());
  TAKE_OR_RETURN(p);
  fuse_reply_lseek(p.req, off);
  return info.Env().Undefined();
}

Napi::Value FuseSession::InvalInode(const Napi::CallbackInfo &info) {
  {
    std::lock_guard<std::mutex> g(nmu_);
    if (nstop_ || !mounted_) return info.Env().Undefined();
    notices_.push_back(Notice{false, static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()), ""});
  }
  ncv_.notify_one();
  return info.Env().Undefined();
}

Napi::Value FuseSession::InvalEntry(const Napi::CallbackInfo &info) {
  {
    std::lock_guard<std::mutex> g(nmu_);
    if (nstop_ || !mounted_) return info.Env().Undefined();
    notices_.push_back(Notice{true, static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue()), info[1].As<Napi::String>()});
  }
  ncv_.notify_one();
  return info.Env().Undefined();
}

}  // namespace

// The exit notice (op 0) reaches JS as handler(0, ...); JS calls onExit itself then. The class
// keeps onExit_ only so that the function stays alive as long as the session.
Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  exports.Set("FuseSession", FuseSession::Init(env));
  exports.Set("FUSE_MAJOR", Napi::Number::New(env, FUSE_MAJOR_VERSION));
  exports.Set("FUSE_MINOR", Napi::Number::New(env, FUSE_MINOR_VERSION));
  return exports;
}

NODE_API_MODULE(portico_fuse, InitAll)
