#include "tree/merkle.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "common/little_endian.hpp"
#include "common/thread_pool.hpp"
#include "datacap/error.hpp"
#include "hash/digest.hpp"

namespace datacap {
namespace {

using ZeroTable = std::array<Hash32, MAX_ZERO_HEIGHT + 1>;

ZeroTable make_zero_table(Digest digest) {
  ZeroTable table{};
  for (unsigned k = 0; k < MAX_ZERO_HEIGHT; ++k) {
    table[k + 1] = hash_pair(digest, table[k], table[k]);
  }
  return table;
}

const ZeroTable& zero_table(Digest digest) {
  // Function-local statics: initialized once, thread-safe, before any use.
  static const ZeroTable sha = make_zero_table(Digest::sha256);
  static const ZeroTable blake = make_zero_table(Digest::blake2b256);
  return digest == Digest::sha256 ? sha : blake;
}

}  // namespace

namespace detail {

void fold_levels(Digest digest, Hash32* nodes, std::size_t count, unsigned height,
                 unsigned levels) {
  // Work in blocks of BLOCK pairs: gather the pairs that need hashing, hash them in one call,
  // scatter the parents. Parent p lands at index p, which is never ahead of the inputs still
  // to be read (2p, 2p+1), so the fold is safe in place.
  constexpr std::size_t BLOCK = 64;
  alignas(64) std::uint8_t batch[BLOCK * 64];
  std::size_t batch_index[BLOCK];
  const ZeroTable& zeros = zero_table(digest);
  for (unsigned level = 0; level < levels; ++level, ++height, count /= 2) {
    const Hash32& z = zeros[height];
    const std::size_t pairs = count / 2;
    for (std::size_t base = 0; base < pairs; base += BLOCK) {
      const std::size_t end = base + BLOCK < pairs ? base + BLOCK : pairs;
      std::size_t n = 0;
      for (std::size_t p = base; p < end; ++p) {
        const Hash32& left = nodes[2 * p];
        const Hash32& right = nodes[2 * p + 1];
        if (left == z && right == z) {
          nodes[p] = zeros[height + 1];
          continue;
        }
        std::memcpy(batch + 64 * n, left.data(), 32);
        std::memcpy(batch + 64 * n + 32, right.data(), 32);
        batch_index[n++] = p;
      }
      hash_pairs(digest, batch, batch, n);
      for (std::size_t j = 0; j < n; ++j)
        std::memcpy(nodes[batch_index[j]].data(), batch + 32 * j, 32);
    }
  }
}

void page_roots(Digest digest, const std::uint8_t* const* pages, std::size_t count, Hash32* out) {
  // Level 0 of a page is its own bytes (64 pairs); from there on, the hashes of a batch of pages
  // are packed level by level in one buffer, page after page, so that each level is a single
  // hash_pairs call: 16 pages give 16 pairs even on the top level.
  constexpr std::size_t BATCH = 16;
  constexpr std::size_t HALF = PAGE_CHUNKS / 2;  // 64 hashes per page after level 0
  alignas(64) std::uint8_t level[BATCH * HALF * 32];
  for (std::size_t base = 0; base < count; base += BATCH) {
    const std::size_t n = std::min(BATCH, count - base);
    for (std::size_t p = 0; p < n; ++p)
      hash_pairs(digest, level + p * HALF * 32, pages[base + p], HALF);
    for (std::size_t width = HALF; width > 1; width /= 2) {
      // n pages × width hashes → n pages × width/2 hashes, in place.
      hash_pairs(digest, level, level, n * width / 2);
    }
    std::memcpy(out + base, level, n * 32);
  }
}

Hash32 page_root_of(Digest digest, const std::uint8_t* page) {
  Hash32 root;
  page_roots(digest, &page, 1, &root);
  return root;
}

bool is_zero_page(const std::uint8_t* page) noexcept {
  // Word-wise OR: the compiler vectorizes this loop; early exit per 256 bytes.
  const auto* words = reinterpret_cast<const std::uint64_t*>(page);
  for (std::size_t i = 0; i < PAGE_SIZE / 8; i += 32) {
    std::uint64_t acc = 0;
    for (std::size_t j = 0; j < 32; ++j) acc |= words[i + j];
    if (acc != 0) return false;
  }
  return true;
}

Hash32 cap_root_of(Digest digest, std::uint64_t content_len, const Hash32& pages_root) {
  return hash_pair(digest, size_root(content_len), pages_root);
}

}  // namespace detail

const Hash32& zero_hash(Digest digest, unsigned height) {
  if (height > MAX_ZERO_HEIGHT) {
    throw OutOfRange("zero_hash: height " + std::to_string(height) + " > " +
                     std::to_string(MAX_ZERO_HEIGHT));
  }
  return zero_table(digest)[height];
}

Hash32 page_root(Digest digest, std::span<const std::uint8_t> bytes) {
  if (bytes.size() > PAGE_SIZE) {
    throw OutOfRange("page_root: content of " + std::to_string(bytes.size()) +
                     " bytes is longer than a page (4096)");
  }
  alignas(64) std::uint8_t page[PAGE_SIZE] = {};
  if (!bytes.empty()) std::memcpy(page, bytes.data(), bytes.size());
  return detail::page_root_of(digest, page);
}

unsigned pages_depth(std::uint64_t page_count) noexcept {
  unsigned depth = 0;
  while (depth < 64 && (std::uint64_t{1} << depth) < page_count) ++depth;
  return depth;
}

Hash32 merkleize(Digest digest, std::span<const Hash32> chunks, std::uint64_t limit) {
  if (limit == 0) throw InvalidArgument("merkleize: limit must be at least 1");
  if (chunks.size() > limit) {
    throw InvalidArgument("merkleize: " + std::to_string(chunks.size()) + " chunks exceed limit " +
                          std::to_string(limit));
  }
  // Fold the chunks padded to the next power of two, then climb with zero subtrees: the
  // padding costs O(depth) hashes, never 2^depth.
  const unsigned depth = pages_depth(limit);
  if (chunks.empty()) return zero_hash(digest, depth);
  std::size_t width = 1;
  unsigned levels = 0;
  while (width < chunks.size()) {
    width *= 2;
    ++levels;
  }
  std::vector<Hash32> nodes(width, Hash32{});
  std::copy(chunks.begin(), chunks.end(), nodes.begin());
  detail::fold_levels(digest, nodes.data(), width, 0, levels);
  Hash32 root = nodes[0];
  for (unsigned h = levels; h < depth; ++h) root = hash_pair(digest, root, zero_hash(digest, h));
  return root;
}

Hash32 size_root(std::uint64_t size) {
  Hash32 out{};
  detail::put_le64(out.data(), size);
  return out;
}

// ---- CapRootBuilder ----------------------------------------------------------------------

CapRootBuilder::CapRootBuilder(Digest digest) : digest_(digest) {}

void CapRootBuilder::push(unsigned height, const Hash32& root) {
  Hash32 node = root;
  while (!stack_.empty() && stack_.back().height == height) {
    const Hash32& left = stack_.back().root;
    const Hash32& z = zero_hash(digest_, height);
    node =
        (left == z && node == z) ? zero_hash(digest_, height + 1) : hash_pair(digest_, left, node);
    stack_.pop_back();
    ++height;
  }
  stack_.push_back(Subtree{height, node});
}

void CapRootBuilder::append_page_root(const Hash32& root) {
  if (page_count_ >= MAX_PAGE_COUNT) {
    throw OutOfRange("CapRootBuilder: more than 2^32 pages");
  }
  push(0, root);
  ++page_count_;
}

void CapRootBuilder::append_page(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > PAGE_SIZE) {
    throw OutOfRange("CapRootBuilder: page of " + std::to_string(bytes.size()) +
                     " bytes is longer than a page (4096)");
  }
  alignas(64) std::uint8_t page[PAGE_SIZE] = {};
  if (!bytes.empty()) std::memcpy(page, bytes.data(), bytes.size());
  append_page_root(detail::is_zero_page(page) ? Hash32{} : detail::page_root_of(digest_, page));
}

