// Digest adapters over well-kept Debian libraries: SHA-256 of any length from OpenSSL's libcrypto
// (digest_bytes) and BLAKE2b-256 from libb2. SHA-256 of merkle pairs, the hot path, goes to the
// kernels chosen in dispatch.cpp instead.
#include "hash/digest.hpp"

#include <blake2.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "datacap/error.hpp"
#include "hash/kernel.hpp"

namespace datacap {
namespace {

// A digest library failed on arguments that are valid by construction, so the fault lies in the
// library or its environment, never in the caller's input. The closed set of kinds has no
// "internal" kind; io is the one meant for the environment refusing us (and OpenSSL's usual
// failure here is just that: its provider, named by openssl.cnf and loaded from disk, cannot be
// fetched), and unlike invalid_argument it does not blame the caller (the CLI exits with a
// runtime error, not a usage error).
[[noreturn]] void digest_failure(const std::string& what) { throw Error(ErrorKind::io, what); }

struct EvpContextDeleter {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// One EVP context per thread: creating a context per message would cost more than hashing it.
// Allocation failure is std::bad_alloc, as for every allocation in the library; a thread that
// failed once tries again on its next call.
EVP_MD_CTX* thread_sha256_context() {
  thread_local std::unique_ptr<EVP_MD_CTX, EvpContextDeleter> ctx;
  if (!ctx) {
    ctx.reset(EVP_MD_CTX_new());
    if (!ctx) throw std::bad_alloc();
  }
  return ctx.get();
}

void sha256(std::uint8_t* out, const std::uint8_t* in, std::size_t len) {
  EVP_MD_CTX* ctx = thread_sha256_context();
  unsigned int out_len = 0;
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 || EVP_DigestUpdate(ctx, in, len) != 1 ||
      EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != 32) {
    char reason[256] = "no reason given";
    if (const unsigned long code = ERR_peek_last_error(); code != 0) {
      ERR_error_string_n(code, reason, sizeof reason);
    }
    ERR_clear_error();
    digest_failure(std::string("SHA-256 (OpenSSL libcrypto) failed: ") + reason);
  }
}

// libb2 refuses only a null output, a null input with a nonzero length, an output longer than 64
// bytes or a key it cannot use: none of these can come from here.
void blake2b256(std::uint8_t* out, const std::uint8_t* in, std::size_t len) {
  if (blake2b(out, in, nullptr, 32, len, 0) != 0) digest_failure("BLAKE2b-256 (libb2) failed");
}

}  // namespace

namespace detail {

void hash_pairs(Digest digest, std::uint8_t* out, const std::uint8_t* in, std::size_t count) {
  if (digest == Digest::sha256) {
    sha256_pairs(out, in, count);
    return;
  }
  // BLAKE2b-256, one pair at a time. Through tmp: out may equal in (digest.hpp), and libb2 does
  // not promise to read all of its input before writing its output.
  std::uint8_t tmp[32];
  for (std::size_t i = 0; i < count; ++i) {
    blake2b256(tmp, in + 64 * i, 64);
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
