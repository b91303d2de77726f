// Internal: the one primitive a merkle tree needs, hash many 64-byte pairs at once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datacap/hash.hpp"

namespace datacap::detail {

// out[32*i .. 32*i+32) = D(in[64*i .. 64*i+64)) for i < count.
// REQUIRES: out and in do not overlap partially (out == in is allowed: each 64-byte input is
// read before its 32-byte output is written, and output i never reaches input i+1).
void hash_pairs(Digest digest, std::uint8_t* out, const std::uint8_t* in, std::size_t count);

}  // namespace datacap::detail
