#include "datacap/version.hpp"

namespace datacap {

// Compiled into the library, so it tells which library was linked, whatever headers the caller
// was built with.
const char* version_string() noexcept { return VERSION_STRING; }

}  // namespace datacap
