// The datacap subcommands. Each add_*_command registers its subcommands, their options and a
// callback on the CLI11 app. A callback reports failure by throwing: datacap::Error (and
// CLI11's parse errors) for what went wrong, Difference or ValidationFailure below for a result
// that is not a success; main() prints one line and maps each to its exit status (README, CLI).
#pragma once

#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>

#include "datacap/archive.hpp"

namespace datacap::cli {

void add_root_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_archive_commands(CLI::App& app);  // pack, unpack, info, verify
void add_store_commands(CLI::App& app);    // store put, get, ls, gc, verify
void add_proof_commands(CLI::App& app);    // proof, verify-proof, diff

// The digest to use for the archive at `path`: its own. A --digest given on the command line
// (digest_option counted) that names another is a usage error, since the archive's page hashes
// and root are under its own digest.
Digest archive_digest_or_refuse(const ArchiveInfo& info, const CLI::Option* digest_option,
                                const std::string& digest, const std::string& path);

// Ends a command with exit status 1 and no error line: `diff` found a difference.
struct Difference {};
// A check that did not hold (verify-proof): one error line, exit status 1.
struct ValidationFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Exit status for failures main() reports: 1 for runtime failures, 2 for usage errors.
inline constexpr int EXIT_RUNTIME_ERROR = 1;
inline constexpr int EXIT_USAGE_ERROR = 2;

}  // namespace datacap::cli
