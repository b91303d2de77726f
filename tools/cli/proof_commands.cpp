// datacap proof FILE --page I [--size BYTES]   JSON proof of one page against the cap root
// datacap verify-proof PROOF.json              exit 0 iff the proof holds for its root
// datacap diff A B                             differing page indices, one per line
//
// FILE, A and B are raw files (mapped, not copied: as from_bytes_sized(file, --size)) or
// snapshot archives (recognized by their magic; verified page by page as they are hashed).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/commands.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

DataCap open_input(const std::string& path, std::uint64_t size) {
  if (is_archive_file(path)) {
    DataCap cap = open_archive(path, ArchiveVerify::structure).cap.flush();
    if (size > cap.content_len()) {
      throw InvalidArgument(path + ": --size cannot grow an archived cap (" + std::to_string(cap.content_len()) + " bytes)");
    }
    return cap;
  }
  return map_raw_file(path, size);
}

nlohmann::ordered_json proof_json(const Hash32& root, const PageProof& proof) {
  const std::uint64_t page_count = proof.content_len / PAGE_SIZE;
  nlohmann::ordered_json branch = nlohmann::ordered_json::array();
  for (const Hash32& h : proof.branch) branch.push_back(to_hex(h));
  return nlohmann::ordered_json{{"root", to_hex(root)},
                        {"size", proof.content_len},
                        {"depth", pages_depth(page_count)},
                        {"page_index", proof.page_index},
                        {"gindex", page_gindex(page_count, proof.page_index)},
                        {"leaf", to_hex(proof.leaf)},
                        {"branch", std::move(branch)}};
}

// Reads a field of the proof JSON, naming it in the error.
template <typename T>
T field(const nlohmann::json& j, const char* name, const std::string& path) {
  if (!j.contains(name)) throw DecodeError(path + ": " + name, 0, "missing field");
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw DecodeError(path + ": " + name, 0, std::string("wrong type: ") + e.what());
  }
}

Hash32 hex_field(const std::string& text, const std::string& where) {
  std::string_view hex = text;
  if (hex.size() == 66 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) hex.remove_prefix(2);
  try {
    return hash_from_hex(hex);
  } catch (const InvalidArgument&) {
    throw DecodeError(where, 0, "not 64 hex characters: '" + text + "'");
  }
}

}  // namespace

void add_proof_commands(CLI::App& app) {
  {
    struct Options {
      std::string path;
      std::uint64_t page = 0;
      std::uint64_t size = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand("proof", "Print a JSON merkle proof of one page of FILE against its cap root");
    cmd->add_option("FILE", o->path, "raw file or snapshot archive")->required();
    cmd->add_option("--page", o->page, "page index")->required();
    cmd->add_option("--size", o->size, "logical size in bytes (raw files; at least the file's length)");
    cmd->callback([o] {
      const DataCap cap = open_input(o->path, o->size);
      const PageProof proof = prove_page(cap, o->page);
      std::printf("%s\n", proof_json(cap.hash_tree_root(), proof).dump().c_str());
    });
  }
  {
    auto path = std::make_shared<std::string>();
    auto trusted = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("verify-proof", "Check a JSON page proof; exit 0 iff it holds for its root");
    cmd->add_option("PROOF", *path, "proof file as printed by 'datacap proof'; '-' reads standard input")->required();
    cmd->add_option("--root", *trusted, "the cap root you trust (default: the proof's own \"root\")");
    cmd->callback([path, trusted] {
      std::stringstream text;
      if (*path == "-") {
        text << std::cin.rdbuf();
      } else {
        std::ifstream in(*path, std::ios::binary);
        if (!in) throw IoError(*path, "cannot open");
        text << in.rdbuf();
      }
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(text.str());
      } catch (const nlohmann::json::parse_error& e) {
        throw DecodeError(*path, e.byte, std::string("not JSON: ") + e.what());
      }
      if (!j.is_object()) throw DecodeError(*path, 0, "not a JSON object");
      PageProof proof;
      const Hash32 root = hex_field(field<std::string>(j, "root", *path), *path + ": root");
      proof.content_len = field<std::uint64_t>(j, "size", *path);
      proof.page_index = field<std::uint64_t>(j, "page_index", *path);
      proof.leaf = hex_field(field<std::string>(j, "leaf", *path), *path + ": leaf");
      const auto branch = field<std::vector<std::string>>(j, "branch", *path);
      for (std::size_t k = 0; k < branch.size(); ++k) {
        proof.branch.push_back(hex_field(branch[k], *path + ": branch[" + std::to_string(k) + "]"));
      }
      const auto depth = field<std::uint64_t>(j, "depth", *path);
      const auto gindex = field<std::uint64_t>(j, "gindex", *path);
      // The depth and gindex are implied by size and page_index; a proof that states others is
      // inconsistent, whatever its hashes.
      std::string why;
      const bool sized = proof.content_len % PAGE_SIZE == 0 && proof.content_len / PAGE_SIZE <= MAX_PAGE_COUNT &&
                         proof.content_len > 0;
      if (!trusted->empty() && hash_from_hex(*trusted) != root) {
        why = "the proof is for root " + to_hex(root) + ", not " + *trusted;
      } else if (!sized) {
        why = "size " + std::to_string(proof.content_len) + " is not a whole number of pages (1 to 2^32)";
      } else if (proof.page_index >= proof.content_len / PAGE_SIZE) {
        why = "page_index " + std::to_string(proof.page_index) + " is past the last page";
      } else if (depth != pages_depth(proof.content_len / PAGE_SIZE)) {
        why = "depth " + std::to_string(depth) + " is not the depth of a " + std::to_string(proof.content_len) + "-byte cap";
      } else if (gindex != page_gindex(proof.content_len / PAGE_SIZE, proof.page_index)) {
        why = "gindex " + std::to_string(gindex) + " is not page " + std::to_string(proof.page_index) + "'s";
      } else if (!verify_page_proof(proof, root)) {
        why = "the branch does not fold to the root";
      }
      if (!why.empty()) {
        std::printf("invalid: %s\n", why.c_str());
        throw std::runtime_error("proof is invalid: " + why);
      }
      std::printf("valid: page %llu of %s\n", static_cast<unsigned long long>(proof.page_index), to_hex(root).c_str());
    });
  }
  {
    struct Options {
      std::string a, b;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "diff", "Print the page indices at which two caps differ, one per line (a size line first if sizes differ)");
    cmd->add_option("A", o->a, "raw file or snapshot archive")->required();
    cmd->add_option("B", o->b, "raw file or snapshot archive")->required();
    cmd->callback([o] {
      const DataCap a = open_input(o->a, 0);
      const DataCap b = open_input(o->b, 0);
      if (a.content_len() != b.content_len()) {
        std::printf("size %llu %llu\n", static_cast<unsigned long long>(a.content_len()),
                    static_cast<unsigned long long>(b.content_len()));
      }
      std::string out;
      for (const std::uint64_t p : diff_pages(a, b)) {
        out += std::to_string(p);
        out += '\n';
        if (out.size() > (1 << 16)) {
          std::fputs(out.c_str(), stdout);
          out.clear();
        }
      }
      std::fputs(out.c_str(), stdout);
    });
  }
}

}  // namespace datacap::cli
