// Running the real datacap binary from tests: exit status, standard output and standard error.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {

struct CliRun {
  int status;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// Runs `datacap ARGS` through the shell (ARGS may redirect); captures stdout and stderr.
inline CliRun run(const std::string& args) {
  const std::string err_path =
      ::testing::TempDir() + "datacap_cli_err_" + std::to_string(::getpid()) + ".txt";
  const std::string cmd = std::string(DATACAP_CLI_PATH) + " " + args + " 2>" + err_path;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  std::string err;
  {
    std::ifstream err_file(err_path);
    err.assign(std::istreambuf_iterator<char>(err_file), {});
  }
  std::remove(err_path.c_str());
  return CliRun{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out, err};
}

}  // namespace datacap::testing
#endif
