// The tiered store (make_tiered_store, store.hpp): a local store in front of a shared one.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datacap/error.hpp"
#include "datacap/store.hpp"
#include "store/record.hpp"
#include "store/store_access.hpp"

namespace datacap {
namespace {

using Access = detail::StoreAccess;

// Both tiers' locks, taken remote first (the order every tiered store uses, so two of them
// cannot deadlock) and released in reverse.
struct TieredLock final : PageStore::Lock {
  std::unique_ptr<PageStore::Lock> remote;
  std::unique_ptr<PageStore::Lock> local;  // declared last: destroyed first
};

// Adds the local tier's damage to the remote's report. What the store holds (caps, pages, and
// pages a record names but the store lacks) is counted in the remote alone: the local tier is a
// cache, which lacks pages by design.
void add_damage(StoreVerifyReport& into, const StoreVerifyReport& from) {
  into.bad_caps += from.bad_caps;
  into.bad_pages += from.bad_pages;
  into.damaged_page_refs += from.damaged_page_refs;
  into.bad_trees += from.bad_trees;
  into.problem_count += from.problem_count;
  for (const StoreProblem& problem : from.problems) {
    if (into.problems.size() == StoreVerifyReport::MAX_PROBLEMS) break;
    into.problems.push_back(problem);
  }
}

class TieredStore final : public PageStore {
 public:
  TieredStore(std::unique_ptr<PageStore> local, std::unique_ptr<PageStore> remote)
      : local_(std::move(local)), remote_(std::move(remote)) {}

  [[nodiscard]] std::string name() const override {
    return local_->name() + " in front of " + remote_->name();
  }
  [[nodiscard]] bool is_read_only() const noexcept override {
    return local_->is_read_only() || remote_->is_read_only();
  }

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override {
    refuse_if_read_only("put");
    Access::put_pages(*remote_, pages);
    Access::put_pages(*local_, pages);
  }

  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    Access::get_pages(*local_, roots, out);
    std::vector<Hash32> wanted;
    const std::vector<std::size_t> absent =
        lacking(roots, wanted, [&](std::size_t k) { return !out[k]; });
    if (absent.empty()) return;
    std::vector<PageRef> fetched(wanted.size());
    Access::get_pages(*remote_, wanted, fetched);
    // Only pages whose bytes give their key reach the local tier: it must never serve a wrong
    // page as if it were checked. Hashed in one batch on every core; the roots stay cached in
    // the pages, so the caller's own check costs nothing more.
    std::vector<PageRef> present;
    present.reserve(fetched.size());
    for (const PageRef& page : fetched) {
      if (page) present.push_back(page);
    }
    detail::ensure_page_roots(present);
    std::vector<PageRecord> verified;
    for (std::size_t i = 0; i < absent.size(); ++i) {
      out[absent[i]] = fetched[i];
      if (fetched[i] && fetched[i].root(Digest::sha256) == wanted[i])
        verified.push_back({wanted[i], fetched[i]});
    }
    if (verified.empty() || local_->is_read_only()) return;
    try {
      Access::put_pages(*local_, verified);
    } catch (const Error&) {
      // A cache that cannot take the pages (a full disk) costs the next read a remote fetch;
      // it must not fail a read that has every page it asked for.
    }
  }

  bool do_has_page(const Hash32& root) const override {
    return Access::has_page(*local_, root) || Access::has_page(*remote_, root);
  }

  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override {
    Access::has_pages(*local_, roots, out);
    std::vector<Hash32> wanted;
    const std::vector<std::size_t> absent =
        lacking(roots, wanted, [&](std::size_t k) { return !out[k]; });
    if (absent.empty()) return;
    std::vector<bool> remote_has(wanted.size(), false);
    Access::has_pages(*remote_, wanted, remote_has);  // one batch for everything local lacks
    for (std::size_t i = 0; i < absent.size(); ++i) out[absent[i]] = remote_has[i];
  }

  std::uint64_t do_page_count() const override { return Access::page_count(*remote_); }

  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override {
    refuse_if_read_only("save_cap");
    Access::put_cap(*remote_, cap_root, record);
    Access::put_cap(*local_, cap_root, record);
  }

  bool do_has_cap(const Hash32& cap_root) const override {
    return Access::has_cap(*remote_, cap_root);
  }

  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override {
    return Access::get_cap(*remote_, cap_root, record);
  }

  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override {
    Access::for_each_cap(*remote_, fn);
  }

  GcReport do_gc(std::span<const Hash32> keep) override {
    const GcReport report = Access::gc(*remote_, keep);
    std::vector<Hash32> cached;
    for (const Hash32& root : keep) {
      if (Access::has_cap(*local_, root)) cached.push_back(root);
    }
    Access::gc(*local_, cached);
    return report;
  }

  std::unique_ptr<Lock> do_lock(bool exclusive) const override {
    refuse_if_read_only(exclusive ? "gc" : "save");
    auto lock = std::make_unique<TieredLock>();
    lock->remote = Access::lock(*remote_, exclusive);
    lock->local = Access::lock(*local_, exclusive);
    return lock;
  }

  StoreVerifyReport do_verify() const override {
    StoreVerifyReport report = remote_->verify();
    add_damage(report, local_->verify());
    return report;
  }

  void do_check_structure() const override {
    remote_->check_structure();
    local_->check_structure();
  }

 private:
  // The positions k of `roots` the local tier lacks (absent(k)), ascending, and their roots in
  // `wanted` (the batch to ask the remote for).
  template <typename Absent>
  static std::vector<std::size_t> lacking(std::span<const Hash32> roots,
                                          std::vector<Hash32>& wanted, Absent absent) {
    std::vector<std::size_t> positions;
    for (std::size_t k = 0; k < roots.size(); ++k) {
      if (absent(k)) positions.push_back(k);
    }
    wanted.clear();
    wanted.reserve(positions.size());
    for (const std::size_t k : positions) wanted.push_back(roots[k]);
    return positions;
  }

  // A write refused before either tier changes (a read-only local tier would otherwise refuse
  // only after the remote took the write).
  void refuse_if_read_only(const char* what) const {
    if (is_read_only()) {
      throw InvalidArgument(name() + ": " + what + ": a tier was opened read-only");
    }
  }

  std::unique_ptr<PageStore> local_;
  std::unique_ptr<PageStore> remote_;
};

}  // namespace

std::unique_ptr<PageStore> make_tiered_store(std::unique_ptr<PageStore> local,
                                             std::unique_ptr<PageStore> remote) {
  if (!local || !remote) throw InvalidArgument("make_tiered_store: a tier is null");
  return std::make_unique<TieredStore>(std::move(local), std::move(remote));
}

}  // namespace datacap
