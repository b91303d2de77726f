// Internal: the archive reader over bytes already in memory (a file mapping, or a buffer in
// tests and fuzzing). Takes no ownership of `file`; pages it serves retain it.
#pragma once

#include "datacap/archive.hpp"
#include "page/page_node.hpp"

namespace datacap::detail {

OpenedArchive open_archive_image(MappedFile* file, ArchiveVerify verify);

}  // namespace datacap::detail
