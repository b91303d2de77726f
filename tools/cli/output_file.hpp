// The file a command writes its result to (`-o`).
//
// A new path or an existing regular file is replaced the way the library writes archives
// (src/common/replacement_file.hpp): a temporary file beside it, synced and renamed over it only
// when complete, so a failed or interrupted command never leaves a half-written FILE and never
// loses the old one; a symbolic link's target is replaced (a dangling link is refused). Anything
// else — a character or block device, a FIFO, a socket — is opened and written in place, since
// replacing the node would destroy it (`-o /dev/null` must not replace the null device): in order,
// every byte, gaps written as zeros (a device may refuse them: /dev/full). An empty path, a
// directory, or the same file as one in `refused` is an error before anything is written. Every
// write is checked; ENOSPC and the like are IoErrors naming the path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace datacap::detail {
class ReplacementFile;
}

namespace datacap::cli {

class OutputFile {
 public:
  // Checks `path` before any work: not empty, not the same file as any of `refused` (an
  // input, the store's files). InvalidArgument (exit 2).
  static void check_path(const std::string& path, const std::vector<std::string>& refused = {});

  // Opens (creates the temporary file for) `path`. Throws IoError, InvalidArgument.
  explicit OutputFile(std::string path, const std::vector<std::string>& refused = {});
  ~OutputFile();  // removes the temporary file unless finish() succeeded
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Writes n bytes at `offset`. In-place outputs are written in order: offsets must not go
  // back (they never do: pages are written ascending).
  void write_at(std::uint64_t offset, const std::uint8_t* p, std::size_t n);
  // Makes the output `size` bytes long (a regular file with holes where nothing was written),
  // syncs it, and renames it into place.
  void finish(std::uint64_t size);

 private:
  void write_all(const std::uint8_t* p, std::size_t n);
  void pad_to(std::uint64_t offset);
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;                                      // what the user named
  std::unique_ptr<detail::ReplacementFile> replacement_;  // new or regular: replaced when done
  int fd_ = -1;                                           // otherwise written in place
  std::uint64_t position_ = 0;                            // in-place outputs: bytes written so far
};

}  // namespace datacap::cli
