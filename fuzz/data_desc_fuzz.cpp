// libFuzzer target: decode_data_desc, DataDesc::validate and to_data_cap on untrusted bytes.
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  datacap::fuzz::data_desc_input(std::span<const std::uint8_t>(data, size));
  return 0;
}
