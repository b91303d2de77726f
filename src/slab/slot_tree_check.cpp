#include "slab/slot_tree_check.hpp"

#include <array>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "datacap/merkle.hpp"

namespace datacap::detail {

const char* to_string(TreeRule rule) noexcept {
  switch (rule) {
    case TreeRule::shape:
      return "shape";
    case TreeRule::bounds:
      return "bounds";
    case TreeRule::refcount:
      return "refcount";
    case TreeRule::origin:
      return "origin";
    case TreeRule::node_hash:
      return "node_hash";
    case TreeRule::page_hash:
      return "page_hash";
    case TreeRule::overlay:
      return "overlay";
  }
  return "unknown";
}

TreeInvariantError::TreeInvariantError(TreeRule rule, const std::string& tree, unsigned level,
                                       std::uint64_t page_index, const std::string& what)
    : Error(ErrorKind::integrity, std::string("slot tree invariant (") + to_string(rule) + ") in " +
                                      tree + " at level " + std::to_string(level) + ", page " +
                                      std::to_string(page_index) + ": " + what),
      rule_(rule),
      level_(level),
      page_index_(page_index) {}

namespace {

using Heap = std::array<Hash32, FANOUT>;  // as NodeHashes::h: h[1] root, h[32 + k] above 2k, 2k+1

constexpr std::uint64_t ALL = ~std::uint64_t{0};

std::string bit_text(std::size_t j) { return "slot " + std::to_string(j); }

// The children (bits) under heap entry `entry` (1..63) of a node.
std::uint64_t children_under(std::size_t entry) {
  unsigned heap_level = 0;
  while ((std::size_t{2} << heap_level) <= entry) ++heap_level;
  const std::size_t width = FANOUT >> heap_level;
  const std::size_t first = (entry - (std::size_t{1} << heap_level)) * width;
  const std::uint64_t run = width == FANOUT ? ALL : (std::uint64_t{1} << width) - 1;
  return run << first;
}

std::uint64_t node_span(unsigned level) { return std::uint64_t{1} << (FANOUT_LOG2 * (level + 1)); }

}  // namespace

struct TreeChecker::State {
  struct Seen {
    std::uint64_t first_page;  // where it was first found
    std::uint64_t slots;       // non-null page slots beneath it
  };
  struct Origin {
    std::uint64_t first_page;  // of the first copy found on it
    std::string tree;
  };

  // Per tree being added.
  std::string tree;
  unsigned levels = 0;
  std::uint64_t page_count = 0;
  bool no_empty_nodes = false;

  std::unordered_map<const TreeNode*, Seen> nodes;
  std::unordered_map<const PageNode*, std::pair<std::uint64_t, std::string>> pages;  // first place
  std::unordered_map<const TreeNode*, std::uint64_t> node_refs;  // references the trees hold
  std::unordered_map<const PageNode*, std::uint64_t> page_refs;
  std::unordered_map<const TreeNode*, std::string> node_tree;  // tree named in refcount errors
  std::unordered_map<const TreeNode*, Origin> origins;
  std::unordered_map<const TreeNode*, Heap> naive_heaps[DIGEST_COUNT];
  std::unordered_map<const PageNode*, Hash32> naive_pages[DIGEST_COUNT];

  [[noreturn]] void fail(TreeRule rule, unsigned level, std::uint64_t page_index,
                         const std::string& what) const {
    throw TreeInvariantError(rule, tree, level, page_index, what);
  }

  // ---- naive roots: page_root of the bytes, zero_hash and hash_pair, nothing cached --------

  Hash32 naive_page(const PageNode* page, Digest digest) {
    auto& memo = naive_pages[static_cast<std::size_t>(digest)];
    if (auto it = memo.find(page); it != memo.end()) return it->second;
    Hash32 root{};
    if (page->data == nullptr) {
      root = page->sha256_root.value();  // a Missing page's hash is its root (checked before)
    } else {
      root = page_root(digest, std::span<const std::uint8_t>(page->data, PAGE_SIZE));
    }
    memo.emplace(page, root);
    return root;
  }

