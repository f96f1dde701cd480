// The SMB front-end's native helper: AES-GMAC (SMB 3.1.1 signing, MS-SMB2 3.1.4.1) on one OpenSSL
// EVP context per signing key. node:crypto has no way to give a GCM cipher a new nonce: every
// message needed createCipheriv, which builds a context and expands the key each time (~10 µs a
// message in the running server, 8-16% of a small file's CPU). Here the key is expanded once
// (EVP_EncryptInit_ex with the key) and each message only sets its nonce (EVP_EncryptInit_ex with
// key NULL, the documented way to reuse a GCM key), feeds the message as AAD and reads the tag.
// GHASH stays OpenSSL's (PCLMULQDQ / AES-NI where the CPU has them): no key-derived tables read
// by secret-dependent indexes in JavaScript.
//
//   new Gcm(key16|32)                                  one AES-GCM context per encryption or decryption key
//   gcm.seal(nonce12, aad, head, headOut, data, tagOut) / gcm.open(nonce12, aad, data, tag) -> matched
//   new Gmac(key16)                                    one context per signing key
//   gmac.tag(nonce12, parts: Buffer[], out, outOffset) the 16-byte tag of the parts' concatenation
//                                                      (as GCM AAD, no plaintext) into out
//   gmac.sign(message, payload?)                       an SMB2 message's signature written into its
//                                                      header (the nonce from its own header)
//   gmac.verify(message) -> matched                    a received message's signature checked
//
// Synchronous: a message's AAD is a few hundred bytes (a READ response's payload at most 8 MiB,
// ~1 ms of GHASH, as long as node:crypto's synchronous call took on the same thread).
#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

namespace {

class Gmac : public Napi::ObjectWrap<Gmac> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Gmac", {InstanceMethod<&Gmac::Tag>("tag"), InstanceMethod<&Gmac::Sign>("sign"), InstanceMethod<&Gmac::Verify>("verify")});
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

  // One SMB2 message in one call (sign, verify): the nonce taken from its own header, the signature
  // field fed as 16 zero bytes, the tag written there or compared with what is there. What tag()
  // asked of JavaScript for each message — a copy into a scratch buffer, the field zeroed, the
  // nonce built, a parts array walked element by element, the tag copied back or compared by
  // another binding — was most of a small message's signing cost (perf of an smbclient mget:
  // ~9% of the server's samples in signing, the GHASH itself about a fifth of it).
  static constexpr size_t kHeader = 64;
  static constexpr size_t kSigAt = 48;

  void MessageTag(Napi::Env env, const uint8_t *msg, size_t n, const uint8_t *extra, size_t extraLen, uint8_t *tag) {
    // MS-SMB2 3.1.4.1: nonce = MessageId, then a 32-bit word: bit 0 set when the message is the
    // server's (SMB2_FLAGS_SERVER_TO_REDIR), bit 1 for a CANCEL.
    uint8_t nonce[12];
    std::memcpy(nonce, msg + 24, 8);
    uint32_t flags = static_cast<uint32_t>(msg[16]) | static_cast<uint32_t>(msg[17]) << 8 | static_cast<uint32_t>(msg[18]) << 16 | static_cast<uint32_t>(msg[19]) << 24;
    uint16_t command = static_cast<uint16_t>(msg[12] | msg[13] << 8);
    uint32_t word = (flags & 1u ? 1u : 0u) | (command == 0x000c ? 2u : 0u);
    nonce[8] = static_cast<uint8_t>(word);
    nonce[9] = nonce[10] = nonce[11] = 0;
    static const uint8_t zero[16] = {0};
    int len = 0;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1) throw Napi::Error::New(env, "gmac: nonce refused");
    Aad(env, msg, kSigAt);
    Aad(env, zero, 16);
    Aad(env, msg + kHeader, n - kHeader);
    if (extraLen > 0) Aad(env, extra, extraLen);
    uint8_t none[16];
    if (EVP_EncryptFinal_ex(ctx_, none, &len) != 1 || EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
      throw Napi::Error::New(env, "gmac: OpenSSL failed");
    }
  }

  void Aad(Napi::Env env, const uint8_t *d, size_t left) {
    int len = 0;
    while (left > 0) {
      int step = left > (1u << 30) ? (1 << 30) : static_cast<int>(left);
      if (EVP_EncryptUpdate(ctx_, nullptr, &len, d, step) != 1) throw Napi::Error::New(env, "gmac: AAD refused");
      d += step;
      left -= static_cast<size_t>(step);
    }
  }

  // sign(message, payload?): the message (its 64-byte header first, flags as they will be sent)
  // and, for a READ response sent in two pieces, the payload that follows it; the tag goes into
  // the message's signature field.
  Napi::Value Sign(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "sign(message, payload?)");
    auto msg = info[0].As<Napi::Buffer<uint8_t>>();
    if (msg.Length() < kHeader) throw Napi::RangeError::New(env, "sign: shorter than an SMB2 header");
    const uint8_t *extra = nullptr;
    size_t extraLen = 0;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "sign: payload must be a Buffer");
      auto p = info[1].As<Napi::Buffer<uint8_t>>();
      extra = p.Data();
      extraLen = p.Length();
    }
    uint8_t tag[16];
    MessageTag(env, msg.Data(), msg.Length(), extra, extraLen, tag);
    std::memcpy(msg.Data() + kSigAt, tag, 16);
    return env.Undefined();
  }

  // verify(message) -> whether its signature field holds its tag (constant-time comparison).
  Napi::Value Verify(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "verify(message)");
    auto msg = info[0].As<Napi::Buffer<uint8_t>>();
    if (msg.Length() < kHeader) return Napi::Boolean::New(env, false);
    uint8_t tag[16];
    MessageTag(env, msg.Data(), msg.Length(), nullptr, 0, tag);
    return Napi::Boolean::New(env, CRYPTO_memcmp(tag, msg.Data() + kSigAt, 16) == 0);
  }

  EVP_CIPHER_CTX *ctx_ = nullptr;
};

