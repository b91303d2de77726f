// datacap::Error and its closed set of subclasses.
//
// Every failure the library reports on bad input or misuse is one of these exceptions; nothing
// in the library aborts or terminates the process because of caller input. Messages say what
// went wrong and about which thing ("write: range [4090, 4106) ends past content_len 4096").
// Callers who branch on the failure use kind() (or catch the subclass).
//
// Thread-safety: exception objects are immutable values; safe to share.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "datacap/export.hpp"
#include "datacap/types.hpp"

namespace datacap {

enum class ErrorKind {
  invalid_argument,  // misuse that is not one of the more specific kinds below
  out_of_range,      // an offset, page index or content length outside what the cap allows
  dirty_cap,         // an operation defined only on a clean cap was called on a dirty one
  missing_page,      // a Missing page was read through an API that needs its bytes
  decode,            // malformed wire bytes
  validation,        // a well-formed value that breaks a rule (e.g. DataDesc rules)
  io,                // the operating system refused a file operation
  integrity,         // bytes that do not match the hash they were fetched by (a bad store)
  not_found,         // a key (a cap root, a page root) that a store does not hold
  unsupported,       // the host cannot do what was asked (a kernel feature it lacks)
};

// Name of a kind, e.g. "out_of_range".
DATACAP_API const char* to_string(ErrorKind kind) noexcept;

// Root of every exception the library throws on purpose.
class DATACAP_API Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message);
  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Misuse: bad combination of arguments, unaligned offset, duplicate entries, unknown names.
class DATACAP_API InvalidArgument : public Error {
 public:
  explicit InvalidArgument(const std::string& message)
      : Error(ErrorKind::invalid_argument, message) {}

 protected:
  InvalidArgument(ErrorKind kind, const std::string& message) : Error(kind, message) {}
};

// An offset or page index at or past the end, a range that ends past the end, content longer
// than a page, a size that does not fit 2^32 pages.
class DATACAP_API OutOfRange : public InvalidArgument {
 public:
  explicit OutOfRange(const std::string& message)
      : InvalidArgument(ErrorKind::out_of_range, message) {}
};

// An input that would need more memory than the caller allowed (a max_memory option): an
// estimate of what it needs and the limit. An OutOfRange (kind out_of_range), so callers that
// catch OutOfRange still do; nothing was built when it is thrown.
class DATACAP_API MemoryLimitExceeded : public OutOfRange {
 public:
  MemoryLimitExceeded(const std::string& message, std::uint64_t needed, std::uint64_t limit)
      : OutOfRange(message), needed_(needed), limit_(limit) {}
  [[nodiscard]] std::uint64_t needed() const noexcept { return needed_; }
  [[nodiscard]] std::uint64_t limit() const noexcept { return limit_; }

 private:
  std::uint64_t needed_;
  std::uint64_t limit_;
};

// The operating system cannot do what was asked: a kernel without the feature, a sandbox that
// refuses the system call (e.g. a GuestWindow where no dirty-tracking mechanism works). Nothing
// was changed; the rest of the library is unaffected.
class DATACAP_API Unsupported : public Error {
 public:
  explicit Unsupported(const std::string& message) : Error(ErrorKind::unsupported, message) {}
};

// hash_tree_root() (or another clean-only operation) on a cap whose overlay is not empty.
class DATACAP_API DirtyCap : public InvalidArgument {
 public:
  explicit DirtyCap(const std::string& message) : InvalidArgument(ErrorKind::dirty_cap, message) {}
};

// A Missing page (known only by its hash) was read through an API that needs its bytes.
// Never silently read as zeros: that would fork consensus.
class DATACAP_API MissingPage : public Error {
 public:
  MissingPage(const std::string& context, std::uint32_t page_index, const Hash32& hash);
  [[nodiscard]] std::uint32_t page_index() const noexcept { return page_index_; }
  [[nodiscard]] const Hash32& hash() const noexcept { return hash_; }

 private:
  std::uint32_t page_index_;
  Hash32 hash_;
};

// Malformed bytes from outside (wire forms, archives): names the field and the byte offset,
// e.g. "DataDesc.pages at byte 12: 13 bytes is not a whole number of 12-byte ArenaPageRefs".
class DATACAP_API DecodeError : public Error {
 public:
  DecodeError(const std::string& field, std::uint64_t offset, const std::string& what);
  [[nodiscard]] const std::string& field() const noexcept { return field_; }
  [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string field_;
  std::uint64_t offset_;
};

// The rules of DataDesc::validate (SPEC §6), in the order they are reported.
enum class ValidationRule {
  size_not_page_multiple,   // value: the size
  page_len_invalid,         // value: the len (0 or > 4096)
  window_past_arena,        // value: arena_off + len
  page_index_out_of_range,  // value: the page_index
  pages_not_ascending,      // value: the page_index that is not above its predecessor
};
DATACAP_API const char* to_string(ValidationRule rule) noexcept;

// A well-formed value that breaks a rule: which rule, the offending value and, for a rule about
// one entry of a list, that entry's index.
class DATACAP_API ValidationError : public Error {
 public:
  ValidationError(ValidationRule rule, std::uint64_t value, std::uint64_t index,
                  const std::string& message);
  [[nodiscard]] ValidationRule rule() const noexcept { return rule_; }
  [[nodiscard]] std::uint64_t value() const noexcept { return value_; }
  [[nodiscard]] std::uint64_t index() const noexcept { return index_; }

 private:
  ValidationRule rule_;
  std::uint64_t value_;
  std::uint64_t index_;
};

// The operating system refused a file operation: carries the path and the system message.
class DATACAP_API IoError : public Error {
 public:
  IoError(const std::string& path, const std::string& what);
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Bytes fetched by their hash (from a page store, a peer) whose root is not that hash. The
// operation that fetched them changed nothing.
class DATACAP_API IntegrityError : public Error {
 public:
  IntegrityError(const std::string& context, std::uint64_t page_index, const Hash32& expected,
                 const Hash32& actual);
  [[nodiscard]] std::uint64_t page_index() const noexcept { return page_index_; }
  [[nodiscard]] const Hash32& expected() const noexcept { return expected_; }
  [[nodiscard]] const Hash32& actual() const noexcept { return actual_; }

 private:
  std::uint64_t page_index_;
  Hash32 expected_;
  Hash32 actual_;
};

// A store does not hold the key asked for (`what` says which kind: "cap", "page").
class DATACAP_API NotFound : public Error {
 public:
  NotFound(const std::string& context, const std::string& what, const Hash32& key);
  [[nodiscard]] const Hash32& key() const noexcept { return key_; }

 private:
  Hash32 key_;
};

}  // namespace datacap
