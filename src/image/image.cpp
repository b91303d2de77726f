#include <algorithm>
#include <cstring>

#include "datacap/error.hpp"
#include "datacap/image.hpp"
#include "tree/merkle.hpp"

namespace datacap {

// ---- DataDesc ----------------------------------------------------------------------------

void DataDesc::validate(std::uint64_t arena_len) const {
  auto fail = [](ValidationRule rule, std::uint64_t value, std::uint64_t index,
                 const std::string& what) { throw ValidationError(rule, value, index, what); };
  if (size % PAGE_SIZE != 0) {
    fail(ValidationRule::size_not_page_multiple, size, 0,
         "DataDesc.size: " + std::to_string(size) + " is not a multiple of PAGE_SIZE (4096)");
  }
  for (std::size_t i = 0; i < pages.size(); ++i) {
    if (pages[i].len == 0 || pages[i].len > PAGE_SIZE) {
      fail(ValidationRule::page_len_invalid, pages[i].len, i,
           "DataDesc.pages[" + std::to_string(i) + "]: len " + std::to_string(pages[i].len) +
               " is not in 1..4096");
    }
  }
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const std::uint64_t end = std::uint64_t{pages[i].arena_off} + pages[i].len;
    if (end > arena_len) {
      fail(ValidationRule::window_past_arena, end, i,
           "DataDesc.pages[" + std::to_string(i) + "]: window ends at " + std::to_string(end) +
               ", past the arena's " + std::to_string(arena_len) + " bytes");
    }
  }
  const std::uint64_t page_count = size / PAGE_SIZE;
  for (std::size_t i = 0; i < pages.size(); ++i) {
    if (pages[i].page_index >= page_count) {
      fail(ValidationRule::page_index_out_of_range, pages[i].page_index, i,
           "DataDesc.pages[" + std::to_string(i) + "]: page_index " +
               std::to_string(pages[i].page_index) + " >= page_count " +
               std::to_string(page_count));
    }
  }
  for (std::size_t i = 1; i < pages.size(); ++i) {
    if (pages[i].page_index <= pages[i - 1].page_index) {
      fail(ValidationRule::pages_not_ascending, pages[i].page_index, i,
           "DataDesc.pages[" + std::to_string(i) + "]: page_index " +
               std::to_string(pages[i].page_index) + " is not above pages[" +
               std::to_string(i - 1) + "].page_index " + std::to_string(pages[i - 1].page_index));
    }
  }
}

DataCap DataDesc::to_data_cap(std::span<const std::uint8_t> arena) const {
  validate(arena.size());
  std::vector<SparsePage> named;
  named.reserve(pages.size());
  for (const ArenaPageRef& ref : pages) {
    named.push_back(SparsePage{ref.page_index, arena.subspan(ref.arena_off, ref.len)});
  }
  return DataCap::from_sparse_pages(size, named);
}

// ---- ImageBuilder ------------------------------------------------------------------------

ArenaPageRef ImageBuilder::window_for(std::uint32_t page_index, const std::uint8_t* page) {
  std::size_t len = PAGE_SIZE;
  while (len > 0 && page[len - 1] == 0) --len;
  // Identical pages share one window: keyed by the page's root (collision-resistant).
  const Hash32 key = detail::page_root_of(Digest::sha256, page);
  if (auto it = windows_.find(key); it != windows_.end()) {
    return ArenaPageRef{page_index, it->second.first, it->second.second};
  }
  if (arena_.size() + len > 0xffffffffULL) {
    throw OutOfRange("ImageBuilder: the arena would pass 4 GiB (ArenaPageRef offsets are 32-bit)");
  }
  const auto off = static_cast<std::uint32_t>(arena_.size());
  arena_.insert(arena_.end(), page, page + len);
  windows_.emplace(key, std::make_pair(off, static_cast<std::uint32_t>(len)));
  return ArenaPageRef{page_index, off, static_cast<std::uint32_t>(len)};
}

DataDesc ImageBuilder::add_cap(const DataCap& cap) {
  DataDesc desc;
  desc.size = cap.content_len();
  cap.for_each_page([&](std::uint32_t i, const PageSlot& slot) {
    if (slot.is_missing()) throw MissingPage("ImageBuilder::add_cap", i, slot.missing_hash());
    const std::uint8_t* bytes = slot.page().data();
    if (!detail::is_zero_page(bytes)) desc.pages.push_back(window_for(i, bytes));
  });
  return desc;
}

DataDesc ImageBuilder::add_bytes(std::span<const std::uint8_t> bytes, std::uint64_t size) {
  DataDesc desc;
  const std::uint64_t len = std::max<std::uint64_t>(size, bytes.size());
  const std::uint64_t pages = std::max<std::uint64_t>((len + PAGE_SIZE - 1) / PAGE_SIZE, 1);
  if (pages > MAX_PAGE_COUNT) throw OutOfRange("ImageBuilder::add_bytes: size exceeds 2^32 pages");
  desc.size = pages * PAGE_SIZE;
  alignas(64) std::uint8_t page[PAGE_SIZE];
  for (std::size_t off = 0; off < bytes.size(); off += PAGE_SIZE) {
    const std::size_t n = std::min(PAGE_SIZE, bytes.size() - off);
    std::memcpy(page, bytes.data() + off, n);
    std::memset(page + n, 0, PAGE_SIZE - n);
    if (detail::is_zero_page(page)) continue;
    desc.pages.push_back(window_for(static_cast<std::uint32_t>(off / PAGE_SIZE), page));
  }
  return desc;
}

// ---- ImageMemory -------------------------------------------------------------------------

ImageMemory::ImageMemory(std::span<const std::uint8_t> arena, std::span<const DataDesc> data,
                         ImageLayout layout) {
  if (layout.extent % PAGE_SIZE != 0) {
    throw InvalidArgument("ImageLayout.extent: " + std::to_string(layout.extent) +
                          " is not a multiple of PAGE_SIZE (4096)");
  }
  if (layout.extent / PAGE_SIZE > MAX_PAGE_COUNT) {
    throw OutOfRange("ImageLayout.extent: " + std::to_string(layout.extent) +
                     " exceeds 2^32 pages");
  }
  for (std::size_t i = 0; i < layout.mappings.size(); ++i) {
    const ImageMapping& m = layout.mappings[i];
    const std::string where = "ImageLayout.mappings[" + std::to_string(i) + "]";
    if (m.offset % PAGE_SIZE != 0) {
      throw InvalidArgument(where + ": offset " + std::to_string(m.offset) +
                            " is not page-aligned");
    }
    if (m.offset >= layout.extent) {
      throw OutOfRange(where + ": offset " + std::to_string(m.offset) + " >= extent " +
                       std::to_string(layout.extent));
    }
    if (m.data_index >= data.size()) {
      throw OutOfRange(where + ": data_index " + std::to_string(m.data_index) +
                       " >= " + std::to_string(data.size()) + " descriptors");
    }
  }
  std::vector<DataCap> caps;
  caps.reserve(data.size());
  for (const DataDesc& desc : data) {
    caps.push_back(desc.to_data_cap(arena));
    (void)caps.back().hash_tree_root();  // cached in the shared nodes: instances inherit it
  }
  caps_ = std::move(caps);
  layout_ = std::move(layout);
}

DataCap ImageMemory::instantiate() const {
  DataCap instance = DataCap::zeroed(layout_.extent);
  for (const ImageMapping& m : layout_.mappings)
    instance.place_shared(m.offset, caps_[m.data_index]);
  return instance;
}

}  // namespace datacap