// AES-GCM (128- or 256-bit key, 12-byte nonce) with the key schedule made once: one context per
// key, each message only sets its nonce and direction (EVP_CipherInit_ex with key NULL). For the
// TRANSFORM_HEADER's encryption: every message of an encrypted session in-process (one context for
// the session's encryption key, one for its decryption key) and the seal worker's large ones.
// GCM's update gives as many bytes as it takes, so a payload is encrypted or decrypted where it
// lies (OpenSSL allows in == out).
class Gcm : public Napi::ObjectWrap<Gcm> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Gcm", {InstanceMethod<&Gcm::Seal>("seal"), InstanceMethod<&Gcm::Open>("open")});
  }

  explicit Gcm(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Gcm>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "Gcm(key): key must be a Buffer");
    auto key = info[0].As<Napi::Buffer<uint8_t>>();
    const EVP_CIPHER *cipher = key.Length() == 16 ? EVP_aes_128_gcm() : key.Length() == 32 ? EVP_aes_256_gcm() : nullptr;
    if (cipher == nullptr) throw Napi::RangeError::New(env, "Gcm(key): a 16- or 32-byte key");
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr || EVP_CipherInit_ex(ctx_, cipher, nullptr, nullptr, nullptr, 1) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
        EVP_CipherInit_ex(ctx_, nullptr, nullptr, key.Data(), nullptr, 1) != 1) {
      throw Napi::Error::New(env, "Gcm: OpenSSL refused the AES-GCM context");
    }
  }

  ~Gcm() override {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(ctx_);  // clears the key schedule
  }

 private:
  void Start(Napi::Env env, const Napi::Buffer<uint8_t> &nonce, const Napi::Buffer<uint8_t> &aad, bool enc) {
    if (nonce.Length() != 12) throw Napi::RangeError::New(env, "gcm: a 12-byte nonce");
    if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.Data(), enc ? 1 : 0) != 1) throw Napi::Error::New(env, "gcm: nonce refused");
    Update(env, aad.Data(), nullptr, aad.Length());
  }

  void Update(Napi::Env env, const uint8_t *in, uint8_t *out, size_t n) {
    while (n > 0) {
      int step = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
      int len = 0;
      if (EVP_CipherUpdate(ctx_, out, &len, in, step) != 1 || (out != nullptr && len != step)) throw Napi::Error::New(env, "gcm: update failed");
      in += step;
      if (out != nullptr) out += step;
      n -= static_cast<size_t>(step);
    }
  }

  // seal(nonce, aad, head, headOut, data, tagOut): head encrypted into headOut (same length), then
  // data encrypted where it lies, the 16-byte tag into tagOut.
  Napi::Value Seal(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    for (size_t i = 0; i < 6; i++) {
      if (i >= info.Length() || !info[i].IsBuffer()) throw Napi::TypeError::New(env, "seal(nonce, aad, head, headOut, data, tagOut): Buffers");
    }
    auto head = info[2].As<Napi::Buffer<uint8_t>>();
    auto headOut = info[3].As<Napi::Buffer<uint8_t>>();
    auto data = info[4].As<Napi::Buffer<uint8_t>>();
    auto tag = info[5].As<Napi::Buffer<uint8_t>>();
    if (headOut.Length() != head.Length() || tag.Length() != 16) throw Napi::RangeError::New(env, "seal: headOut as long as head, a 16-byte tag");
    Start(env, info[0].As<Napi::Buffer<uint8_t>>(), info[1].As<Napi::Buffer<uint8_t>>(), true);
    Update(env, head.Data(), headOut.Data(), head.Length());
    Update(env, data.Data(), data.Data(), data.Length());
    int len = 0;
    uint8_t none[16];
    if (EVP_CipherFinal_ex(ctx_, none, &len) != 1 || EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, 16, tag.Data()) != 1) {
      throw Napi::Error::New(env, "seal: final failed");
    }
    return env.Undefined();
  }

  // open(nonce, aad, data, tag) -> whether the tag matched: data decrypted where it lies (garbage
  // when it did not match: the caller drops the message and the connection).
  Napi::Value Open(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    for (size_t i = 0; i < 4; i++) {
      if (i >= info.Length() || !info[i].IsBuffer()) throw Napi::TypeError::New(env, "open(nonce, aad, data, tag): Buffers");
    }
    auto data = info[2].As<Napi::Buffer<uint8_t>>();
    auto tag = info[3].As<Napi::Buffer<uint8_t>>();
    if (tag.Length() != 16) throw Napi::RangeError::New(env, "open: a 16-byte tag");
    uint8_t expected[16];
    std::memcpy(expected, tag.Data(), 16);  // the tag may lie in data's buffer
    Start(env, info[0].As<Napi::Buffer<uint8_t>>(), info[1].As<Napi::Buffer<uint8_t>>(), false);
    Update(env, data.Data(), data.Data(), data.Length());
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, 16, expected) != 1) throw Napi::Error::New(env, "open: tag refused");
    int len = 0;
    uint8_t none[16];
    // EVP_DecryptFinal_ex compares the tags in constant time (CRYPTO_memcmp).
    return Napi::Boolean::New(env, EVP_CipherFinal_ex(ctx_, none, &len) == 1);
  }

  EVP_CIPHER_CTX *ctx_ = nullptr;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Gmac", Gmac::Init(env));
  exports.Set("Gcm", Gcm::Init(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(portico_smb, Init)
