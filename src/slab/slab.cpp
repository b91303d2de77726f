#include "datacap/slab.hpp"

#include <utility>

#include "datacap/error.hpp"
#include "slab/slot_tree.hpp"
#include "tree/merkle.hpp"

namespace datacap {

using detail::PageNode;

PageSlab::PageSlab(std::uint64_t content_len) {
  if (content_len % PAGE_SIZE != 0) {
    throw InvalidArgument("PageSlab: content_len " + std::to_string(content_len) +
                          " is not a multiple of PAGE_SIZE (4096)");
  }
  if (content_len / PAGE_SIZE > MAX_PAGE_COUNT) {
    throw OutOfRange("PageSlab: content_len " + std::to_string(content_len) +
                     " exceeds 2^32 pages");
  }
  content_len_ = content_len;
  levels_ = detail::tree_levels(page_count());
}

PageSlab::PageSlab(const PageSlab& other) noexcept
    : content_len_(other.content_len_), levels_(other.levels_), root_(other.root_) {
  detail::tree_retain(root_);
}

PageSlab::PageSlab(PageSlab&& other) noexcept
    : content_len_(other.content_len_), levels_(other.levels_), root_(other.root_) {
  other.root_ = nullptr;
  other.content_len_ = 0;
  other.levels_ = 0;
}

PageSlab& PageSlab::operator=(const PageSlab& other) noexcept {
  detail::tree_retain(other.root_);
  detail::tree_release(root_);
  root_ = other.root_;
  content_len_ = other.content_len_;
  levels_ = other.levels_;
  return *this;
}

PageSlab& PageSlab::operator=(PageSlab&& other) noexcept {
  if (this != &other) {
    detail::tree_release(root_);
    root_ = std::exchange(other.root_, nullptr);
    content_len_ = std::exchange(other.content_len_, 0);
    levels_ = std::exchange(other.levels_, 0);
  }
  return *this;
}

PageSlab::~PageSlab() { detail::tree_release(root_); }

PageSlot PageSlab::page_slot(std::uint64_t page_index) const {
  if (page_index >= page_count()) {
    throw OutOfRange("PageSlab::page_slot: page_index " + std::to_string(page_index) +
                     " >= page_count " + std::to_string(page_count()));
  }
  PageNode* node = detail::tree_get(root_, levels_, page_index);
  return PageNode::share_slot(node);
}

void PageSlab::set_page_slot(std::uint64_t page_index, PageSlot slot) {
  if (page_index >= page_count()) {
    throw OutOfRange("PageSlab::set_page_slot: page_index " + std::to_string(page_index) +
                     " >= page_count " + std::to_string(page_count()));
  }
  PageNode* node = PageNode::node_of(slot);
  if (node != nullptr && !node->is_missing() && detail::is_zero_page(node->data)) {
    slot = PageSlot();  // canonical: zero bytes are Empty in a backing
  }
  // On allocation failure during the path copy the tree keeps its old content (the copies
  // already made are content-equal) and the page is released.
  if (PageNode::node_of(slot) == nullptr) {
    detail::tree_set(root_, levels_, page_index, nullptr);
    return;
  }
  detail::tree_set(root_, levels_, page_index, PageNode::release_slot(slot));
}

void PageSlab::for_each_stored(
    const std::function<void(std::uint32_t, const PageSlot&)>& fn) const {
  detail::tree_for_each(root_, levels_, 0, page_count(), [&](std::uint64_t i, PageNode* node) {
    const PageSlot slot = PageNode::share_slot(node);
    fn(static_cast<std::uint32_t>(i), slot);
  });
}

std::uint64_t PageSlab::stored_page_count() const { return detail::tree_count(root_); }

std::uint64_t PageSlab::metadata_bytes() const noexcept {
  return detail::tree_metadata_bytes(root_);
}

std::uint64_t PageSlab::exclusive_bytes() const noexcept {
  return detail::tree_exclusive_bytes(root_);
}

Hash32 PageSlab::pages_root(Digest digest) const {
  return detail::tree_pages_root(root_, levels_, page_count(), digest);
}

Hash32 PageSlab::root(Digest digest) const {
  return detail::cap_root_of(digest, content_len_, pages_root(digest));
}

}  // namespace datacap