  Hash32 naive_child(const TreeNode* node, std::size_t j, Digest digest) {
    const void* c = node->child[j];
    if (node->level == 0)
      return c == nullptr ? Hash32{} : naive_page(static_cast<const PageNode*>(c), digest);
    if (c == nullptr) return zero_hash(digest, FANOUT_LOG2 * node->level);
    return naive_heap(static_cast<const TreeNode*>(c), digest)[1];
  }

  const Heap& naive_heap(const TreeNode* node, Digest digest) {
    auto& memo = naive_heaps[static_cast<std::size_t>(digest)];
    if (auto it = memo.find(node); it != memo.end()) return it->second;
    Heap heap{};
    for (std::size_t k = 0; k < FANOUT / 2; ++k) {
      heap[FANOUT / 2 + k] =
          hash_pair(digest, naive_child(node, 2 * k, digest), naive_child(node, 2 * k + 1, digest));
    }
    for (std::size_t i = FANOUT / 2; i-- > 1;)
      heap[i] = hash_pair(digest, heap[2 * i], heap[2 * i + 1]);
    return memo.emplace(node, heap).first->second;
  }

  // ---- per object, once ---------------------------------------------------------------------

  void check_page(const PageNode* page, std::uint64_t page_index) {
    if (!pages.try_emplace(page, page_index, tree).second) return;
    const std::uint32_t refs = page->refs.load(std::memory_order_relaxed);
    if (refs == 0) fail(TreeRule::refcount, 0, page_index, "page has refs 0");
    Hash32 cached;
    if (page->data == nullptr) {
      if (!page->sha256_root.get(cached))
        fail(TreeRule::page_hash, 0, page_index, "Missing page without its hash");
      return;
    }
    for (std::size_t d = 0; d < DIGEST_COUNT; ++d) {
      const auto digest = static_cast<Digest>(d);
      if (!page->cached_root(digest, cached)) continue;
      const Hash32 naive = naive_page(page, digest);
      if (cached != naive) {
        fail(TreeRule::page_hash, 0, page_index,
             std::string("cached ") + to_string(digest) + " root " + to_hex(cached) +
                 " is not the page root of its bytes " + to_hex(naive));
      }
    }
  }

  void check_origin(const TreeNode* node, std::uint64_t first_page) {
    const TreeNode* origin = node->origin;
    const unsigned level = node->level;
    if (origin->refs.load(std::memory_order_relaxed) == 0)
      fail(TreeRule::refcount, level, first_page, "origin has refs 0");
    if (origin->origin != nullptr)
      fail(TreeRule::origin, level, first_page,
           "the node's origin is itself a copy (origin->origin is set)");
    if (origin->level != level) {
      fail(TreeRule::origin, level, first_page, "origin at level " + std::to_string(origin->level));
    }
    if (node->owned == ALL)
      fail(TreeRule::origin, level, first_page, "owns every slot but keeps its origin");
    for (std::size_t j = 0; j < FANOUT; ++j) {
      if ((node->owned >> j & 1) != 0) continue;
      if (node->child[j] != origin->child[j]) {
        fail(TreeRule::origin, level, first_page + j * (node_span(level) / FANOUT),
             bit_text(j) + " is not owned but differs from the origin's slot");
      }
    }
    ++node_refs[origin];
    node_tree.emplace(origin, tree);
    origins.try_emplace(origin, Origin{first_page, tree});
  }

