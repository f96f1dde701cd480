// The local backend's native helper: the four Linux calls Node's fs does not expose, each on a
// descriptor the local backend has already opened and confined to its share root (O_NOFOLLOW,
// /proc/self/fd check; backends/local/local-backend.ts). Only readSmall opens a path, with the
// backend's own read-only open and confinement check done here in C (see there), and openBeneath
// opens a path below the root's descriptor with the kernel confining it (openat2). Otherwise:
// renameat2 takes two confined directory descriptors and two single names (no '/', never '.' or
// '..': the VFS has validated them), and a rename never follows a symbolic link in its last
// component, so nothing here can reach outside the root.
//
//   renameat2(olddirfd, oldname, newdirfd, newname, flags)        -> Promise<void>
//   fallocate(fd, mode, offset, length)                            -> Promise<void>
//   seek(fd, offset, whence)  (SEEK_DATA / SEEK_HOLE)              -> Promise<number>
//   copyFileRange(fdIn, offIn, fdOut, offOut, length)              -> Promise<number>
//
// Every call runs on libuv's thread pool (Napi::AsyncWorker), like Node's own fs calls: fallocate
// and copy_file_range move or reserve many blocks and must not block the JS thread. A failure
// rejects with an Error carrying `code` ('ENOENT', ...), `errno` (negative, as Node's) and `syscall`,
// so the backend's toVfsError maps it as it maps Node's fs errors.
//
// Decision (backends/local/native/README.md): an addon of its own, not a part of the FUSE addon:
// the local backend must work (and gain these calls) without libfuse3-dev and without the FUSE
// front-end, and a backend does not depend on a protocol.
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <utility>
#include <vector>
#include <unistd.h>

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const char *syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

// One call on the thread pool; `run` returns a result >= 0 or -errno.
class Call : public Napi::AsyncWorker {
 public:
  using Fn = int64_t (*)(const Call &);
  Call(Napi::Env env, const char *syscall, Fn fn)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), syscall_(syscall), fn_(fn) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  int64_t a[6] = {0, 0, 0, 0, 0, 0};
  std::string s1, s2;

 protected:
  void Execute() override { result_ = fn_(*this); }
  void OnOK() override {
    Napi::Env env = Env();
    if (result_ < 0) deferred_.Reject(ErrnoError(env, static_cast<int>(-result_), syscall_).Value());
    else deferred_.Resolve(Napi::Number::New(env, static_cast<double>(result_)));
  }
  void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  const char *syscall_;
  Fn fn_;
  int64_t result_ = 0;
};

int64_t Arg(const Napi::CallbackInfo &info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a number argument");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < -9007199254740991.0 || v > 9007199254740991.0 || v != static_cast<double>(static_cast<int64_t>(v))) {
    throw Napi::RangeError::New(info.Env(), "expected a safe integer");
  }
  return static_cast<int64_t>(v);
}

std::string Name(const Napi::CallbackInfo &info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), "expected a name");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  // A single path component: the descriptor decides the directory, never the name.
  if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\0') != std::string::npos) {
    throw Napi::Error::New(info.Env(), "not a single name");
  }
  return s;
}

int64_t Result(long r) { return r < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(r); }

// Reads a call's arguments with `fill` (a bad one throws a JS error: the call is then dropped, never
// queued) and queues it on the thread pool; its promise settles with the call's result.
template <typename Fill>
Napi::Value Start(Call *c, Fill fill) {
  try {
    fill(*c);
  } catch (...) {
    delete c;
    throw;
  }
  Napi::Promise p = c->Promise();
  c->Queue();
  return p;
}

Napi::Value Renameat2(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "renameat2", [](const Call &c) -> int64_t {
    long r = syscall(SYS_renameat2, static_cast<int>(c.a[0]), c.s1.c_str(), static_cast<int>(c.a[1]), c.s2.c_str(), static_cast<unsigned>(c.a[2]));
    return Result(r);
  });
  return Start(c, [&](Call &k) {
    k.a[0] = Arg(info, 0);
    k.s1 = Name(info, 1);
    k.a[1] = Arg(info, 2);
    k.s2 = Name(info, 3);
    k.a[2] = Arg(info, 4);
  });
}

