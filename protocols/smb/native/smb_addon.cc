// The SMB front-end's native helper: AES-GMAC (SMB 3.1.1 signing, MS-SMB2 3.1.4.1) on one OpenSSL
// EVP context per signing key. node:crypto has no way to give a GCM cipher a new nonce: every
// message needed createCipheriv, which builds a context and expands the key each time (~10 µs a
// message in the running server, 8-16% of a small file's CPU). Here the key is expanded once
// (EVP_EncryptInit_ex with the key) and each message only sets its nonce (EVP_EncryptInit_ex with
// key NULL, the documented way to reuse a GCM key), feeds the message as AAD and reads the tag.
// GHASH stays OpenSSL's (PCLMULQDQ / AES-NI where the CPU has them): no key-derived tables read
// by secret-dependent indexes in JavaScript.
//
//   sealGcm / openGcm                                  AES-GCM of a large message where it lies (seal-thread.ts)
//   new Gmac(key16)                                    one context per signing key
//   gmac.tag(nonce12, parts: Buffer[], out, outOffset) the 16-byte tag of the parts' concatenation
//                                                      (as GCM AAD, no plaintext) into out
//
// Synchronous: a message's AAD is a few hundred bytes (a READ response's payload at most 8 MiB,
// ~1 ms of GHASH, as long as node:crypto's synchronous call took on the same thread).
#include <napi.h>
#include <openssl/evp.h>

#include <cstring>

namespace {

class Gmac : public Napi::ObjectWrap<Gmac> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Gmac", {InstanceMethod<&Gmac::Tag>("tag")});
  }

  explicit Gmac(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Gmac>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "Gmac(key): key must be a Buffer");
    auto key = info[0].As<Napi::Buffer<uint8_t>>();
    const EVP_CIPHER *cipher = key.Length() == 16 ? EVP_aes_128_gcm() : key.Length() == 32 ? EVP_aes_256_gcm() : nullptr;
    if (cipher == nullptr) throw Napi::RangeError::New(env, "Gmac(key): a 16- or 32-byte key");
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr || EVP_EncryptInit_ex(ctx_, cipher, nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
        EVP_EncryptInit_ex(ctx_, nullptr, nullptr, key.Data(), nullptr) != 1) {
      throw Napi::Error::New(env, "Gmac: OpenSSL refused the AES-GCM context");
    }
  }

  ~Gmac() override {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);  // clears the key schedule
  }

 private:
  Napi::Value Tag(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsBuffer() || !info[1].IsArray() || !info[2].IsBuffer() || !info[3].IsNumber()) {
      throw Napi::TypeError::New(env, "tag(nonce, parts, out, offset)");
    }
    auto nonce = info[0].As<Napi::Buffer<uint8_t>>();
    auto parts = info[1].As<Napi::Array>();
    auto out = info[2].As<Napi::Buffer<uint8_t>>();
    int64_t at = info[3].As<Napi::Number>().Int64Value();
    if (nonce.Length() != 12) throw Napi::RangeError::New(env, "tag: a 12-byte nonce");
    if (at < 0 || static_cast<uint64_t>(at) + 16 > out.Length()) throw Napi::RangeError::New(env, "tag: out has no 16 bytes at offset");
    int len = 0;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.Data()) != 1) throw Napi::Error::New(env, "tag: nonce refused");
    uint32_t n = parts.Length();
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = parts.Get(i);
      if (!v.IsBuffer()) throw Napi::TypeError::New(env, "tag: parts must be Buffers");
      auto p = v.As<Napi::Buffer<uint8_t>>();
      // EVP's lengths are int: a part is at most a message (16 MiB), but feed it in 1 GiB steps anyway.
      const uint8_t *d = p.Data();
      size_t left = p.Length();
      while (left > 0) {
        int step = left > (1u << 30) ? (1 << 30) : static_cast<int>(left);
        if (EVP_EncryptUpdate(ctx_, nullptr, &len, d, step) != 1) throw Napi::Error::New(env, "tag: AAD refused");
        d += step;
        left -= static_cast<size_t>(step);
      }
    }
    uint8_t none[16];
    if (EVP_EncryptFinal_ex(ctx_, none, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, 16, out.Data() + at) != 1) {
      throw Napi::Error::New(env, "tag: OpenSSL failed");
    }
    return env.Undefined();
  }

  EVP_CIPHER_CTX *ctx_ = nullptr;
};

