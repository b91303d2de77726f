#include "support/naive_model.hpp"

#include <blake2.h>
#include <openssl/evp.h>

#include <algorithm>
#include <stdexcept>

namespace datacap::testing {

Hash32 naive_digest(Digest digest, const Bytes& bytes) {
  Hash32 out{};
  if (digest == Digest::sha256) {
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("EVP_Digest failed");
    }
  } else {
    if (blake2b(out.data(), bytes.data(), nullptr, 32, bytes.size(), 0) != 0) {
      throw std::runtime_error("blake2b failed");
    }
  }
  return out;
}

Hash32 naive_merkleize(Digest digest, std::vector<Hash32> chunks, std::uint64_t limit) {
  std::uint64_t width = 1;
  while (width < limit) width *= 2;
  chunks.resize(width, Hash32{});
  while (chunks.size() > 1) {
    std::vector<Hash32> up;
    for (std::size_t i = 0; i < chunks.size(); i += 2) {
      Bytes pair(chunks[i].begin(), chunks[i].end());
      pair.insert(pair.end(), chunks[i + 1].begin(), chunks[i + 1].end());
      up.push_back(naive_digest(digest, pair));
    }
    chunks = up;
  }
  return chunks[0];
}

Hash32 naive_page_root(Digest digest, const Bytes& page) {
  // Memoized by content: the model hashes the same few pages over and over.
  static std::map<std::pair<Digest, Bytes>, Hash32> memo;
  auto key = std::make_pair(digest, page);
  if (auto it = memo.find(key); it != memo.end()) return it->second;
  std::vector<Hash32> chunks(128);
  for (std::size_t i = 0; i < 128; ++i) std::copy_n(page.begin() + 32 * i, 32, chunks[i].begin());
  const Hash32 root = naive_merkleize(digest, chunks, 128);
  if (memo.size() > 100000) memo.clear();
  memo.emplace(std::move(key), root);
  return root;
}

namespace {
bool is_zero(const Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
}
Bytes padded(const Bytes& content) {
  Bytes page(content);
  page.resize(PAGE_SIZE, 0);
  return page;
}
}  // namespace

std::optional<NaiveSlot> NaiveCap::effective(std::uint64_t page) const {
  if (auto it = overlay.find(page); it != overlay.end()) return it->second;
  if (auto it = backing.find(page); it != backing.end()) return it->second;
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::write(std::uint64_t off, const Bytes& bytes) {
  if (off > size || bytes.size() > size - off) return ErrorKind::out_of_range;
  if (bytes.empty()) return std::nullopt;
  const std::uint64_t end = off + bytes.size();
  for (std::uint64_t p = off / PAGE_SIZE; p * PAGE_SIZE < end; ++p) {
    const bool full = off <= p * PAGE_SIZE && end >= (p + 1) * PAGE_SIZE;
    auto e = effective(p);
    if (!full && e && e->missing) return ErrorKind::missing_page;
  }
  for (std::uint64_t p = off / PAGE_SIZE; p * PAGE_SIZE < end; ++p) {
    auto e = effective(p);
    Bytes page = (e && !e->missing) ? e->bytes : Bytes(PAGE_SIZE, 0);
    for (std::uint64_t a = std::max(off, p * PAGE_SIZE); a < std::min(end, (p + 1) * PAGE_SIZE);
         ++a) {
      page[a - p * PAGE_SIZE] = bytes[a - off];
    }
    overlay[p] = NaiveSlot{false, page, {}};
  }
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::write_page(std::uint64_t off, const Bytes& content) {
  if (off >= size || content.size() > PAGE_SIZE) return ErrorKind::out_of_range;
  overlay[off / PAGE_SIZE] = NaiveSlot{false, padded(content), {}};
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::put_page(std::uint64_t off, const Bytes& content) {
  if (off >= size || content.size() > PAGE_SIZE) return ErrorKind::out_of_range;
  if (is_zero(content)) {
    backing.erase(off / PAGE_SIZE);
  } else {
    backing[off / PAGE_SIZE] = NaiveSlot{false, padded(content), {}};
  }
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::insert_overlay_page(std::uint64_t page,
                                                       std::optional<NaiveSlot> slot) {
  if (page >= page_count()) return ErrorKind::out_of_range;
  if (slot) {
    overlay[page] = *slot;
  } else {
    overlay.erase(page);
  }
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::place_shared(std::uint64_t dst_off, const NaiveCap& src_in) {
  if (dst_off % PAGE_SIZE != 0) return ErrorKind::invalid_argument;
  const NaiveCap src = src_in;
  for (std::uint64_t i = 0; i < src.page_count(); ++i) {
    const std::uint64_t d = dst_off / PAGE_SIZE + i;
    if (d >= page_count()) break;
    auto e = src.effective(i);
    if (!e || (!e->missing && is_zero(e->bytes))) {
      backing.erase(d);
    } else {
      backing[d] = *e;
    }
  }
  return std::nullopt;
}

std::optional<ErrorKind> NaiveCap::copy_into(std::uint64_t start, Bytes& out) const {
  if (start > size || out.size() > size - start) return ErrorKind::out_of_range;
  for (std::size_t k = 0; k < out.size(); ++k) {
    auto e = effective((start + k) / PAGE_SIZE);
    if (e && e->missing) return ErrorKind::missing_page;
    out[k] = e ? e->bytes[(start + k) % PAGE_SIZE] : 0;
  }
  return std::nullopt;
}

void NaiveCap::flush() {
  for (auto& [p, s] : overlay) {
    if (!s.missing && is_zero(s.bytes)) {
      backing.erase(p);
    } else {
      backing[p] = s;
    }
  }
  overlay.clear();
}

std::optional<Hash32> NaiveCap::root(Digest digest) const {
  if (!overlay.empty()) return std::nullopt;
  std::vector<Hash32> leaves(page_count(), Hash32{});
  for (const auto& [p, s] : backing) {
    leaves[p] = s.missing ? s.hash : naive_page_root(digest, s.bytes);
  }
  Hash32 size_leaf{};
  for (int i = 0; i < 8; ++i) size_leaf[i] = static_cast<std::uint8_t>(size >> (8 * i));
  const Hash32 pages = naive_merkleize(digest, leaves, std::max<std::uint64_t>(page_count(), 1));
  return naive_merkleize(digest, {size_leaf, pages}, 2);
}

NaiveCap naive_from_bytes_sized(const Bytes& content, std::uint64_t target) {
  NaiveCap cap;
  std::uint64_t len = std::max<std::uint64_t>(target, content.size());
  len = std::max<std::uint64_t>((len + PAGE_SIZE - 1) / PAGE_SIZE, 1) * PAGE_SIZE;
  cap.size = len;
  for (std::size_t off = 0; off < content.size(); off += PAGE_SIZE) {
    Bytes page(
        content.begin() + static_cast<std::ptrdiff_t>(off),
        content.begin() + static_cast<std::ptrdiff_t>(std::min(content.size(), off + PAGE_SIZE)));
    if (!is_zero(page)) cap.backing[off / PAGE_SIZE] = NaiveSlot{false, padded(page), {}};
  }
  return cap;
}

}  // namespace datacap::testing
