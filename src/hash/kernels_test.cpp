// Every SHA-256 kernel against the portable one and against OpenSSL: counts around each lane
// width, random inputs, and in-place use. A kernel the CPU lacks is reported as skipped.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <utility>
#include <vector>

#include "datacap/datacap.hpp"
#include "hash/kernel.hpp"

namespace datacap::detail {
namespace {

std::vector<std::uint8_t> openssl_pairs(const std::vector<std::uint8_t>& in, std::size_t count) {
  std::vector<std::uint8_t> out(32 * count);
  for (std::size_t i = 0; i < count; ++i) {
    unsigned int len = 0;
    EVP_Digest(in.data() + 64 * i, 64, out.data() + 32 * i, &len, EVP_sha256(), nullptr);
  }
  return out;
}

class Kernel : public ::testing::TestWithParam<Isa> {
 protected:
  HashPairsFn kernel() {
    HashPairsFn fn = sha256_kernel_for(GetParam());
    if (fn == nullptr) ADD_FAILURE() << "unreachable: skipped above";
    return fn;
  }
  void SetUp() override {
    if (!isa_available(GetParam())) {
      GTEST_SKIP() << "this CPU lacks " << to_string(GetParam()) << ": kernel not tested here";
    }
  }
};

TEST_P(Kernel, MatchesOpenSSLAndPortableAtEveryCountAroundTheLaneWidths) {
  std::mt19937_64 rng(42);
  for (std::size_t count : {0, 1, 2, 3, 6, 7, 8, 9, 13, 15, 16, 17, 30, 31, 32, 33, 64, 100, 257}) {
    SCOPED_TRACE(count);
    std::vector<std::uint8_t> in(64 * count);
    for (auto& b : in) b = static_cast<std::uint8_t>(rng());
    std::vector<std::uint8_t> got(32 * count + 32, 0xAB), portable(32 * count);
    kernel()(got.data(), in.data(), count);
    sha256_portable_x1(portable.data(), in.data(), count);
    EXPECT_EQ(std::vector<std::uint8_t>(got.begin(),
                                        got.begin() + static_cast<std::ptrdiff_t>(32 * count)),
              portable);
    EXPECT_EQ(portable, openssl_pairs(in, count));
    for (std::size_t k = 32 * count; k < got.size(); ++k)
      ASSERT_EQ(got[k], 0xAB) << "wrote past the end";
  }
}

TEST_P(Kernel, InPlaceGivesTheSameBytes) {
  std::mt19937_64 rng(7);
  for (std::size_t count : {1, 5, 16, 17, 40}) {
    std::vector<std::uint8_t> buf(64 * count);
    for (auto& b : buf) b = static_cast<std::uint8_t>(rng());
    const std::vector<std::uint8_t> expected = openssl_pairs(buf, count);
    kernel()(buf.data(), buf.data(), count);
    EXPECT_EQ(std::vector<std::uint8_t>(buf.begin(),
                                        buf.begin() + static_cast<std::ptrdiff_t>(32 * count)),
              expected)
        << count;
  }
}

TEST_P(Kernel, VectorsAndPageRootsThroughThePinnedKernel) {
  const Isa before = active_isa();
  set_isa(GetParam());
  const std::vector<std::uint8_t> ff(PAGE_SIZE, 0xff);
  EXPECT_EQ(to_hex(page_root(Digest::sha256, ff)),
            "8f711e9197bcd96314b8d20425eac7dce4aee7c9a0579e901d636d3256db3672");
  EXPECT_EQ(to_hex(zero_hash(Digest::sha256, 7)),
            "87eb0ddba57e35f6d286673802a4af5975e22506c7cf4c64bb6be5ee11527f2c");
  EXPECT_EQ(active_isa(), GetParam());
  set_isa(before);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, Kernel,
                         ::testing::Values(Isa::portable, Isa::avx2, Isa::avx512, Isa::shani),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Dispatch, NamesAndErrors) {
  EXPECT_EQ(parse_isa("avx512"), Isa::avx512);
  EXPECT_THROW((void)parse_isa("neon"), InvalidArgument);
  EXPECT_TRUE(isa_available(Isa::portable));
  for (Isa isa : {Isa::avx2, Isa::avx512, Isa::shani}) {
    if (!isa_available(isa)) {
      EXPECT_THROW(set_isa(isa), InvalidArgument);
    }
  }
  EXPECT_FALSE(available_isas().empty());
}

// A kernel left out of the build (DATACAP_NO_<ISA>, DATACAP_PORTABLE_ONLY, a CPU other than
// x86) is unavailable whatever the CPU has, yet its name still parses, and pinning it is refused.
TEST(Dispatch, KernelsLeftOutOfTheBuildAreUnavailable) {
  const std::pair<Isa, bool> compiled[] = {{Isa::avx2, DATACAP_HAVE_AVX2},
                                           {Isa::avx512, DATACAP_HAVE_AVX512},
                                           {Isa::shani, DATACAP_HAVE_SHANI}};
  for (const auto& [isa, in_build] : compiled) {
    SCOPED_TRACE(to_string(isa));
    EXPECT_EQ(parse_isa(to_string(isa)), isa);
    if (in_build) continue;
    EXPECT_FALSE(isa_available(isa));
    EXPECT_EQ(sha256_kernel_for(isa), nullptr);
    EXPECT_THROW(set_isa(isa), InvalidArgument);
  }
#if !DATACAP_HAVE_SIMD
  EXPECT_EQ(available_isas(), std::vector<Isa>{Isa::portable});
  EXPECT_EQ(active_isa(), Isa::portable);
#endif
}

#ifdef DATACAP_PORTABLE_ONLY
// The portable-only build (CMake DATACAP_PORTABLE_ONLY) stands for a CPU other than x86: it must
// compile nothing x86-specific into dispatch, even on x86.
TEST(Dispatch, PortableOnlyBuildHasOnlyThePortableKernel) {
  static_assert(!DATACAP_X86 && !DATACAP_HAVE_SIMD);
  EXPECT_EQ(available_isas(), std::vector<Isa>{Isa::portable});
}
#endif

}  // namespace
}  // namespace datacap::detail
