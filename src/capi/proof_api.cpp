// The C API's merkle proofs (datacap.h). Proof structs are plain C values: the library fills
// them with malloc'd arrays (released by the _clear functions); verification converts a
// caller-filled struct back, trusting none of it.
#include <cstring>

#include "capi/boundary.hpp"
#include "datacap/proof.hpp"

using namespace datacap::capi;
using datacap::Hash32;

namespace {

std::vector<Hash32> hashes_of(const datacap_hash* hashes, size_t count) {
  std::vector<Hash32> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(hash_of(hashes[i]));
  return out;
}

MallocArray<datacap_hash> c_hashes_of(const std::vector<Hash32>& hashes) {
  std::vector<datacap_hash> converted;
  converted.reserve(hashes.size());
  for (const Hash32& hash : hashes) converted.push_back(c_hash_of(hash));
  return MallocArray<datacap_hash>(malloc_copy(std::span<const datacap_hash>(converted)));
}

// The C form of a multiproof; every array is allocated before any is handed over.
void fill_multi(const datacap::MultiProof& proof, datacap_multi_proof& out) {
  MallocArray<uint64_t> indices(malloc_copy(std::span<const std::uint64_t>(proof.page_indices)));
  MallocArray<datacap_hash> leaves = c_hashes_of(proof.leaves);
  MallocArray<datacap_hash> helpers = c_hashes_of(proof.helpers);
  out.content_len = proof.content_len;
  out.page_count = proof.page_indices.size();
  out.helper_count = proof.helpers.size();
  out.page_indices = indices.release();
  out.leaves = leaves.release();
  out.helpers = helpers.release();
}

// Longest branch of any proof: 32 levels of pages (2^32 pages) and the size root.
constexpr std::size_t MAX_BRANCH = 33;
constexpr std::uint64_t MAX_PAGES = std::uint64_t{1} << 32;

// Whether a received multiproof's counts could belong to a proof at all: a proof of k pages has
// at most k · 32 + 1 helpers. Counts beyond that are a bad proof (*valid = false), answered
// before anything is copied, so a hostile count cannot ask for a huge allocation.
bool multi_counts_plausible(const datacap_multi_proof& proof) noexcept {
  return proof.page_count <= MAX_PAGES && proof.helper_count <= proof.page_count * MAX_BRANCH + 1;
}

bool multi_ok(const datacap_multi_proof& proof) noexcept {
  return bytes_ok(proof.page_indices, proof.page_count) &&
         bytes_ok(proof.leaves, proof.page_count) && bytes_ok(proof.helpers, proof.helper_count);
}

datacap::MultiProof multi_of(const datacap_multi_proof& proof) {
  datacap::MultiProof out;
  out.content_len = proof.content_len;
  if (proof.page_count != 0) {
    out.page_indices.assign(proof.page_indices, proof.page_indices + proof.page_count);
  }
  out.leaves = hashes_of(proof.leaves, proof.page_count);
  out.helpers = hashes_of(proof.helpers, proof.helper_count);
  return out;
}

void clear_multi(datacap_multi_proof& proof) noexcept {
  std::free(proof.page_indices);
  std::free(proof.leaves);
  std::free(proof.helpers);
  proof = datacap_multi_proof{};
}

}  // namespace

