// Locating and reading the SPEC's known-answer vectors (../shared/vectors beside the checkout,
// or $DATACAP_VECTORS).
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace datacap::testing {

inline std::string vectors_dir() {
  if (const char* env = std::getenv("DATACAP_VECTORS")) return env;
  return DATACAP_VECTORS_DIR;
}

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

struct ManifestRow {
  std::string file;
  std::uint64_t size_arg;
  std::string sha256_root;
  std::string blake2b256_root;
};

inline std::vector<ManifestRow> read_manifest() {
  std::ifstream in(vectors_dir() + "/MANIFEST.tsv");
  if (!in) throw std::runtime_error("cannot open " + vectors_dir() + "/MANIFEST.tsv");
  std::vector<ManifestRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    ManifestRow row;
    std::string size;
    std::getline(fields, row.file, '\t');
    std::getline(fields, size, '\t');
    std::getline(fields, row.sha256_root, '\t');
    std::getline(fields, row.blake2b256_root, '\t');
    row.size_arg = std::stoull(size);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace datacap::testing
