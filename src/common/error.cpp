#include "datacap/error.hpp"

namespace datacap {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return "invalid_argument";
    case ErrorKind::out_of_range:
      return "out_of_range";
    case ErrorKind::dirty_cap:
      return "dirty_cap";
    case ErrorKind::missing_page:
      return "missing_page";
    case ErrorKind::decode:
      return "decode";
    case ErrorKind::validation:
      return "validation";
    case ErrorKind::io:
      return "io";
    case ErrorKind::integrity:
      return "integrity";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::unsupported:
      return "unsupported";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, const std::string& message)
    : std::runtime_error(message), kind_(kind) {}

MissingPage::MissingPage(const std::string& context, std::uint32_t page_index, const Hash32& hash)
    : Error(ErrorKind::missing_page, context + ": page " + std::to_string(page_index) +
                                         " is Missing (hash " + to_hex(hash) + ")"),
      page_index_(page_index),
      hash_(hash) {}

DecodeError::DecodeError(const std::string& field, std::uint64_t offset, const std::string& what)
    : Error(ErrorKind::decode, field + " at byte " + std::to_string(offset) + ": " + what),
      field_(field),
      offset_(offset) {}

const char* to_string(ValidationRule rule) noexcept {
  switch (rule) {
    case ValidationRule::size_not_page_multiple:
      return "size_not_page_multiple";
    case ValidationRule::page_len_invalid:
      return "page_len_invalid";
    case ValidationRule::window_past_arena:
      return "window_past_arena";
    case ValidationRule::page_index_out_of_range:
      return "page_index_out_of_range";
    case ValidationRule::pages_not_ascending:
      return "pages_not_ascending";
  }
  return "unknown";
}

ValidationError::ValidationError(ValidationRule rule, std::uint64_t value, std::uint64_t index,
                                 const std::string& message)
    : Error(ErrorKind::validation, message), rule_(rule), value_(value), index_(index) {}

IoError::IoError(const std::string& path, const std::string& what)
    : Error(ErrorKind::io, path + ": " + what), path_(path) {}

IntegrityError::IntegrityError(const std::string& context, std::uint64_t page_index,
                               const Hash32& expected, const Hash32& actual)
    : Error(ErrorKind::integrity, context + ": page " + std::to_string(page_index) + " has root " +
                                      to_hex(actual) + ", expected " + to_hex(expected)),
      page_index_(page_index),
      expected_(expected),
      actual_(actual) {}

NotFound::NotFound(const std::string& context, const std::string& what, const Hash32& key)
    : Error(ErrorKind::not_found, context + ": no " + what + " " + to_hex(key)), key_(key) {}

}  // namespace datacap
