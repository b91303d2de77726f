#include "cli/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "datacap/error.hpp"

namespace datacap::cli {
namespace {

// Read by signal handlers: fixed buffers, written only while the signals that read them are
// blocked, so a handler never sees one half-written.
char pending_temp[4096];
char fault_context[4096];
volatile std::sig_atomic_t error_exit = 1;

class BlockSignals {
 public:
  BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_BLOCK, &all, &old_);
  }
  ~BlockSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockSignals(const BlockSignals&) = delete;
  BlockSignals& operator=(const BlockSignals&) = delete;

 private:
  sigset_t old_{};
};

void copy_bounded(char* dst, const std::string& src) {
  const std::size_t n = std::min(src.size(), std::size_t{4095});
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

void write_stderr(const char* s) {
  const std::size_t n = std::strlen(s);
  (void)!::write(2, s, n);
}

void on_terminate(int sig) {
  if (pending_temp[0] != '\0') ::unlink(pending_temp);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void on_fault(int sig) {
  if (pending_temp[0] != '\0') ::unlink(pending_temp);
  write_stderr("datacap: error: ");
  write_stderr(fault_context[0] != '\0' ? fault_context : "input");
  write_stderr(sig == SIGBUS ? ": memory fault (SIGBUS)" : ": memory fault (SIGSEGV)");
  write_stderr(" reading a mapped file: it was truncated or is damaged\n");
  ::_exit(1);
}

void reopen_if_closed(int fd) {
  if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) return;
  // The slot is filled so that no file the command opens lands on it, with something no use can
  // mistake for a stream: the root directory opened O_PATH. Reads and writes on it fail (EBADF)
  // and are reported as on a closed stream, and /dev/stdout or /dev/stdin reopen it as a
  // directory, which is refused — where /dev/null would have swallowed output, or read as an
  // empty input, without a word.
  const int got = ::open("/", O_PATH | O_CLOEXEC);
  if (got >= 0 && got != fd) {
    ::dup2(got, fd);
    ::close(got);
  }
}

}  // namespace

void install_process_guards() {
  for (int fd = 0; fd <= 2; ++fd) reopen_if_closed(fd);
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction terminate {};
  terminate.sa_handler = on_terminate;
  sigfillset(&terminate.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &terminate, nullptr);
  struct sigaction fault {};
  fault.sa_handler = on_fault;
  sigfillset(&fault.sa_mask);
  for (const int sig : {SIGBUS, SIGSEGV}) ::sigaction(sig, &fault, nullptr);
}

void set_pending_temp(const std::string& path) {
  const BlockSignals block;
  copy_bounded(pending_temp, path);
}

void set_fault_context(const std::string& what) {
  const BlockSignals block;
  copy_bounded(fault_context, what);
}

void check_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {
    const int err = errno;
    std::clearerr(stdout);
    throw IoError("<stdout>", std::string("cannot write standard output: ") +
                                  (err != 0 ? std::strerror(err) : "write error"));
  }
}

CLI::Option* add_u64_option(CLI::App& cmd, const std::string& name, std::uint64_t& value,
                            const std::string& help) {
  const std::string flag = name.substr(0, name.find(','));
  return cmd
      .add_option_function<std::string>(
          name,
          [&value, flag](const std::string& text) {
            std::uint64_t v = 0;
            const char* end = text.data() + text.size();
            const auto [ptr, ec] = std::from_chars(text.data(), end, v);
            const bool digits_only =
                !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
            if (!digits_only || ec != std::errc() || ptr != end) {
              throw CLI::ValidationError(
                  flag, "'" + text + "' is not a whole number from 0 to 18446744073709551615");
            }
            value = v;
          },
          help)
      ->type_name("UINT");
}

void check_size_option(std::uint64_t size) {
  constexpr std::uint64_t MAX_SIZE = std::uint64_t{1} << 44;  // 2^32 pages of 4 KiB
  if (size > MAX_SIZE) {
    throw InvalidArgument("--size " + std::to_string(size) + " is beyond 2^32 pages (" +
                          std::to_string(MAX_SIZE) + " bytes)");
  }
}

std::uint64_t default_memory_limit(const std::string& path) {
  struct stat st {};
  std::uint64_t held = 0;
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    held = std::min(static_cast<std::uint64_t>(st.st_size),
                    static_cast<std::uint64_t>(st.st_blocks) * 512);
  }
  return (std::uint64_t{64} << 20) + 64 * held;
}

ArchiveReader open_archive_reader(const std::string& path, std::uint64_t max_memory) {
  return ArchiveReader(path, max_memory != 0 ? max_memory : default_memory_limit(path));
}

OpenedArchive open_archive_copy(const std::string& path, std::uint64_t max_memory) {
  ArchiveOpenOptions options;
  options.verify = ArchiveVerify::full;
  options.access = FileAccess::copy;
  options.max_memory = max_memory != 0 ? max_memory : default_memory_limit(path);
  return open_archive(path, options);
}

int runtime_error_exit() { return error_exit; }
void set_runtime_error_exit(int status) { error_exit = status; }

}  // namespace datacap::cli