Napi::Value Fallocate(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "fallocate", [](const Call &c) -> int64_t {
    int r;
    do r = fallocate(static_cast<int>(c.a[0]), static_cast<int>(c.a[1]), static_cast<off_t>(c.a[2]), static_cast<off_t>(c.a[3]));
    while (r < 0 && errno == EINTR);
    return Result(r);
  });
  return Start(c, [&](Call &k) {
    for (size_t i = 0; i < 4; i++) k.a[i] = Arg(info, i);
  });
}

Napi::Value Seek(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "lseek", [](const Call &c) -> int64_t {
    off_t r = lseek(static_cast<int>(c.a[0]), static_cast<off_t>(c.a[1]), static_cast<int>(c.a[2]));
    return r < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(r);
  });
  return Start(c, [&](Call &k) {
    for (size_t i = 0; i < 3; i++) k.a[i] = Arg(info, i);
    if (k.a[2] != SEEK_DATA && k.a[2] != SEEK_HOLE) throw Napi::Error::New(info.Env(), "whence must be SEEK_DATA or SEEK_HOLE");
  });
}

// Copies up to `length` bytes with positioned offsets (the descriptors' own positions are not
// used or moved), looping over the kernel's partial copies; stops at the source's end (0).
Napi::Value CopyFileRange(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "copy_file_range", [](const Call &c) -> int64_t {
    loff_t in = c.a[1], out = c.a[3];
    int64_t left = c.a[4], done = 0;
    while (left > 0) {
      ssize_t n = copy_file_range(static_cast<int>(c.a[0]), &in, static_cast<int>(c.a[2]), &out, static_cast<size_t>(left), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (done > 0) break;  // what was copied counts; the caller asks again for the rest
        return -static_cast<int64_t>(errno);
      }
      if (n == 0) break;
      done += n;
      left -= n;
    }
    return done;
  });
  return Start(c, [&](Call &k) {
    for (size_t i = 0; i < 5; i++) k.a[i] = Arg(info, i);
  });
}

// ---- statNames / statNamesAsync: a directory page's lstats in one call ----
//
// statNames(dirfd, names) -> { nums: ArrayBuffer, targets: [index, target, ...] }
// For each name, statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME) — what
// libuv's lstat asks (so every figure is what Node's lstatSync(bigint) reports) — and, for a
// symbolic link, readlinkat(dirfd, name). `nums` holds STAT_FIELDS int64 per name: kind (0 gone
// since the readdir (ENOENT/ENOTDIR, as lstatSync's throwIfNoEntry: false), 1 anything not a
// directory or link, 2 directory, 3 symbolic link), size, mtime, ctime, atime, birth time (ns;
// 0 where the file system keeps none), mode, uid, gid, nlink, dev (makedev, as libuv), ino. Any
// other error stops the page: an Error with its code (the caller maps it as an fs error).
// Confinement: dirfd is the listing's descriptor, opened and confined by the backend; each name is
// a single component (Name()), never followed when it is a link (AT_SYMLINK_NOFOLLOW).
// ENOSYS (no statx: a kernel before 4.11 or a seccomp filter) is reported as such; the caller then
// stats through Node, which has its own fallback.
constexpr int STAT_FIELDS = 12;

struct StatPage {
  std::vector<int64_t> nums;
  std::vector<std::pair<uint32_t, std::string>> targets;
  int err = 0;
};

int64_t Ns(const struct statx_timestamp &t) { return static_cast<int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec; }

