// Library version, for callers that need to check what they linked against.
#pragma once

#include "datacap/export.hpp"

namespace datacap {

inline constexpr int VERSION_MAJOR = 0;
inline constexpr int VERSION_MINOR = 1;
inline constexpr int VERSION_PATCH = 0;

// "MAJOR.MINOR.PATCH" of the library actually linked (may differ from the header's).
DATACAP_API const char* version_string() noexcept;

}  // namespace datacap
