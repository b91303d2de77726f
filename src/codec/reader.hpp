// Internal: a bounded little-endian cursor for decoders. Every read checks the bytes left first
// and throws a DecodeError naming the field and its byte offset.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "common/little_endian.hpp"
#include "datacap/error.hpp"

namespace datacap::detail {

class SszReader {
 public:
  SszReader(std::span<const std::uint8_t> bytes, std::string type)
      : bytes_(bytes), type_(std::move(type)) {}

  [[nodiscard]] std::size_t offset() const noexcept { return at_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - at_; }

  [[noreturn]] void fail(const std::string& field, std::size_t offset,
                         const std::string& what) const {
    throw DecodeError(type_ + (field.empty() ? "" : "." + field), offset, what);
  }

  void need(const char* field, std::size_t n) const {
    if (remaining() < n) {
      fail(field, at_,
           "needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left");
    }
  }

  std::uint8_t u8(const char* field) {
    need(field, 1);
    return bytes_[at_++];
  }
  std::uint32_t u32(const char* field) {
    need(field, 4);
    const std::uint32_t v = get_le32(bytes_.data() + at_);
    at_ += 4;
    return v;
  }
  std::uint64_t u64(const char* field) {
    need(field, 8);
    const std::uint64_t v = get_le64(bytes_.data() + at_);
    at_ += 8;
    return v;
  }
  std::span<const std::uint8_t> take(const char* field, std::size_t n) {
    need(field, n);
    auto out = bytes_.subspan(at_, n);
    at_ += n;
    return out;
  }
  std::span<const std::uint8_t> rest() {
    auto out = bytes_.subspan(at_);
    at_ = bytes_.size();
    return out;
  }
  void expect_end() const {
    if (remaining() != 0) fail("", at_, std::to_string(remaining()) + " trailing bytes");
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string type_;
  std::size_t at_ = 0;
};

}  // namespace datacap::detail
