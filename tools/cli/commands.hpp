// The datacap subcommands. Each registers itself on the CLI11 app and returns the callback
// state it needs; errors propagate as datacap::Error (printed by main as one line).
#pragma once

#include <CLI/CLI.hpp>

namespace datacap::cli {

void add_root_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_archive_commands(CLI::App& app);  // pack, unpack, info, verify
void add_store_commands(CLI::App& app);    // store put, get, ls, gc
void add_proof_commands(CLI::App& app);    // proof, verify-proof, diff

// Exit status for failures main() reports: 1 for runtime failures, 2 for usage errors.
inline constexpr int EXIT_RUNTIME_ERROR = 1;
inline constexpr int EXIT_USAGE_ERROR = 2;

}  // namespace datacap::cli
