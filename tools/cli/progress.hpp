// A progress bar on standard error, shown only when standard error is a terminal and the work
// is large; otherwise every call is a no-op (scripts and pipes never see it).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace datacap::cli {

class Progress {
 public:
  // Shown when stderr is a terminal and `total` (bytes; 0 = unknown) is at least `threshold`.
  Progress(std::string label, std::uint64_t total,
           std::uint64_t threshold = std::uint64_t{256} << 20)
      : label_(std::move(label)),
        total_(total),
        enabled_(::isatty(2) == 1 && total >= threshold),
        start_(std::chrono::steady_clock::now()) {}
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() { finish(); }

  void update(std::uint64_t done) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 0.0;
    constexpr int WIDTH = 30;
    const int filled = static_cast<int>(frac * WIDTH);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(WIDTH, '.');
    std::fprintf(stderr, "\r%s [%s] %3d%%  %.2f GiB  %.0f MiB/s ", label_.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), static_cast<double>(done) / (1 << 30),
                 secs > 0 ? static_cast<double>(done) / (1 << 20) / secs : 0.0);
    std::fflush(stderr);
    drawn_ = true;
  }

  void finish() {
    if (drawn_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
      drawn_ = false;
    }
  }

 private:
  std::string label_;
  std::uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace datacap::cli
