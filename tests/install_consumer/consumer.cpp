// Uses only the installed public API: builds a cap, writes, flushes and checks the SPEC's
// worked example.
#include <datacap/datacap.hpp>

#include <cstdio>
#include <memory>

int main() {
  const datacap::DataCap cap = datacap::DataCap::zeroed(datacap::PAGE_SIZE);
  const std::string root = datacap::to_hex(cap.hash_tree_root());
  if (root != "ed5f4ed0d6617d50abd49d4c84281e175b48a7e1edf550a89bf2c9b5c4ce01f0") {
    std::fprintf(stderr, "consumer: wrong root %s\n", root.c_str());
    return 1;
  }
  datacap::DataCap copy = cap;
  const unsigned char hello[] = {'h', 'e', 'l', 'l', 'o'};
  copy.write(0, hello);
  const datacap::DataCap flushed = copy.flush();
  // The store and proofs through the installed library (LMDB stays its private dependency).
  const std::unique_ptr<datacap::PageStore> store = datacap::make_memory_store();
  const datacap::Hash32 saved = store->save_cap(flushed);
  if (store->load_cap(saved).hash_tree_root() != saved ||
      !datacap::verify_page_proof(datacap::prove_page(flushed, 0), saved)) {
    std::fprintf(stderr, "consumer: store or proof failed\n");
    return 1;
  }
  std::printf("consumer: datacap %s found by find_package; root %s\n", datacap::version_string(),
              datacap::to_hex(saved).c_str());
  return 0;
}
