// The SMB front-end's native helper: AES-GMAC (SMB 3.1.1 signing, MS-SMB2 3.1.4.1) on one OpenSSL
// EVP context per signing key. node:crypto has no way to give a GCM cipher a new nonce: every
// message needed createCipheriv, which builds a context and expands the key each time (~10 µs a
// message in the running server, 8-16% of a small file's CPU). Here the key is expanded once
// (EVP_EncryptInit_ex with the key) and each message only sets its nonce (EVP_EncryptInit_ex with
// key NULL, the documented way to reuse a GCM key), feeds the message as AAD and reads the tag.
// GHASH stays OpenSSL's (PCLMULQDQ / AES-NI where the CPU has them): no key-derived tables read
// by secret-dependent indexes in JavaScript.
//
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Gmac", Gmac::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(portico_smb, Init)
