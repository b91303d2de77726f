// Internal: writing a file that replaces another only once it is complete — the one way the
// library (archives) and the CLI (`-o`) put a result in place.
//
// The result is written to a new temporary file beside the target (TARGET.tmp-PID, or
// TARGET.tmp-PID-N when that name is taken), created with O_EXCL | O_NOFOLLOW so nothing
// planted under that name is followed or reused, and given the replaced file's permissions.
// commit() syncs it, renames it over the target and syncs the directory: a failed or
// interrupted writer never leaves a half-written target and never loses the old one. A symbolic
// link is followed (its target is replaced; the link stays); a dangling link is refused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace datacap::detail {

// What a path names, for a writer about to replace it.
struct OutputTarget {
  std::string path;    // as named by the caller (what errors name)
  std::string target;  // the file to replace: `path`, or the file a symbolic link points to
  bool exists = false;
  mode_t mode = 0;  // st_mode of the existing target (type and permissions)
  [[nodiscard]] bool replaceable() const noexcept;  // new, or an existing regular file
  [[nodiscard]] bool is_directory() const noexcept;
};

// Looks at `path` without changing anything. Throws IoError (naming `path`) when it cannot be
// examined or is a dangling symbolic link.
OutputTarget resolve_output(const std::string& path);

class ReplacementFile {
 public:
  // Creates the temporary file for `target` (REQUIRES target.replaceable()). Throws IoError.
  explicit ReplacementFile(const OutputTarget& target);
  ~ReplacementFile();  // closes and removes the temporary file unless commit() succeeded
  ReplacementFile(const ReplacementFile&) = delete;
  ReplacementFile& operator=(const ReplacementFile&) = delete;

  [[nodiscard]] const std::string& temp_path() const noexcept { return tmp_; }
  // Writes all n bytes at `offset` (retrying short writes; no progress is ENOSPC). Throws
  // IoError naming the target path (the temporary file in the message).
  void write_at(std::uint64_t offset, const void* data, std::size_t n);
  // Sets the file's length (holes where nothing was written). Throws IoError.
  void truncate(std::uint64_t size);
  // fsync, close, rename over the target, fsync the directory. Throws IoError; the temporary
  // file is removed when anything before the rename fails.
  void commit();

 private:
  std::string path_, target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace datacap::detail
