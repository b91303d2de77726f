// The datacap command-line tool. Every failure prints one line to standard error and exits
// non-zero: 2 for usage errors, 1 for everything else (`diff`: 1 means "different", errors 2).
// Standard output is flushed and checked before a zero exit: output that could not be written
// is a failure.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.hpp"
#include "cli/process.hpp"
#include "datacap/error.hpp"
#include "datacap/version.hpp"

namespace {

void print_error(const std::string& what) {
  // Keep it to one line whatever the message holds.
  std::string line = what;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "datacap: error: %s\n", line.c_str());
}

// Runs the parsed command; returns the exit status.
int run(CLI::App& app, int argc, char** argv) {
  using datacap::cli::EXIT_USAGE_ERROR;
  try {
    // CLI11 reports a mistyped command as "a subcommand is required"; name it instead.
    if (argc > 1 && argv[1][0] != '-') {
      bool known = false;
      std::string names;
      for (const CLI::App* sub : app.get_subcommands({})) {
        known = known || sub->get_name() == argv[1];
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      if (!known) {
        print_error(std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
        return EXIT_USAGE_ERROR;
      }
    }
    app.parse(argc, argv);
    datacap::cli::check_stdout();
    return 0;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see datacap --help)");
    return EXIT_USAGE_ERROR;
  } catch (const datacap::cli::Difference&) {
    try {
      datacap::cli::check_stdout();
    } catch (const datacap::Error& e) {
      print_error(e.what());
      return EXIT_USAGE_ERROR;
    }
    return datacap::cli::EXIT_RUNTIME_ERROR;
  } catch (const datacap::MemoryLimitExceeded& e) {
    // The input is the trouble, not the command line: a runtime failure.
    print_error(std::string(e.what()) + "; raise it with --max-memory BYTES");
    return datacap::cli::runtime_error_exit();  // 2 for diff, where 1 means "different"
  } catch (const datacap::InvalidArgument& e) {
    print_error(e.what());
    return EXIT_USAGE_ERROR;
  } catch (const datacap::Error& e) {
    print_error(e.what());
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
  } catch (const std::exception& e) {
    print_error(e.what());
  }
  return datacap::cli::runtime_error_exit();
}

}  // namespace

int main(int argc, char** argv) {
  datacap::cli::install_process_guards();
  CLI::App app{"datacap: copy-on-write paged memory with merkle roots for deterministic VMs"};
  app.set_version_flag("--version", datacap::version_string());
  app.require_subcommand(1);
  datacap::cli::add_root_command(app);
  datacap::cli::add_demo_command(app);
  datacap::cli::add_archive_commands(app);
  datacap::cli::add_store_commands(app);
  datacap::cli::add_proof_commands(app);
  const int status = run(app, argc, argv);
  // A failure's output may be partial; a success's was checked in run(). Either way, stdout
  // must not be flushed again at exit (a second failing flush would go unreported).
  std::fflush(stdout);
  if (status == 0 && std::ferror(stdout) != 0) {
    print_error("<stdout>: cannot write standard output");
    return 1;
  }
  return status;
}