// One AES-GCM context for one message (a key schedule per message is nothing beside 256 KiB-8 MiB).
class GcmCtx {
 public:
  GcmCtx(Napi::Env env, const Napi::Buffer<uint8_t> &key, const Napi::Buffer<uint8_t> &nonce, bool enc) {
    const EVP_CIPHER *cipher = key.Length() == 16 ? EVP_aes_128_gcm() : key.Length() == 32 ? EVP_aes_256_gcm() : nullptr;
    if (cipher == nullptr) throw Napi::RangeError::New(env, "gcm: a 16- or 32-byte key");
    if (nonce.Length() != 12) throw Napi::RangeError::New(env, "gcm: a 12-byte nonce");
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr || EVP_CipherInit_ex(ctx_, cipher, nullptr, nullptr, nullptr, enc ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
        EVP_CipherInit_ex(ctx_, nullptr, nullptr, key.Data(), nonce.Data(), enc ? 1 : 0) != 1) {
      throw Napi::Error::New(env, "gcm: OpenSSL refused the context");
    }
  }
  ~GcmCtx() {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);
  }
  // GCM's update gives as many bytes as it takes, so `out` may be `in` (OpenSSL allows in == out).
  void Update(Napi::Env env, const uint8_t *in, uint8_t *out, size_t n) {
    while (n > 0) {
      int step = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
      int len = 0;
      if (EVP_CipherUpdate(ctx_, out, &len, in, step) != 1 || len != step) throw Napi::Error::New(env, "gcm: update failed");
      if (in != nullptr) in += step;
      if (out != nullptr) out += step;
      n -= static_cast<size_t>(step);
    }
  }
  EVP_CIPHER_CTX *ctx_ = nullptr;
};

// sealGcm(key, nonce, aad, head, headOut, data, tagOut): encrypts head into headOut (same length)
// and data where it lies, writes the 16-byte tag. The TRANSFORM_HEADER's encryption of a large READ
// response (seal-thread.ts): the payload is a view of the connection's shared message pool.
Napi::Value SealGcm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 7; i++) {
    if (i >= info.Length() || !info[i].IsBuffer()) throw Napi::TypeError::New(env, "sealGcm(key, nonce, aad, head, headOut, data, tagOut): Buffers");
  }
  auto aad = info[2].As<Napi::Buffer<uint8_t>>();
  auto head = info[3].As<Napi::Buffer<uint8_t>>();
  auto headOut = info[4].As<Napi::Buffer<uint8_t>>();
  auto data = info[5].As<Napi::Buffer<uint8_t>>();
  auto tag = info[6].As<Napi::Buffer<uint8_t>>();
  if (headOut.Length() != head.Length() || tag.Length() != 16) throw Napi::RangeError::New(env, "sealGcm: headOut as long as head, a 16-byte tag");
  GcmCtx c(env, info[0].As<Napi::Buffer<uint8_t>>(), info[1].As<Napi::Buffer<uint8_t>>(), true);
  c.Update(env, aad.Data(), nullptr, aad.Length());
  c.Update(env, head.Data(), headOut.Data(), head.Length());
  c.Update(env, data.Data(), data.Data(), data.Length());
  int len = 0;
  uint8_t none[16];
  if (EVP_CipherFinal_ex(c.ctx_, none, &len) != 1 || EVP_CIPHER_CTX_ctrl(c.ctx_, EVP_CTRL_GCM_GET_TAG, 16, tag.Data()) != 1) {
    throw Napi::Error::New(env, "sealGcm: final failed");
  }
  return env.Undefined();
}

// openGcm(key, nonce, aad, data, tag) -> whether the tag matched: decrypts data where it lies (a
// large WRITE's ciphertext in the shared pool). On a mismatch the data is garbage: the caller drops
// the connection, as node:crypto's path did.
Napi::Value OpenGcm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 5; i++) {
    if (i >= info.Length() || !info[i].IsBuffer()) throw Napi::TypeError::New(env, "openGcm(key, nonce, aad, data, tag): Buffers");
  }
  auto aad = info[2].As<Napi::Buffer<uint8_t>>();
  auto data = info[3].As<Napi::Buffer<uint8_t>>();
  auto tag = info[4].As<Napi::Buffer<uint8_t>>();
  if (tag.Length() != 16) throw Napi::RangeError::New(env, "openGcm: a 16-byte tag");
  GcmCtx c(env, info[0].As<Napi::Buffer<uint8_t>>(), info[1].As<Napi::Buffer<uint8_t>>(), false);
  c.Update(env, aad.Data(), nullptr, aad.Length());
  c.Update(env, data.Data(), data.Data(), data.Length());
  uint8_t expected[16];
  std::memcpy(expected, tag.Data(), 16);
  int len = 0;
  uint8_t none[16];
  if (EVP_CIPHER_CTX_ctrl(c.ctx_, EVP_CTRL_GCM_SET_TAG, 16, expected) != 1) throw Napi::Error::New(env, "openGcm: tag refused");
  // EVP_DecryptFinal_ex compares the tags in constant time (CRYPTO_memcmp).
  return Napi::Boolean::New(env, EVP_CipherFinal_ex(c.ctx_, none, &len) == 1);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Gmac", Gmac::Init(env));
  exports.Set("sealGcm", Napi::Function::New(env, SealGcm, "sealGcm"));
  exports.Set("openGcm", Napi::Function::New(env, OpenGcm, "openGcm"));
  return exports;
}

}  // namespace

NODE_API_MODULE(portico_smb, Init)