void StatAll(int dirfd, const std::vector<std::string> &names, StatPage &out) {
  out.nums.assign(names.size() * STAT_FIELDS, 0);
  char link[4096];
  for (size_t i = 0; i < names.size(); i++) {
    struct statx sx;
    if (statx(dirfd, names[i].c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      out.err = errno;
      return;
    }
    int64_t *o = &out.nums[i * STAT_FIELDS];
    mode_t m = sx.stx_mode;
    o[0] = S_ISDIR(m) ? 2 : S_ISLNK(m) ? 3 : 1;
    o[1] = static_cast<int64_t>(sx.stx_size);
    o[2] = Ns(sx.stx_mtime);
    o[3] = Ns(sx.stx_ctime);
    o[4] = Ns(sx.stx_atime);
    o[5] = (sx.stx_mask & STATX_BTIME) ? Ns(sx.stx_btime) : 0;
    o[6] = m;
    o[7] = sx.stx_uid;
    o[8] = sx.stx_gid;
    o[9] = sx.stx_nlink;
    o[10] = static_cast<int64_t>(makedev(sx.stx_dev_major, sx.stx_dev_minor));
    o[11] = static_cast<int64_t>(sx.stx_ino);
    if (S_ISLNK(m)) {
      // Node's readlinkSync: the whole target (a failure leaves it unknown, as the JS path does).
      ssize_t r = readlinkat(dirfd, names[i].c_str(), link, sizeof link);
      if (r >= 0 && static_cast<size_t>(r) < sizeof link) out.targets.emplace_back(static_cast<uint32_t>(i), std::string(link, r));
      else if (r >= 0) {
        std::string big(1 << 16, '\0');
        r = readlinkat(dirfd, names[i].c_str(), big.data(), big.size());
        if (r >= 0 && static_cast<size_t>(r) < big.size()) out.targets.emplace_back(static_cast<uint32_t>(i), big.substr(0, r));
      }
    }
  }
}

std::vector<std::string> Names(const Napi::CallbackInfo &info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "expected an array of names");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsString()) throw Napi::TypeError::New(info.Env(), "expected a name");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos || s.find('\0') != std::string::npos) {
      throw Napi::Error::New(info.Env(), "not a single name");
    }
    out.push_back(std::move(s));
  }
  return out;
}

Napi::Object StatResult(Napi::Env env, StatPage &page) {
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, page.nums.size() * sizeof(int64_t));
  if (!page.nums.empty()) memcpy(buf.Data(), page.nums.data(), page.nums.size() * sizeof(int64_t));
  Napi::Array targets = Napi::Array::New(env, page.targets.size() * 2);
  for (size_t k = 0; k < page.targets.size(); k++) {
    targets.Set(static_cast<uint32_t>(2 * k), Napi::Number::New(env, page.targets[k].first));
    targets.Set(static_cast<uint32_t>(2 * k + 1), Napi::String::New(env, page.targets[k].second));
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("nums", buf);
  r.Set("targets", targets);
  return r;
}

// Synchronous, for the backend's inline calls (timed by its breaker like its other inline calls).
Napi::Value StatNames(const Napi::CallbackInfo &info) {
  int dirfd = static_cast<int>(Arg(info, 0));
  std::vector<std::string> names = Names(info, 1);
  StatPage page;
  StatAll(dirfd, names, page);
  if (page.err != 0) throw ErrnoError(info.Env(), page.err, "statx");
  return StatResult(info.Env(), page);
}

// On the thread pool, one round trip per page (after the backend's inline breaker has tripped).
class StatNamesWorker : public Napi::AsyncWorker {
 public:
  StatNamesWorker(Napi::Env env, int dirfd, std::vector<std::string> names)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), dirfd_(dirfd), names_(std::move(names)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { StatAll(dirfd_, names_, page_); }
  void OnOK() override {
    Napi::Env env = Env();
    if (page_.err != 0) deferred_.Reject(ErrnoError(env, page_.err, "statx").Value());
    else deferred_.Resolve(StatResult(env, page_));
  }
  void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int dirfd_;
  std::vector<std::string> names_;
  StatPage page_;
};