extern "C" {

datacap_status datacap_prove_page(const datacap_cap* cap, uint64_t page_index,
                                  datacap_digest digest, datacap_page_proof* out) {
  if (cap == nullptr || out == nullptr) return misuse("datacap_prove_page: NULL argument");
  return guard([&] {
    const datacap::PageProof proof = datacap::prove_page(cap->cap, page_index, digest_of(digest));
    MallocArray<datacap_hash> branch = c_hashes_of(proof.branch);
    out->content_len = proof.content_len;
    out->page_index = proof.page_index;
    out->leaf = c_hash_of(proof.leaf);
    out->branch_len = proof.branch.size();
    out->branch = branch.release();
  });
}

datacap_status datacap_verify_page_proof(const datacap_page_proof* proof, const datacap_hash* root,
                                         datacap_digest digest, bool* valid) {
  if (proof == nullptr || root == nullptr || valid == nullptr ||
      !bytes_ok(proof->branch, proof->branch_len)) {
    return misuse("datacap_verify_page_proof: NULL argument");
  }
  if (proof->branch_len > MAX_BRANCH) {
    *valid = false;  // no proof has a branch that long
    return DATACAP_OK;
  }
  return guard([&] {
    datacap::PageProof converted;
    converted.content_len = proof->content_len;
    converted.page_index = proof->page_index;
    converted.leaf = hash_of(proof->leaf);
    converted.branch = hashes_of(proof->branch, proof->branch_len);
    *valid = datacap::verify_page_proof(converted, hash_of(*root), digest_of(digest));
  });
}

void datacap_page_proof_clear(datacap_page_proof* proof) {
  if (proof == nullptr) return;
  std::free(proof->branch);
  *proof = datacap_page_proof{};
}

datacap_status datacap_prove_pages(const datacap_cap* cap, const uint64_t* page_indices,
                                   size_t count, datacap_digest digest, datacap_multi_proof* out) {
  if (cap == nullptr || out == nullptr || !bytes_ok(page_indices, count)) {
    return misuse("datacap_prove_pages: NULL argument");
  }
  return guard([&] {
    const std::span<const std::uint64_t> indices =
        page_indices == nullptr ? std::span<const std::uint64_t>() : std::span(page_indices, count);
    fill_multi(datacap::prove_pages(cap->cap, indices, digest_of(digest)), *out);
  });
}

datacap_status datacap_verify_multi_proof(const datacap_multi_proof* proof,
                                          const datacap_hash* root, datacap_digest digest,
                                          bool* valid) {
  if (proof == nullptr || root == nullptr || valid == nullptr || !multi_ok(*proof)) {
    return misuse("datacap_verify_multi_proof: NULL argument");
  }
  if (!multi_counts_plausible(*proof)) {
    *valid = false;
    return DATACAP_OK;
  }
  return guard([&] {
    *valid = datacap::verify_multiproof(multi_of(*proof), hash_of(*root), digest_of(digest));
  });
}

void datacap_multi_proof_clear(datacap_multi_proof* proof) {
  if (proof != nullptr) clear_multi(*proof);
}

datacap_status datacap_prove_range(const datacap_cap* cap, uint64_t offset, uint64_t length,
                                   datacap_digest digest, datacap_range_proof* out) {
  if (cap == nullptr || out == nullptr) return misuse("datacap_prove_range: NULL argument");
  return guard([&] {
    const datacap::RangeProof proof =
        datacap::prove_range(cap->cap, offset, length, digest_of(digest));
    MallocArray<uint8_t> bytes(malloc_copy(std::span<const std::uint8_t>(proof.page_bytes)));
    datacap_multi_proof pages{};
    fill_multi(proof.pages, pages);  // the last allocation: nothing can fail after it
    out->offset = proof.offset;
    out->length = proof.length;
    out->pages = pages;
    out->page_bytes_len = proof.page_bytes.size();
    out->page_bytes = bytes.release();
  });
}

datacap_status datacap_verify_range_proof(const datacap_range_proof* proof,
                                          const datacap_hash* root, datacap_digest digest,
                                          bool* valid) {
  if (proof == nullptr || root == nullptr || valid == nullptr || !multi_ok(proof->pages) ||
      !bytes_ok(proof->page_bytes, proof->page_bytes_len)) {
    return misuse("datacap_verify_range_proof: NULL argument");
  }
  if (!multi_counts_plausible(proof->pages) ||
      proof->page_bytes_len != proof->pages.page_count * datacap::PAGE_SIZE) {
    *valid = false;
    return DATACAP_OK;
  }
  return guard([&] {
    datacap::RangeProof converted;
    converted.offset = proof->offset;
    converted.length = proof->length;
    converted.pages = multi_of(proof->pages);
    if (proof->page_bytes_len != 0) {
      converted.page_bytes.assign(proof->page_bytes, proof->page_bytes + proof->page_bytes_len);
    }
    *valid = datacap::verify_range_proof(converted, hash_of(*root), digest_of(digest));
  });
}

void datacap_range_proof_clear(datacap_range_proof* proof) {
  if (proof == nullptr) return;
  clear_multi(proof->pages);
  std::free(proof->page_bytes);
  *proof = datacap_range_proof{};
}

}  // extern "C"
