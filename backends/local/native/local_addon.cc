// The local backend's native helper: the four Linux calls Node's fs does not expose, each on a
// descriptor the local backend has already opened and confined to its share root (O_NOFOLLOW,
// /proc/self/fd check; backends/local/local-backend.ts). This file never opens a path itself:
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
#include <stdio.h>
#include <string>
#include <sys/syscall.h>
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

Napi::Value Renameat2(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "renameat2", [](const Call &c) -> int64_t {
    long r = syscall(SYS_renameat2, static_cast<int>(c.a[0]), c.s1.c_str(), static_cast<int>(c.a[1]), c.s2.c_str(), static_cast<unsigned>(c.a[2]));
    return Result(r);
  });
  try {
    c->a[0] = Arg(info, 0);
    c->s1 = Name(info, 1);
    c->a[1] = Arg(info, 2);
    c->s2 = Name(info, 3);
    c->a[2] = Arg(info, 4);
  } catch (...) {
    delete c;
    throw;
  }
  Napi::Promise p = c->Promise();
  c->Queue();
  return p;
}

Napi::Value Fallocate(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "fallocate", [](const Call &c) -> int64_t {
    int r;
    do r = fallocate(static_cast<int>(c.a[0]), static_cast<int>(c.a[1]), static_cast<off_t>(c.a[2]), static_cast<off_t>(c.a[3]));
    while (r < 0 && errno == EINTR);
    return Result(r);
  });
  try {
    for (size_t i = 0; i < 4; i++) c->a[i] = Arg(info, i);
  } catch (...) {
    delete c;
    throw;
  }
  Napi::Promise p = c->Promise();
  c->Queue();
  return p;
}

Napi::Value Seek(const Napi::CallbackInfo &info) {
  auto *c = new Call(info.Env(), "lseek", [](const Call &c) -> int64_t {
    off_t r = lseek(static_cast<int>(c.a[0]), static_cast<off_t>(c.a[1]), static_cast<int>(c.a[2]));
    return r < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(r);
  });
  try {
    for (size_t i = 0; i < 3; i++) c->a[i] = Arg(info, i);
    if (c->a[2] != SEEK_DATA && c->a[2] != SEEK_HOLE) throw Napi::Error::New(info.Env(), "whence must be SEEK_DATA or SEEK_HOLE");
  } catch (...) {
    delete c;
    throw;
  }
  Napi::Promise p = c->Promise();
  c->Queue();
  return p;
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
  try {
    for (size_t i = 0; i < 5; i++) c->a[i] = Arg(info, i);
  } catch (...) {
    delete c;
    throw;
  }
  Napi::Promise p = c->Promise();
  c->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("renameat2", Napi::Function::New(env, Renameat2));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate));
  exports.Set("seek", Napi::Function::New(env, Seek));
  exports.Set("copyFileRange", Napi::Function::New(env, CopyFileRange));
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
