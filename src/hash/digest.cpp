// Digest adapters over well-kept Debian libraries: SHA-256 from OpenSSL's libcrypto and
// BLAKE2b-256 from libb2. The hot path (SIMD pair kernels) will replace the SHA-256 loop here.
#include "hash/digest.hpp"

#include "hash/kernel.hpp"

#include <blake2.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "datacap/error.hpp"

namespace datacap {
namespace {

struct EvpContextDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// One EVP context per thread: creating a context per message would cost more than hashing it.
EVP_MD_CTX* thread_sha256_context() {
  thread_local std::unique_ptr<EVP_MD_CTX, EvpContextDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx) throw std::bad_alloc();
  return ctx.get();
}

void sha256(std::uint8_t* out, const std::uint8_t* in, std::size_t len) {
  EVP_MD_CTX* ctx = thread_sha256_context();
  unsigned int out_len = 0;
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 || EVP_DigestUpdate(ctx, in, len) != 1 ||
      EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != 32) {
    throw std::runtime_error("OpenSSL SHA-256 failed");
  }
}

void blake2b256(std::uint8_t* out, const std::uint8_t* in, std::size_t len) {
  if (blake2b(out, in, nullptr, 32, len, 0) != 0) throw std::runtime_error("libb2 BLAKE2b failed");
}

}  // namespace

namespace detail {

void hash_pairs(Digest digest, std::uint8_t* out, const std::uint8_t* in, std::size_t count) {
  if (digest == Digest::sha256) {
    sha256_pairs(out, in, count);
    return;
  }
  std::uint8_t tmp[32];
  for (std::size_t i = 0; i < count; ++i) {
    if (digest == Digest::sha256) {
      sha256(tmp, in + 64 * i, 64);
    } else {
      blake2b256(tmp, in + 64 * i, 64);
    }
    std::memcpy(out + 32 * i, tmp, 32);
  }
}

}  // namespace detail

const char* to_string(Digest digest) noexcept {
  return digest == Digest::sha256 ? "sha256" : "blake2b256";
}

Digest parse_digest(std::string_view name) {
  if (name == "sha256") return Digest::sha256;
  if (name == "blake2b256") return Digest::blake2b256;
  throw InvalidArgument("unknown digest '" + std::string(name) +
                        "' (expected sha256 or blake2b256)");
}

Hash32 digest_bytes(Digest digest, std::span<const std::uint8_t> bytes) {
  Hash32 out;
  if (digest == Digest::sha256) {
    sha256(out.data(), bytes.data(), bytes.size());
  } else {
    blake2b256(out.data(), bytes.data(), bytes.size());
  }
  return out;
}

Hash32 hash_pair(Digest digest, const Hash32& left, const Hash32& right) {
  std::uint8_t in[64];
  std::memcpy(in, left.data(), 32);
  std::memcpy(in + 32, right.data(), 32);
  Hash32 out;
  detail::hash_pairs(digest, out.data(), in, 1);
  return out;
}

}  // namespace datacap