  void check_hashes(const TreeNode* node, std::uint64_t first_page) {
    const unsigned level = node->level;
    for (std::size_t d = 0; d < DIGEST_COUNT; ++d) {
      const NodeHashes* nh = node->hashes[d].load(std::memory_order_acquire);
      if (nh == nullptr) continue;
      const auto digest = static_cast<Digest>(d);
      const std::string name = to_string(digest);
      const std::uint8_t state = nh->state.load(std::memory_order_acquire);
      const std::uint64_t dirty = nh->dirty.load(std::memory_order_relaxed);
      if (state != NodeHashes::EMPTY && state != NodeHashes::READY) {
        fail(TreeRule::node_hash, level, first_page,
             name + " hashes in state " + std::to_string(state) +
                 " (WRITING: a claim left behind, or a tree hashed while checked)");
      }
      if (state == NodeHashes::READY && dirty != 0) {
        fail(TreeRule::node_hash, level, first_page,
             name + " hashes READY with dirty bits " + std::to_string(dirty));
      }
      if (dirty == ALL) continue;  // nothing cached is relied on yet
      const Heap& naive = naive_heap(node, digest);
      for (std::size_t entry = FANOUT; entry-- > 1;) {  // the lowest broken entry first
        const std::uint64_t under = children_under(entry);
        if ((dirty & under) != 0) continue;
        if (nh->h[entry] != naive[entry]) {
          const auto first = static_cast<unsigned>(__builtin_ctzll(under));
          fail(TreeRule::node_hash, level, first_page,
               name + " h[" + std::to_string(entry) + "] over clean slots " +
                   std::to_string(first) + ".." +
                   std::to_string(first + __builtin_popcountll(under) - 1) + " is " +
                   to_hex(nh->h[entry]) + ", recomputed " + to_hex(naive[entry]));
        }
      }
      if (level == 0) continue;
      for (std::size_t j = 0; j < FANOUT; ++j) {
        const auto* child = static_cast<const TreeNode*>(node->child[j]);
        if (child == nullptr || (dirty >> j & 1) != 0) continue;
        const NodeHashes* ch = child->hashes[d].load(std::memory_order_acquire);
        if (ch == nullptr || ch->state.load(std::memory_order_acquire) != NodeHashes::READY) {
          fail(TreeRule::node_hash, level, first_page + j * (node_span(level) / FANOUT),
               name + " dirty bit of " + bit_text(j) + " is clear but the child's hashes are " +
                   (ch == nullptr ? "absent" : "not READY"));
        }
      }
    }
  }

  void check_node(const TreeNode* node, std::uint64_t first_page) {
    const unsigned level = node->level;
    if (node->refs.load(std::memory_order_relaxed) == 0)
      fail(TreeRule::refcount, level, first_page, "node has refs 0");
    node_tree.emplace(node, tree);
    for (std::size_t j = 0; j < FANOUT; ++j) {
      const void* c = node->child[j];
      if (c == nullptr) continue;
      const bool owned = node->origin == nullptr || (node->owned >> j & 1) != 0;
      if (!owned) continue;  // the origin's reference (counted in finish)
      if (level == 0) {
        ++page_refs[static_cast<const PageNode*>(c)];
      } else {
        ++node_refs[static_cast<const TreeNode*>(c)];
      }
    }
    if (node->origin != nullptr) check_origin(node, first_page);
  }

  // ---- the walk over positions ----------------------------------------------------------------

