// libFuzzer target: the snapshot archive reader on untrusted bytes (structure and full modes).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  datacap::fuzz::archive_input(std::span<const std::uint8_t>(data, size));
  return 0;
}