Napi::Value StatNamesAsync(const Napi::CallbackInfo &info) {
  int dirfd = static_cast<int>(Arg(info, 0));
  auto *w = new StatNamesWorker(info.Env(), dirfd, Names(info, 1));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// readSmall(path, root, rootPrefix, maxBytes, statOut[, rootFd, relPath]) -> Buffer | undefined. With
// rootFd (a descriptor of the root) and relPath (path below it), the open is openat2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS and needs no /proc readlink (~3 µs of a ~70 µs GET); without
// them, or where openat2 is missing, as follows. Synchronously: the
// whole of a small regular file in ONE call, with exactly the rules of the backend's JS readSmallSync
// (local-backend.ts): open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), the descriptor
// confined by its /proc/self/fd path (equal to root or under rootPrefix), statx of the descriptor
// (its figures into statOut: STAT_FIELDS int64, as StatAll), a regular file of at most maxBytes read
// whole, close. Undefined, never an exception, whenever anything is unusual (a failed call, outside
// the root, not a regular file, too big, shorter than its size): the caller then takes the general
// path, which gives the precise answer. Why here: the JS version made five system calls through five
// fs bindings (a BigIntStats, a readlink string, the descriptor cache's bookkeeping) and cost ~20 µs
// of CPU per small GET; the system calls themselves take ~6 (issue 9, WebDAV GET 4 KiB).
// openat2 answered ENOSYS (a kernel before 5.6) or EPERM (a seccomp filter): not asked again.
bool g_no_openat2 = false;

Napi::Value ReadSmall(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() || !info[4].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "readSmall(path, root, rootPrefix, maxBytes, statOut)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string root = info[1].As<Napi::String>().Utf8Value();
  std::string prefix = info[2].As<Napi::String>().Utf8Value();
  int64_t maxBytes = Arg(info, 3);
  Napi::ArrayBuffer out = info[4].As<Napi::ArrayBuffer>();
  if (out.ByteLength() < STAT_FIELDS * sizeof(int64_t)) throw Napi::RangeError::New(env, "statOut too small");
  if (path.find('\0') != std::string::npos) return env.Undefined();
  const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  int fd = -1;
  bool confined = false;
  if (info.Length() >= 7 && info[5].IsNumber() && info[6].IsString() && !g_no_openat2) {
    // Beneath the root's descriptor, no symbolic link anywhere on the way (the caller verified the
    // parents as real directories, so a link there is a swap since), no escape by "..": the kernel
    // confines the open itself and no /proc readlink is needed.
    int rootFd = static_cast<int>(Arg(info, 5));
    std::string rel = info[6].As<Napi::String>().Utf8Value();
    if (rootFd >= 0 && !rel.empty() && rel[0] != '/' && rel.find('\0') == std::string::npos) {
      struct open_how how;
      memset(&how, 0, sizeof how);
      how.flags = static_cast<uint64_t>(flags);
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
      fd = static_cast<int>(syscall(SYS_openat2, rootFd, rel.c_str(), &how, sizeof how));
      if (fd >= 0) confined = true;
      else if (errno == ENOSYS || errno == EPERM) g_no_openat2 = true;  // no openat2 (or a seccomp filter): the /proc way from now on
      else return env.Undefined();
    }
  }
  if (fd < 0) fd = open(path.c_str(), flags);
  if (fd < 0) return env.Undefined();
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  if (!confined) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    char real[4096];
    ssize_t rl = readlink(proc, real, sizeof real);
    if (rl < 0 || static_cast<size_t>(rl) >= sizeof real) return env.Undefined();
    std::string_view r(real, static_cast<size_t>(rl));
    if (!(r == root || (r.size() >= prefix.size() && r.compare(0, prefix.size(), prefix) == 0))) return env.Undefined();
  }
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0) return env.Undefined();
  if (!S_ISREG(sx.stx_mode) || static_cast<int64_t>(sx.stx_size) > maxBytes) return env.Undefined();
  int64_t *o = static_cast<int64_t *>(out.Data());
  o[0] = 1;
  o[1] = static_cast<int64_t>(sx.stx_size);
  o[2] = Ns(sx.stx_mtime);
  o[3] = Ns(sx.stx_ctime);
  o[4] = Ns(sx.stx_atime);
  o[5] = (sx.stx_mask & STATX_BTIME) ? Ns(sx.stx_btime) : 0;
  o[6] = sx.stx_mode;
  o[7] = sx.stx_uid;
  o[8] = sx.stx_gid;
  o[9] = sx.stx_nlink;
  o[10] = static_cast<int64_t>(makedev(sx.stx_dev_major, sx.stx_dev_minor));
  o[11] = static_cast<int64_t>(sx.stx_ino);
  size_t size = static_cast<size_t>(sx.stx_size);
  Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(env, size);
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, data.Data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return env.Undefined();
    done += static_cast<size_t>(n);
  }
  return data;
}

