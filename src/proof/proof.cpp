// Merkle proofs and diffs over the cached hashes of a cap's backing tree.
#include "datacap/proof.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "datacap/error.hpp"
#include "datacap/merkle.hpp"
#include "slab/slot_tree.hpp"

namespace datacap {
namespace {

using detail::SlabAccess;

void require_clean(const DataCap& cap, const char* context) {
  if (!cap.is_clean()) {
    throw DirtyCap(std::string(context) + ": cap has " + std::to_string(cap.dirty_page_count()) +
                   " dirty pages; flush it first");
  }
}

void check_page_index(const char* context, std::uint64_t page_count, std::uint64_t page_index) {
  if (page_index >= page_count) {
    throw OutOfRange(std::string(context) + ": page_index " + std::to_string(page_index) +
                     " >= page_count " + std::to_string(page_count));
  }
}

// The hash at gindex g (≥ 2) of a clean cap's tree: the size root, or a node of the pages tree.
Hash32 node_at_gindex(const DataCap& cap, unsigned depth, std::uint64_t gindex, Digest digest) {
  if (gindex == 2) return size_root(cap.content_len());
  // gindex = 3·2^t + j for a node t levels below the pages root: height depth - t.
  const unsigned below_pages_root = static_cast<unsigned>(63 - __builtin_clzll(gindex)) - 1;
  const std::uint64_t index = gindex - (std::uint64_t{3} << below_pages_root);
  const PageSlab& backing = cap.backing();
  return detail::tree_subtree_root(SlabAccess::root(backing), backing.levels(),
                                   depth - below_pages_root, index, digest);
}

bool valid_size(std::uint64_t content_len) noexcept {
  return content_len % PAGE_SIZE == 0 && content_len / PAGE_SIZE <= MAX_PAGE_COUNT;
}

// Helper gindices, deepest first, for sorted distinct leaf gindices all at one depth.
std::vector<std::uint64_t> helpers_for(std::vector<std::uint64_t> level) {
  std::vector<std::uint64_t> helpers;
  std::vector<std::uint64_t> parents;
  while (!(level.size() == 1 && level[0] == 1)) {
    parents.clear();
    // Within a level, helpers are appended in descending gindex order.
    for (std::size_t k = level.size(); k-- > 0;) {
      const std::uint64_t g = level[k];
      const std::uint64_t sibling = g ^ 1;
      const bool sibling_known = (g & 1) ? (k > 0 && level[k - 1] == sibling)
                                         : (k + 1 < level.size() && level[k + 1] == sibling);
      if (!sibling_known) helpers.push_back(sibling);
      if (parents.empty() || parents.back() != g / 2) parents.push_back(g / 2);
    }
    std::reverse(parents.begin(), parents.end());
    level.swap(parents);
  }
  return helpers;
}

std::vector<std::uint64_t> leaf_gindices(std::uint64_t content_len,
                                         std::span<const std::uint64_t> page_indices,
                                         const char* context) {
  if (page_indices.empty()) throw InvalidArgument(std::string(context) + ": no page indices");
  const std::uint64_t page_count = content_len / PAGE_SIZE;
  std::vector<std::uint64_t> gindices;
  gindices.reserve(page_indices.size());
  for (std::size_t k = 0; k < page_indices.size(); ++k) {
    check_page_index(context, page_count, page_indices[k]);
    if (k > 0 && page_indices[k] <= page_indices[k - 1]) {
      throw InvalidArgument(std::string(context) + ": page_indices[" + std::to_string(k) +
                            "] = " + std::to_string(page_indices[k]) +
                            " is not above its predecessor " + std::to_string(page_indices[k - 1]));
    }
    gindices.push_back(page_gindex(page_count, page_indices[k]));
  }
  return gindices;
}

// Folds leaves (at sorted gindices of one depth) and helpers (in helpers_for order) to the root.
// Returns false when the helpers run out or are left over.
bool fold_multiproof(std::vector<std::uint64_t> level, std::vector<Hash32> values,
                     std::span<const Hash32> helpers, Digest digest, Hash32& root) {
  std::size_t next_helper = 0;
  std::vector<std::uint64_t> parent_level;
  std::vector<Hash32> parent_values;
  while (!(level.size() == 1 && level[0] == 1)) {
    parent_level.clear();
    parent_values.clear();
    for (std::size_t k = level.size(); k-- > 0;) {
      const std::uint64_t g = level[k];
      Hash32 left, right;
      if (g & 1) {
        right = values[k];
        if (k > 0 && level[k - 1] == (g ^ 1)) {
          left = values[--k];
        } else {
          if (next_helper == helpers.size()) return false;
          left = helpers[next_helper++];
        }
      } else {
        left = values[k];
        if (next_helper == helpers.size()) return false;
        right = helpers[next_helper++];
      }
      parent_level.push_back(g / 2);
      parent_values.push_back(hash_pair(digest, left, right));
    }
    std::reverse(parent_level.begin(), parent_level.end());
    std::reverse(parent_values.begin(), parent_values.end());
    level.swap(parent_level);
    values.swap(parent_values);
  }
  if (next_helper != helpers.size()) return false;
  root = values[0];
  return true;
}

}  // namespace

std::uint64_t page_gindex(std::uint64_t page_count, std::uint64_t page_index) {
  check_page_index("page_gindex", page_count, page_index);
  return (std::uint64_t{3} << pages_depth(page_count)) + page_index;
}

PageProof prove_page(const DataCap& cap, std::uint64_t page_index, Digest digest) {
  require_clean(cap, "prove_page");
  check_page_index("prove_page", cap.page_count(), page_index);
  (void)cap.hash_tree_root(digest);  // makes every node's hashes ready
  const unsigned depth = pages_depth(cap.page_count());
  const PageSlab& backing = cap.backing();
  const detail::TreeNode* root = SlabAccess::root(backing);
  PageProof proof;
  proof.content_len = cap.content_len();
  proof.page_index = page_index;
  proof.leaf = detail::tree_subtree_root(root, backing.levels(), 0, page_index, digest);
  proof.branch.reserve(depth + 1);
  for (unsigned height = 0; height < depth; ++height) {
    proof.branch.push_back(detail::tree_subtree_root(root, backing.levels(), height,
                                                     (page_index >> height) ^ 1, digest));
  }
  proof.branch.push_back(size_root(cap.content_len()));
  return proof;
}

bool verify_page_proof(const PageProof& proof, const Hash32& root, Digest digest) noexcept {
  try {
    if (!valid_size(proof.content_len)) return false;
    const std::uint64_t page_count = proof.content_len / PAGE_SIZE;
    if (proof.page_index >= page_count) return false;
    const unsigned depth = pages_depth(page_count);
    if (proof.branch.size() != depth + std::size_t{1}) return false;
    if (proof.branch.back() != size_root(proof.content_len)) return false;
    Hash32 node = proof.leaf;
    for (unsigned height = 0; height < depth; ++height) {
      node = ((proof.page_index >> height) & 1) ? hash_pair(digest, proof.branch[height], node)
                                                : hash_pair(digest, node, proof.branch[height]);
    }
    return hash_pair(digest, proof.branch.back(), node) == root;
  } catch (...) {
    return false;  // an allocation failure or a digest failure: not a proof we can accept
  }
}

std::vector<std::uint64_t> multiproof_helper_gindices(std::uint64_t content_len,
                                                      std::span<const std::uint64_t> page_indices) {
  if (!valid_size(content_len)) {
    throw InvalidArgument("multiproof_helper_gindices: content_len " + std::to_string(content_len) +
                          " is not a page multiple within 2^32 pages");
  }
  return helpers_for(leaf_gindices(content_len, page_indices, "multiproof_helper_gindices"));
}

MultiProof prove_pages(const DataCap& cap, std::span<const std::uint64_t> page_indices,
                       Digest digest) {
  require_clean(cap, "prove_pages");
  const std::vector<std::uint64_t> helper_gindices =
      helpers_for(leaf_gindices(cap.content_len(), page_indices, "prove_pages"));
  (void)cap.hash_tree_root(digest);
  const unsigned depth = pages_depth(cap.page_count());
  const PageSlab& backing = cap.backing();
  MultiProof proof;
  proof.content_len = cap.content_len();
  proof.page_indices.assign(page_indices.begin(), page_indices.end());
  proof.leaves.reserve(page_indices.size());
  for (const std::uint64_t page_index : page_indices) {
    proof.leaves.push_back(detail::tree_subtree_root(SlabAccess::root(backing), backing.levels(), 0,
                                                     page_index, digest));
  }
  proof.helpers.reserve(helper_gindices.size());
  for (const std::uint64_t g : helper_gindices)
    proof.helpers.push_back(node_at_gindex(cap, depth, g, digest));
  return proof;
}

bool verify_multiproof(const MultiProof& proof, const Hash32& root, Digest digest) noexcept {
  try {
    if (!valid_size(proof.content_len) || proof.page_indices.empty() ||
        proof.leaves.size() != proof.page_indices.size()) {
      return false;
    }
    const std::uint64_t page_count = proof.content_len / PAGE_SIZE;
    std::vector<std::uint64_t> gindices;
    gindices.reserve(proof.page_indices.size());
    for (std::size_t k = 0; k < proof.page_indices.size(); ++k) {
      const std::uint64_t page_index = proof.page_indices[k];
      if (page_index >= page_count || (k > 0 && page_index <= proof.page_indices[k - 1]))
        return false;
      gindices.push_back((std::uint64_t{3} << pages_depth(page_count)) + page_index);
    }
    // The size root is the last helper; it must be the size's.
    if (proof.helpers.empty() || proof.helpers.back() != size_root(proof.content_len)) return false;
    Hash32 folded;
    if (!fold_multiproof(std::move(gindices), proof.leaves, proof.helpers, digest, folded))
      return false;
    return folded == root;
  } catch (...) {
    return false;
  }
}

RangeProof prove_range(const DataCap& cap, std::uint64_t offset, std::uint64_t length,
                       Digest digest) {
  require_clean(cap, "prove_range");
  if (length == 0) throw InvalidArgument("prove_range: length is 0");
  if (offset > cap.content_len() || length > cap.content_len() - offset) {
    throw OutOfRange("prove_range: range [" + std::to_string(offset) + ", " +
                     std::to_string(offset) + " + " + std::to_string(length) +
                     ") ends past content_len " + std::to_string(cap.content_len()));
  }
  const std::uint64_t first = offset / PAGE_SIZE;
  const std::uint64_t last = (offset + length - 1) / PAGE_SIZE;
  std::vector<std::uint64_t> pages;
  pages.reserve(last - first + 1);
  for (std::uint64_t p = first; p <= last; ++p) pages.push_back(p);
  RangeProof proof;
  proof.offset = offset;
  proof.length = length;
  proof.page_bytes.resize(pages.size() * PAGE_SIZE);
  cap.copy_into(first * PAGE_SIZE, proof.page_bytes);  // MissingPage for a Missing page
  proof.pages = prove_pages(cap, pages, digest);
  return proof;
}

bool verify_range_proof(const RangeProof& proof, const Hash32& root, Digest digest) noexcept {
  try {
    const MultiProof& pages = proof.pages;
    if (proof.length == 0 || proof.offset > pages.content_len ||
        proof.length > pages.content_len - proof.offset) {
      return false;
    }
    const std::uint64_t first = proof.offset / PAGE_SIZE;
    const std::uint64_t last = (proof.offset + proof.length - 1) / PAGE_SIZE;
    if (pages.page_indices.size() != last - first + 1 ||
        pages.leaves.size() != pages.page_indices.size() ||
        proof.page_bytes.size() != pages.page_indices.size() * PAGE_SIZE) {
      return false;
    }
    for (std::size_t k = 0; k < pages.page_indices.size(); ++k) {
      if (pages.page_indices[k] != first + k) return false;
      const std::span<const std::uint8_t> bytes(proof.page_bytes.data() + k * PAGE_SIZE, PAGE_SIZE);
      if (pages.leaves[k] == Hash32{}) {  // Empty: the bytes must be zeros
        if (std::any_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b != 0; }))
          return false;
      } else if (page_root(digest, bytes) != pages.leaves[k]) {
        return false;
      }
    }
    return verify_multiproof(pages, root, digest);
  } catch (...) {
    return false;
  }
}

std::vector<std::uint64_t> diff_pages(const DataCap& a, const DataCap& b, Digest digest) {
  require_clean(a, "diff_pages");
  require_clean(b, "diff_pages");
  (void)a.hash_tree_root(digest);
  (void)b.hash_tree_root(digest);
  std::vector<std::uint64_t> out;
  detail::tree_diff(SlabAccess::root(a.backing()), a.backing().levels(),
                    SlabAccess::root(b.backing()), b.backing().levels(),
                    std::max(a.page_count(), b.page_count()), digest, out);
  return out;
}

}  // namespace datacap
