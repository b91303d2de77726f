// Process-wide duties of the CLI: the standard streams, signals, temporary files, and the
// numbers and limits its options take.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "datacap/archive.hpp"

namespace datacap::cli {

// Run first in main(). A closed standard stream gets a placeholder in its place, so no file the
// command opens can take its number (output would land in that file): the root directory
// opened O_PATH, on which reads and writes fail (EBADF) and are reported, and which /dev/stdout
// or /dev/stdin cannot reopen as a file (a directory). SIGPIPE is ignored: a write to
// a closed pipe is an error like any other. SIGINT, SIGTERM and SIGHUP remove the temporary
// file being written (if any) and end the process by the same signal. SIGBUS and SIGSEGV (a
// mapped file truncated or damaged under a reader, e.g. a damaged LMDB store) print one error
// line naming what was being read and exit 1, removing the temporary file.
void install_process_guards();

// The temporary file the signal handlers remove; one at a time. Empty clears it.
void set_pending_temp(const std::string& path);
// What is being read, for the fault message ("store DIR", "archive PATH"). Empty clears it.
void set_fault_context(const std::string& what);

// Flushes standard output and throws IoError("<stdout>", ...) if anything written to it was
// lost (full device, closed stream, broken pipe).
void check_stdout();

// Adds an option taking a byte count or index: decimal digits only, 0 … 2^64 − 1. Anything
// else (a sign, a fraction, an exponent, a suffix, overflow) is a usage error naming the option.
CLI::Option* add_u64_option(CLI::App& cmd, const std::string& name, std::uint64_t& value,
                            const std::string& help);

// A --size value that cannot be a cap's size (beyond 2^32 pages) is a usage error naming it.
void check_size_option(std::uint64_t size);

// The memory a command may use for an input of `path` unless told otherwise: 64 MiB plus 64
// times the bytes the file really holds (its allocated blocks, not the length of its holes).
std::uint64_t default_memory_limit(const std::string& path);

// The archive at `path` through ArchiveReader / open_archive, with `max_memory` (0: the default
// limit for the file); over the limit, datacap::MemoryLimitExceeded (exit 1, see main.cpp).
ArchiveReader open_archive_reader(const std::string& path, std::uint64_t max_memory);
OpenedArchive open_archive_copy(const std::string& path, std::uint64_t max_memory);

// The exit status for a runtime error (1; `diff` makes it 2, as cmp and diff do).
int runtime_error_exit();
void set_runtime_error_exit(int status);

}  // namespace datacap::cli