// openBeneath(rootFd, relPath, flags, mode) -> descriptor (>= 0) or -errno. The local backend's
// inline open (openConfinedFd: NFS OPEN, SMB CREATE, FUSE open, listings, writer temp files) made
// by openat2 beneath the root's descriptor with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS: the kernel confines the open (no "..", no symbolic link anywhere on the
// way, O_CREAT included: nothing is ever created outside), so the descriptor needs no /proc readlink
// afterwards. O_CLOEXEC is added as Node's open adds it. Synchronous (the caller makes it inline,
// timed by its breaker). -ENOSYS where openat2 is missing or filtered (then never asked again, as
// readSmall): the caller opens the /proc-checked way. Any other -errno is the open's answer, which the
// caller may still take to its /proc way (ELOOP, EXDEV: a link the /proc way may accept inside).
Napi::Value OpenBeneath(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "openBeneath(rootFd, relPath, flags, mode)");
  }
  if (g_no_openat2) return Napi::Number::New(env, -ENOSYS);
  int rootFd = static_cast<int>(Arg(info, 0));
  std::string rel = info[1].As<Napi::String>().Utf8Value();
  int64_t flags = Arg(info, 2);
  int64_t mode = Arg(info, 3);
  if (rootFd < 0 || rel.empty() || rel[0] == '/' || rel.find('\0') != std::string::npos || flags < 0 || mode < 0 || mode > 07777) {
    return Napi::Number::New(env, -EINVAL);
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  // openat2 refuses a mode without O_CREAT / O_TMPFILE (EINVAL).
  how.mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<uint64_t>(mode) : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, rootFd, rel.c_str(), &how, sizeof how));
  if (fd >= 0) return Napi::Number::New(env, fd);
  int e = errno;
  if (e == ENOSYS) g_no_openat2 = true;
  if (e == EPERM) {
    // A seccomp filter answers EPERM for every openat2; a file (immutable, O_NOATIME) only for
    // itself. The root's own descriptor tells which.
    struct open_how probe;
    memset(&probe, 0, sizeof probe);
    probe.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    probe.resolve = RESOLVE_BENEATH;
    int pfd = static_cast<int>(syscall(SYS_openat2, rootFd, ".", &probe, sizeof probe));
    if (pfd >= 0) close(pfd);
    else if (errno == EPERM || errno == ENOSYS) {
      g_no_openat2 = true;
      e = ENOSYS;
    }
  }
  return Napi::Number::New(env, -e);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("renameat2", Napi::Function::New(env, Renameat2));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate));
  exports.Set("seek", Napi::Function::New(env, Seek));
  exports.Set("copyFileRange", Napi::Function::New(env, CopyFileRange));
  exports.Set("statNames", Napi::Function::New(env, StatNames));
  exports.Set("statNamesAsync", Napi::Function::New(env, StatNamesAsync));
  exports.Set("readSmall", Napi::Function::New(env, ReadSmall));
  exports.Set("openBeneath", Napi::Function::New(env, OpenBeneath));
  exports.Set("STAT_FIELDS", Napi::Number::New(env, STAT_FIELDS));
  exports.Set("RENAME_NOREPLACE", Napi::Number::New(env, RENAME_NOREPLACE));
  exports.Set("RENAME_EXCHANGE", Napi::Number::New(env, RENAME_EXCHANGE));
  exports.Set("FALLOC_FL_KEEP_SIZE", Napi::Number::New(env, FALLOC_FL_KEEP_SIZE));
  exports.Set("FALLOC_FL_PUNCH_HOLE", Napi::Number::New(env, FALLOC_FL_PUNCH_HOLE));
  exports.Set("FALLOC_FL_ZERO_RANGE", Napi::Number::New(env, FALLOC_FL_ZERO_RANGE));
  exports.Set("SEEK_DATA", Napi::Number::New(env, SEEK_DATA));
  exports.Set("SEEK_HOLE", Napi::Number::New(env, SEEK_HOLE));
  return exports;
}

}  // namespace

NODE_API_MODULE(portico_local, Init)
