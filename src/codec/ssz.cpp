#include <cstring>

#include "codec/reader.hpp"
#include "datacap/codec.hpp"
#include "datacap/error.hpp"

namespace datacap {

using detail::put_le32;
using detail::put_le64;
using detail::SszReader;

namespace {

std::size_t trimmed_len(const std::uint8_t* page) {
  std::size_t len = PAGE_SIZE;
  while (len > 0 && page[len - 1] == 0) --len;
  return len;
}

void append_page_bytes(std::vector<std::uint8_t>& out, const PageRef& page, Digest digest) {
  const Hash32 root = page.root(digest);
  const std::size_t len = trimmed_len(page.data());
  const std::size_t at = out.size();
  out.resize(at + PAGE_BYTES_FIXED + len);
  std::memcpy(out.data() + at, root.data(), 32);
  put_le32(out.data() + at + 32, static_cast<std::uint32_t>(PAGE_BYTES_FIXED));
  std::memcpy(out.data() + at + PAGE_BYTES_FIXED, page.data(), len);
}

// Decodes PageBytes from the reader's remaining bytes (errors name offsets in the whole input).
PageRef read_page_bytes(SszReader& r, Digest digest) {
  const std::size_t start = r.offset();
  Hash32 hash;
  const auto hash_bytes = r.take("hash", 32);
  std::memcpy(hash.data(), hash_bytes.data(), 32);
  const std::size_t offset_at = r.offset();
  const std::uint32_t offset = r.u32("bytes");
  // The offset counts from the start of the PageBytes container.
  if (offset != PAGE_BYTES_FIXED) {
    r.fail("bytes", offset_at,
           "offset " + std::to_string(offset) + " != 36 (the fixed part's length)");
  }
  const std::size_t bytes_at = r.offset();
  const auto bytes = r.rest();
  if (bytes.size() > PAGE_SIZE) {
    r.fail("bytes", bytes_at, std::to_string(bytes.size()) + " bytes exceed a page (4096)");
  }
  PageRef page = PageRef::copy_of(bytes);
  if (page.root(digest) != hash) {
    r.fail("hash", start,
           "does not match the page's " + std::string(to_string(digest)) + " root " +
               to_hex(page.root(digest)));
  }
  return page;
}

}  // namespace

std::vector<std::uint8_t> encode_page_bytes(const PageRef& page, Digest digest) {
  if (!page) throw InvalidArgument("encode_page_bytes: null page");
  std::vector<std::uint8_t> out;
  append_page_bytes(out, page, digest);
  return out;
}

PageRef decode_page_bytes(std::span<const std::uint8_t> bytes, Digest digest) {
  SszReader r(bytes, "PageBytes");
  return read_page_bytes(r, digest);
}

std::vector<std::uint8_t> encode_page_slot(const PageSlot& slot, Digest digest) {
  std::vector<std::uint8_t> out;
  switch (slot.kind()) {
    case PageSlot::Kind::empty:
      out.push_back(0x00);
      break;
    case PageSlot::Kind::loaded:
      out.push_back(0x01);
      append_page_bytes(out, slot.page(), digest);
      break;
    case PageSlot::Kind::missing:
      out.push_back(0x02);
      out.insert(out.end(), slot.missing_hash().begin(), slot.missing_hash().end());
      break;
  }
  return out;
}

PageSlot decode_page_slot(std::span<const std::uint8_t> bytes, Digest digest) {
  SszReader r(bytes, "PageSlot");
  const std::uint8_t selector = r.u8("selector");
  switch (selector) {
    case 0x00:
      r.expect_end();
      return PageSlot::empty();
    case 0x01:
      return PageSlot::loaded(read_page_bytes(r, digest));  // offsets stay those of the PageSlot
    case 0x02: {
      const auto hash_bytes = r.take("Missing.hash", 32);
      r.expect_end();
      Hash32 hash;
      std::memcpy(hash.data(), hash_bytes.data(), 32);
      return PageSlot::missing(hash);
    }
    default:
      r.fail("selector", 0,
             "unknown selector " + std::to_string(selector) + " (expected 0, 1 or 2)");
  }
}

std::array<std::uint8_t, ARENA_PAGE_REF_SIZE> encode_arena_page_ref(const ArenaPageRef& ref) {
  std::array<std::uint8_t, ARENA_PAGE_REF_SIZE> out{};
  put_le32(out.data(), ref.page_index);
  put_le32(out.data() + 4, ref.arena_off);
  put_le32(out.data() + 8, ref.len);
  return out;
}

ArenaPageRef decode_arena_page_ref(std::span<const std::uint8_t> bytes) {
  SszReader r(bytes, "ArenaPageRef");
  ArenaPageRef ref;
  ref.page_index = r.u32("page_index");
  ref.arena_off = r.u32("arena_off");
  ref.len = r.u32("len");
  r.expect_end();
  return ref;
}

std::vector<std::uint8_t> encode_data_desc(const DataDesc& desc) {
  std::vector<std::uint8_t> out(DATA_DESC_FIXED + ARENA_PAGE_REF_SIZE * desc.pages.size());
  put_le64(out.data(), desc.size);
  put_le32(out.data() + 8, static_cast<std::uint32_t>(DATA_DESC_FIXED));
  for (std::size_t i = 0; i < desc.pages.size(); ++i) {
    const auto ref = encode_arena_page_ref(desc.pages[i]);
    std::memcpy(out.data() + DATA_DESC_FIXED + ARENA_PAGE_REF_SIZE * i, ref.data(), ref.size());
  }
  return out;
}

DataDesc decode_data_desc(std::span<const std::uint8_t> bytes) {
  SszReader r(bytes, "DataDesc");
  DataDesc desc;
  desc.size = r.u64("size");
  const std::size_t offset_at = r.offset();
  const std::uint32_t offset = r.u32("pages");
  if (offset != DATA_DESC_FIXED) {
    r.fail("pages", offset_at,
           "offset " + std::to_string(offset) + " != 12 (the fixed part's length)");
  }
  const std::size_t list_at = r.offset();
  if (r.remaining() % ARENA_PAGE_REF_SIZE != 0) {
    r.fail("pages", list_at,
           std::to_string(r.remaining()) + " bytes is not a whole number of 12-byte ArenaPageRefs");
  }
  // The count is backed by the input's own length: no allocation beyond what was sent.
  desc.pages.reserve(r.remaining() / ARENA_PAGE_REF_SIZE);
  while (r.remaining() > 0) {
    ArenaPageRef ref;
    ref.page_index = r.u32("pages[].page_index");
    ref.arena_off = r.u32("pages[].arena_off");
    ref.len = r.u32("pages[].len");
    desc.pages.push_back(ref);
  }
  return desc;
}

}  // namespace datacap