void CapRootBuilder::append_pages(std::span<const std::uint8_t> bytes) {
  const std::size_t whole = bytes.size() / PAGE_SIZE;
  const std::size_t count = whole + (bytes.size() % PAGE_SIZE != 0 ? 1 : 0);
  if (count > MAX_PAGE_COUNT - page_count_)
    throw OutOfRange("CapRootBuilder: more than 2^32 pages");
  // Roots of the non-zero whole pages, batched (and split across the pool when many); zero
  // pages are Empty leaves and cost nothing.
  std::vector<Hash32> roots(whole, Hash32{});
  std::vector<const std::uint8_t*> data;
  std::vector<std::size_t> where;
  for (std::size_t i = 0; i < whole; ++i) {
    const std::uint8_t* page = bytes.data() + i * PAGE_SIZE;
    if (detail::is_zero_page(page)) continue;
    data.push_back(page);
    where.push_back(i);
  }
  std::vector<Hash32> hashed(data.size());
  constexpr std::size_t TASK = 64;
  const std::size_t tasks = (data.size() + TASK - 1) / TASK;
  const Digest digest = digest_;
  detail::parallel_for(tasks, [&](std::size_t t) {
    const std::size_t begin = t * TASK, end = std::min(data.size(), begin + TASK);
    detail::page_roots(digest, data.data() + begin, end - begin, hashed.data() + begin);
  });
  for (std::size_t k = 0; k < where.size(); ++k) roots[where[k]] = hashed[k];
  for (const Hash32& root : roots) append_page_root(root);
  if (whole < count) append_page(bytes.subspan(whole * PAGE_SIZE));
}

void CapRootBuilder::append_zero_pages(std::uint64_t count) {
  if (count > MAX_PAGE_COUNT - page_count_) {
    throw OutOfRange("CapRootBuilder: more than 2^32 pages");
  }
  // Push the largest aligned zero subtree that fits, repeatedly: O(log count) pushes.
  while (count > 0) {
    unsigned height = 0;
    while (height < 32 && (page_count_ & ((std::uint64_t{1} << (height + 1)) - 1)) == 0 &&
           (std::uint64_t{1} << (height + 1)) <= count) {
      ++height;
    }
    push(height, zero_hash(digest_, height));
    page_count_ += std::uint64_t{1} << height;
    count -= std::uint64_t{1} << height;
  }
}

Hash32 CapRootBuilder::finish(std::uint64_t size) {
  // Round up to a page, at least one page, and at least the pages appended.
  std::uint64_t pages = size / PAGE_SIZE + (size % PAGE_SIZE != 0 ? 1 : 0);
  if (pages < page_count_) pages = page_count_;
  if (pages == 0) pages = 1;
  if (pages > MAX_PAGE_COUNT) {
    throw OutOfRange("CapRootBuilder: size " + std::to_string(size) + " exceeds 2^32 pages");
  }
  const unsigned depth = pages_depth(pages);
  append_zero_pages((std::uint64_t{1} << depth) - page_count_);
  const Hash32 pages_root = stack_.back().root;
  stack_.clear();
  page_count_ = 0;
  return detail::cap_root_of(digest_, pages * PAGE_SIZE, pages_root);
}

}  // namespace datacap
