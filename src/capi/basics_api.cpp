// The C API's basics: status codes and messages, version, hashes (datacap.h).
#include <cstring>
#include <exception>
#include <string>

#include "capi/boundary.hpp"
#include "datacap/merkle.hpp"
#include "datacap/types.hpp"
#include "datacap/version.hpp"

namespace datacap::capi {
namespace {

// The calling thread's last failure. Only failures write it, so a successful call costs
// nothing here.
thread_local std::string last_message;

datacap_status status_of(ErrorKind kind) noexcept {
  return static_cast<datacap_status>(static_cast<int>(kind) + 1);
}

// The status values are ErrorKind + 1 (datacap.h promises it).
static_assert(static_cast<int>(ErrorKind::invalid_argument) + 1 == DATACAP_INVALID_ARGUMENT);
static_assert(static_cast<int>(ErrorKind::out_of_range) + 1 == DATACAP_OUT_OF_RANGE);
static_assert(static_cast<int>(ErrorKind::dirty_cap) + 1 == DATACAP_DIRTY_CAP);
static_assert(static_cast<int>(ErrorKind::missing_page) + 1 == DATACAP_MISSING_PAGE);
static_assert(static_cast<int>(ErrorKind::decode) + 1 == DATACAP_DECODE);
static_assert(static_cast<int>(ErrorKind::validation) + 1 == DATACAP_VALIDATION);
static_assert(static_cast<int>(ErrorKind::io) + 1 == DATACAP_IO);
static_assert(static_cast<int>(ErrorKind::integrity) + 1 == DATACAP_INTEGRITY);
static_assert(static_cast<int>(ErrorKind::not_found) + 1 == DATACAP_NOT_FOUND);
static_assert(static_cast<int>(ErrorKind::unsupported) + 1 == DATACAP_UNSUPPORTED);

}  // namespace

datacap_status fail(datacap_status status, const char* message) noexcept {
  try {
    last_message.assign(message);
  } catch (...) {  // no memory for the message: the status still says what happened
    last_message.clear();
  }
  return status;
}

datacap_status status_of_current_exception() noexcept {
  try {
    throw;
  } catch (const Error& error) {
    return fail(status_of(error.kind()), error.what());
  } catch (const std::bad_alloc&) {
    return fail(DATACAP_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& error) {
    return fail(DATACAP_INTERNAL, error.what());
  } catch (...) {
    return fail(DATACAP_INTERNAL, "an unknown exception reached the C API");
  }
}

Digest digest_of(datacap_digest digest) {
  switch (digest) {
    case DATACAP_SHA256:
      return Digest::sha256;
    case DATACAP_BLAKE2B256:
      return Digest::blake2b256;
  }
  throw InvalidArgument("unknown datacap_digest " + std::to_string(static_cast<int>(digest)) +
                        " (DATACAP_SHA256 = 0, DATACAP_BLAKE2B256 = 1)");
}

}  // namespace datacap::capi

using namespace datacap::capi;

extern "C" {

const char* datacap_version(void) { return datacap::version_string(); }

const char* datacap_status_name(datacap_status status) {
  switch (status) {
    case DATACAP_OK:
      return "ok";
    case DATACAP_OUT_OF_MEMORY:
      return "out_of_memory";
    case DATACAP_INTERNAL:
      return "internal";
    default:
      break;
  }
  if (status >= DATACAP_INVALID_ARGUMENT && status <= DATACAP_UNSUPPORTED) {
    return datacap::to_string(static_cast<datacap::ErrorKind>(static_cast<int>(status) - 1));
  }
  return "unknown";
}

char* datacap_error_message(void) {
  if (last_message.empty()) return nullptr;
  char* copy = static_cast<char*>(std::malloc(last_message.size() + 1));
  if (copy != nullptr) std::memcpy(copy, last_message.c_str(), last_message.size() + 1);
  return copy;
}

void datacap_free(void* memory) { std::free(memory); }

void datacap_hash_to_hex(const datacap_hash* hash, char out[65]) {
  if (hash == nullptr || out == nullptr) return;
  static constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 32; ++i) {
    out[2 * i] = digits[hash->bytes[i] >> 4];
    out[2 * i + 1] = digits[hash->bytes[i] & 0xf];
  }
  out[64] = '\0';
}

datacap_status datacap_hash_from_hex(const char* hex, datacap_hash* out) {
  if (hex == nullptr || out == nullptr) return misuse("datacap_hash_from_hex: NULL argument");
  return guard([&] { *out = c_hash_of(datacap::hash_from_hex(hex)); });
}

datacap_status datacap_set_hash_threads(unsigned threads) {
  return guard([&] { datacap::set_hash_threads(threads); });
}

datacap_status datacap_page_root(const uint8_t* bytes, size_t len, datacap_digest digest,
                                 datacap_hash* out) {
  if (!bytes_ok(bytes, len) || out == nullptr) return misuse("datacap_page_root: NULL argument");
  return guard(
      [&] { *out = c_hash_of(datacap::page_root(digest_of(digest), bytes_of(bytes, len))); });
}

}  // extern "C"
