#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "datacap/error.hpp"
#include "page/page_node.hpp"
#include "page/page_pool.hpp"
#include "tree/merkle.hpp"

namespace datacap {
namespace detail {
namespace {

std::atomic<std::uint64_t> g_live_pages{0};

alignas(PAGE_SIZE) const std::uint8_t g_zero_page[PAGE_SIZE] = {};

}  // namespace

PageNode* PageNode::allocate() {
  std::uint8_t* bytes = allocate_page_memory();
  PageNode* node;
  try {
    node = new PageNode();
  } catch (...) {
    release_page_memory(bytes);
    throw;
  }
  node->data = bytes;
  g_live_pages.fetch_add(1, std::memory_order_relaxed);
  return node;
}

PageNode* PageNode::copy_of(const std::uint8_t* bytes, std::size_t len) {
  PageNode* node = allocate();
  if (len > 0) std::memcpy(node->data, bytes, len);
  if (len < PAGE_SIZE) std::memset(node->data + len, 0, PAGE_SIZE - len);
  return node;
}

PageNode* PageNode::borrowed(MappedFile* file, const std::uint8_t* bytes, bool retain_file) {
  auto* node = new PageNode();
  node->data = const_cast<std::uint8_t*>(bytes);  // never written: writable() is false
  node->owner = file;
  if (retain_file) file->retain();
  return node;
}

PageNode* PageNode::missing(const Hash32& hash) {
  auto* node = new PageNode();
  node->sha256_root.set(hash);
  return node;
}

bool PageNode::cached_root(Digest digest, Hash32& out) const noexcept {
  if (digest == Digest::sha256 || data == nullptr) return sha256_root.get(out);
  const Hash32* h = blake2b_root.load(std::memory_order_acquire);
  if (h == nullptr) return false;
  out = *h;
  return true;
}

void PageNode::publish_root(Digest digest, const Hash32& root) {
  if (digest == Digest::sha256) {
    sha256_root.publish(root);
    return;
  }
  auto* fresh = new Hash32(root);
  Hash32* expected = nullptr;
  if (!blake2b_root.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel))
    delete fresh;
}

void PageNode::invalidate_roots() noexcept {
  sha256_root.reset();
  delete blake2b_root.exchange(nullptr, std::memory_order_relaxed);
}

Hash32 PageNode::root(Digest digest) {
  Hash32 h;
  if (cached_root(digest, h)) return h;
  h = page_root_of(digest, data);
  check_borrowed_root(digest, h);
  publish_root(digest, h);
  return h;
}

void PageNode::destroy() noexcept {
  delete blake2b_root.load(std::memory_order_relaxed);
  if (owner != nullptr) {
    owner->release();
  } else if (data != nullptr) {
    release_page_memory(data);
    g_live_pages.fetch_sub(1, std::memory_order_relaxed);
  }
  delete this;
}

}  // namespace detail

using detail::PageNode;

// ---- PageRef ------------------------------------------------------------------------------

PageRef::PageRef(const PageRef& other) noexcept : node_(other.node_) {
  if (node_) node_->retain();
}
PageRef& PageRef::operator=(const PageRef& other) noexcept {
  if (other.node_) other.node_->retain();
  if (node_) node_->release();
  node_ = other.node_;
  return *this;
}
PageRef& PageRef::operator=(PageRef&& other) noexcept {
  if (this != &other) {
    if (node_) node_->release();
    node_ = other.node_;
    other.node_ = nullptr;
  }
  return *this;
}
PageRef::~PageRef() {
  if (node_) node_->release();
}

PageRef PageRef::copy_of(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > PAGE_SIZE) {
    throw OutOfRange("PageRef::copy_of: content of " + std::to_string(bytes.size()) +
                     " bytes is longer than a page (4096)");
  }
  return PageRef(PageNode::copy_of(bytes.data(), bytes.size()));
}

const std::uint8_t* PageRef::data() const noexcept { return node_->data; }
Hash32 PageRef::root(Digest digest) const { return node_->root(digest); }
bool PageRef::is_zero() const noexcept { return detail::is_zero_page(node_->data); }
std::uint32_t PageRef::use_count() const noexcept {
  return node_ ? node_->refs.load(std::memory_order_relaxed) : 0;
}

// ---- PageSlot -----------------------------------------------------------------------------

PageSlot::PageSlot(const PageSlot& other) noexcept : node_(other.node_) {
  if (node_) node_->retain();
}
PageSlot& PageSlot::operator=(const PageSlot& other) noexcept {
  if (other.node_) other.node_->retain();
  if (node_) node_->release();
  node_ = other.node_;
  return *this;
}
PageSlot& PageSlot::operator=(PageSlot&& other) noexcept {
  if (this != &other) {
    if (node_) node_->release();
    node_ = other.node_;
    other.node_ = nullptr;
  }
  return *this;
}
PageSlot::~PageSlot() {
  if (node_) node_->release();
}

PageSlot PageSlot::loaded(PageRef page) noexcept {
  PageNode* n = page.node_;
  page.node_ = nullptr;
  return PageSlot(n);
}

PageSlot PageSlot::missing(const Hash32& hash) { return PageSlot(PageNode::missing(hash)); }

PageSlot::Kind PageSlot::kind() const noexcept {
  if (node_ == nullptr) return Kind::empty;
  return node_->is_missing() ? Kind::missing : Kind::loaded;
}

PageRef PageSlot::page() const {
  if (kind() != Kind::loaded) {
    throw InvalidArgument(std::string("PageSlot::page: slot is ") + to_string(kind()) +
                          ", not Loaded");
  }
  node_->retain();
  return PageRef(node_);
}

const Hash32& PageSlot::missing_hash() const {
  if (kind() != Kind::missing) {
    throw InvalidArgument(std::string("PageSlot::missing_hash: slot is ") + to_string(kind()) +
                          ", not Missing");
  }
  return node_->missing_hash();
}

Hash32 PageSlot::root(Digest digest) const { return detail::slot_root(node_, digest); }

bool operator==(const PageSlot& a, const PageSlot& b) noexcept {
  if (a.node_ == b.node_) return true;
  if (a.kind() != b.kind()) return false;
  if (a.kind() == PageSlot::Kind::missing) {
    return a.node_->missing_hash() == b.node_->missing_hash();
  }
  return std::memcmp(a.node_->data, b.node_->data, PAGE_SIZE) == 0;
}

const char* to_string(PageSlot::Kind kind) noexcept {
  switch (kind) {
    case PageSlot::Kind::empty:
      return "Empty";
    case PageSlot::Kind::loaded:
      return "Loaded";
    case PageSlot::Kind::missing:
      return "Missing";
  }
  return "?";
}

const std::uint8_t* zero_page() noexcept { return detail::g_zero_page; }

std::uint64_t live_page_count() noexcept {
  return detail::g_live_pages.load(std::memory_order_relaxed);
}

}  // namespace datacap