  std::uint64_t walk(const TreeNode* node, unsigned level, std::uint64_t first_page) {
    if (node->level != level) {
      fail(TreeRule::shape, level, first_page,
           "node has level " + std::to_string(node->level) + " where level " +
               std::to_string(level) + " belongs");
    }
    auto [it, fresh] = nodes.try_emplace(node, Seen{first_page, 0});
    if (!fresh && first_page + node_span(level) <= page_count)
      return it->second.slots;  // shared, in bounds
    if (fresh) check_node(node, first_page);
    const std::uint64_t child_span = node_span(level) / FANOUT;
    std::uint64_t slots = 0;
    for (std::size_t j = 0; j < FANOUT; ++j) {
      const void* c = node->child[j];
      if (c == nullptr) continue;
      const std::uint64_t child_first = first_page + j * child_span;
      if (child_first >= page_count) {
        fail(TreeRule::bounds, level, child_first,
             bit_text(j) + " is not null but covers only pages at or past page_count " +
                 std::to_string(page_count));
      }
      if (level == 0) {
        check_page(static_cast<const PageNode*>(c), child_first);
        ++slots;
      } else {
        slots += walk(static_cast<const TreeNode*>(c), level - 1, child_first);
      }
    }
    if (no_empty_nodes && slots == 0) {
      fail(TreeRule::overlay, level, first_page,
           "node has no children (a merge scans past its child array)");
    }
    // Hashes after the children: a child's own rules are reported before a parent's cached
    // value over it.
    if (fresh) check_hashes(node, first_page);
    nodes[node].slots = slots;
    return slots;
  }
};

TreeChecker::TreeChecker() : state_(std::make_unique<State>()) {}
TreeChecker::~TreeChecker() = default;

std::uint64_t TreeChecker::add_tree(const TreeNode* root, unsigned levels, std::uint64_t page_count,
                                    const std::string& name, bool no_empty_nodes) {
  State& s = *state_;
  s.tree = name;
  s.levels = levels;
  s.page_count = page_count;
  s.no_empty_nodes = no_empty_nodes;
  if (page_count > MAX_PAGE_COUNT) {
    s.fail(TreeRule::shape, 0, 0, "page_count " + std::to_string(page_count) + " exceeds 2^32");
  }
  if (levels != tree_levels(page_count) || levels > MAX_LEVELS) {
    s.fail(TreeRule::shape, levels, 0,
           "levels " + std::to_string(levels) + " for page_count " + std::to_string(page_count) +
               " (expected " + std::to_string(tree_levels(page_count)) + ")");
  }
  if (root == nullptr) return 0;
  if (levels == 0) s.fail(TreeRule::shape, 0, 0, "a tree of no levels has a root");
  ++s.node_refs[root];
  s.node_tree.emplace(root, name);
  return s.walk(root, levels - 1, 0);
}

void TreeChecker::finish() {
  State& s = *state_;
  // An origin (never a copy: checked) holds a reference on each of its children, among them
  // every slot its copies borrow; an origin that was walked itself counted them already. Only
  // the children the walk reached are counted (the others are not checked).
  for (const auto& [origin, where] : s.origins) {
    if (s.nodes.count(origin) != 0) continue;
    for (const void* c : origin->child) {
      if (c == nullptr) continue;
      if (origin->level == 0) {
        const auto* page = static_cast<const PageNode*>(c);
        if (s.pages.count(page) != 0) ++s.page_refs[page];
      } else {
        const auto* node = static_cast<const TreeNode*>(c);
        if (s.nodes.count(node) != 0) ++s.node_refs[node];
      }
    }
  }
  for (const auto& [node, held] : s.node_refs) {
    const std::uint32_t refs = node->refs.load(std::memory_order_relaxed);
    if (refs >= held) continue;
    const auto seen = s.nodes.find(node);
    const auto o = s.origins.find(node);
    const std::uint64_t first_page = seen != s.nodes.end()  ? seen->second.first_page
                                     : o != s.origins.end() ? o->second.first_page
                                                            : 0;
    s.tree = s.node_tree[node];
    s.fail(TreeRule::refcount, node->level, first_page,
           (seen == s.nodes.end() ? "origin" : "node") + std::string(" has refs ") +
               std::to_string(refs) + " but the checked trees hold " + std::to_string(held) +
               " references to it");
  }
  for (const auto& [page, held] : s.page_refs) {
    const std::uint32_t refs = page->refs.load(std::memory_order_relaxed);
    if (refs >= held) continue;
    const auto& [first_page, tree] = s.pages.at(page);
    s.tree = tree;
    s.fail(TreeRule::refcount, 0, first_page,
           "page has refs " + std::to_string(refs) + " but the checked trees hold " +
               std::to_string(held) + " references to it");
  }
}

void check_tree_invariants(const TreeNode* root, unsigned levels, std::uint64_t page_count) {
  TreeChecker checker;
  checker.add_tree(root, levels, page_count, "tree");
  checker.finish();
}

}  // namespace datacap::detail
