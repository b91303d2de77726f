// The datacap command-line tool. Every failure prints one line to standard error and exits
// non-zero: 2 for usage errors, 1 for everything else.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli/commands.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"datacap: copy-on-write paged memory with merkle roots for deterministic VMs"};
  app.set_version_flag("--version", datacap::version_string());
  app.require_subcommand(1);
  datacap::cli::add_root_command(app);
  datacap::cli::add_demo_command(app);
  datacap::cli::add_archive_commands(app);
  datacap::cli::add_store_commands(app);
  datacap::cli::add_proof_commands(app);
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
        return datacap::cli::EXIT_USAGE_ERROR;
      }
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(std::string(e.what()) + " (see datacap --help)");
    return datacap::cli::EXIT_USAGE_ERROR;
  } catch (const datacap::InvalidArgument& e) {
    print_error(e.what());
    return datacap::cli::EXIT_USAGE_ERROR;
  } catch (const datacap::Error& e) {
    print_error(e.what());
    return datacap::cli::EXIT_RUNTIME_ERROR;
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
    return datacap::cli::EXIT_RUNTIME_ERROR;
  } catch (const std::exception& e) {
    print_error(e.what());
    return datacap::cli::EXIT_RUNTIME_ERROR;
  }
  return 0;
}
