// libFuzzer target: decode_page_slot / PageBytes on untrusted bytes.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  datacap::fuzz::page_slot_input(std::span<const std::uint8_t>(data, size));
  return 0;
}
