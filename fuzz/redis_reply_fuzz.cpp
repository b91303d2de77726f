// libFuzzer target: the Redis reply parser on untrusted bytes (see targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  datacap::fuzz::redis_reply_input(std::span<const std::uint8_t>(data, size));
  return 0;
}
