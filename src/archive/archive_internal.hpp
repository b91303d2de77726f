// Internal: the archive reader over bytes already in memory (a file mapping, or a buffer in
// tests and fuzzing). Takes no ownership of `file`; pages it serves retain it.
#pragma once

#include <string>

#include "datacap/archive.hpp"
#include "page/page_node.hpp"

namespace datacap::detail {

// `name` prefixes the field of every DecodeError (e.g. "PATH: Archive"). With max_memory != 0,
// an archive whose cap would need more memory than that — `held` bytes already taken (a private
// copy of the file) plus its tree — is a MemoryLimitExceeded before anything is built.
OpenedArchive open_archive_image(MappedFile* file, ArchiveVerify verify,
                                 const std::string& name = "Archive", std::uint64_t max_memory = 0,
                                 std::uint64_t held = 0);

}  // namespace datacap::detail
