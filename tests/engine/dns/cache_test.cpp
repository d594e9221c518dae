#include "engine/dns/cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "engine/net/loop.h"

namespace salvo::dns {
namespace {

// Forwards to a FakeResolver and counts what reaches it.
class CountingResolver : public Resolver {
 public:
  CountingResolver(FakeResolver& fake, int& mxQueries, int& addressQueries)
      : fake_(fake), mxQueries_(mxQueries), addressQueries_(addressQueries) {}
  void resolveMx(const std::string& domain, MxCallback cb) override {
    ++mxQueries_;
    fake_.resolveMx(domain, std::move(cb));
  }
  void resolveAddresses(const std::string& host, std::uint16_t port, AddressCallback cb) override {
    ++addressQueries_;
    fake_.resolveAddresses(host, port, std::move(cb));
  }

 private:
  FakeResolver& fake_;
  int& mxQueries_;
  int& addressQueries_;
};

class CachingResolverTest : public ::testing::Test {
 protected:
  CachingResolverTest() {
    CacheOptions options;
    options.minTtlSec = 60;
    options.negativeTtlSec = 300;
    options.seed = 42;
    cache_ = std::make_unique<CachingResolver>(
        loop_, std::make_unique<CountingResolver>(fake_, mxQueries_, addressQueries_),
        [this] { return nowMs_; }, options);
  }

  // The loop is never run: runPosted() runs the callbacks the fake and the cache post.
  MxAnswer mx(const std::string& domain) {
    MxAnswer got;
    bool answered = false;
    cache_->resolveMx(domain, [&](MxAnswer a) {
      got = std::move(a);
      answered = true;
    });
    EXPECT_FALSE(answered) << "answered inline";
    loop_.runPosted();
    EXPECT_TRUE(answered);
    return got;
  }

  AddressAnswer addresses(const std::string& host, std::uint16_t port) {
    AddressAnswer got;
    bool answered = false;
    cache_->resolveAddresses(host, port, [&](AddressAnswer a) {
      got = std::move(a);
      answered = true;
    });
    EXPECT_FALSE(answered) << "answered inline";
    loop_.runPosted();
    EXPECT_TRUE(answered);
    return got;
  }

  void setMx(const std::string& domain, Rcode rcode, std::vector<MxRecord> records,
             std::uint32_t ttl) {
    MxAnswer a;
    a.rcode = rcode;
    a.records = std::move(records);
    a.ttl = ttl;
    a.error = rcode == Rcode::Ok ? "" : "fake failure";
    fake_.setMx(domain, a);
  }

  net::EventLoop loop_;
  FakeResolver fake_{loop_};
  int mxQueries_ = 0;
  int addressQueries_ = 0;
  std::int64_t nowMs_ = 1'000'000;
  std::unique_ptr<CachingResolver> cache_;
};

TEST_F(CachingResolverTest, PositiveAnswersLiveForTheirTtl) {
  setMx("a.test", Rcode::Ok, {{"mx.a.test", 10}}, 600);
  EXPECT_EQ(mx("a.test").records.at(0).host, "mx.a.test");
  EXPECT_EQ(mxQueries_, 1);
  nowMs_ += 599'000;
  const MxAnswer cached = mx("a.test");
  EXPECT_EQ(cached.rcode, Rcode::Ok);
  EXPECT_EQ(cached.ttl, 1u);  // what is left of it
  EXPECT_EQ(mxQueries_, 1);
  nowMs_ += 1'000;
  mx("a.test");
  EXPECT_EQ(mxQueries_, 2);
  EXPECT_EQ(cache_->misses(), 2u);
}

TEST_F(CachingResolverTest, ShortTtlsAreRaisedToTheMinimum) {
  setMx("a.test", Rcode::Ok, {{"mx.a.test", 10}}, 1);
  mx("a.test");
  nowMs_ += 59'000;
  mx("a.test");
  EXPECT_EQ(mxQueries_, 1);
  nowMs_ += 1'000;
  mx("a.test");
  EXPECT_EQ(mxQueries_, 2);
}

TEST_F(CachingResolverTest, NegativeAnswersUseTheNegativeTtl) {
  setMx("null.test", Rcode::NullMx, {}, 86'400);
  EXPECT_EQ(mx("gone.test").rcode, Rcode::NxDomain);  // the fake's default
  EXPECT_EQ(mx("null.test").rcode, Rcode::NullMx);
  EXPECT_EQ(mxQueries_, 2);
  nowMs_ += 299'000;
  EXPECT_EQ(mx("gone.test").rcode, Rcode::NxDomain);
  EXPECT_EQ(mx("null.test").rcode, Rcode::NullMx);
  EXPECT_EQ(mxQueries_, 2);
  nowMs_ += 1'000;
  mx("gone.test");
  mx("null.test");
  EXPECT_EQ(mxQueries_, 4);
}

TEST_F(CachingResolverTest, TemporaryFailuresAreNeverCached) {
  setMx("flaky.test", Rcode::TempFail, {}, 600);
  EXPECT_EQ(mx("flaky.test").rcode, Rcode::TempFail);
  EXPECT_EQ(mx("flaky.test").rcode, Rcode::TempFail);
  EXPECT_EQ(mxQueries_, 2);
  setMx("flaky.test", Rcode::Ok, {{"mx.flaky.test", 5}}, 600);
  EXPECT_EQ(mx("flaky.test").rcode, Rcode::Ok);
  EXPECT_EQ(mxQueries_, 3);
}

TEST_F(CachingResolverTest, ConcurrentLookupsShareOneQuery) {
  setMx("a.test", Rcode::Ok, {{"mx.a.test", 10}}, 600);
  int answered = 0;
  for (int i = 0; i < 5; ++i) {
    cache_->resolveMx("a.test", [&](MxAnswer a) {
      EXPECT_EQ(a.rcode, Rcode::Ok);
      ++answered;
    });
  }
  EXPECT_EQ(answered, 0);  // never inline
  loop_.runPosted();
  EXPECT_EQ(answered, 5);
  EXPECT_EQ(mxQueries_, 1);
}

TEST_F(CachingResolverTest, EqualPreferencesAreShuffledAndPreferenceOrderHolds) {
  setMx("big.test", Rcode::Ok,
        {{"a.big.test", 10}, {"b.big.test", 10}, {"c.big.test", 10}, {"z.big.test", 20}}, 600);
  std::set<std::string> firsts;
  for (int i = 0; i < 40; ++i) {
    const MxAnswer a = mx("big.test");
    ASSERT_EQ(a.records.size(), 4u);
    EXPECT_EQ(a.records[3].host, "z.big.test");
    firsts.insert(a.records[0].host);
  }
  EXPECT_EQ(firsts, (std::set<std::string>{"a.big.test", "b.big.test", "c.big.test"}));
  EXPECT_EQ(mxQueries_, 1);
}

TEST_F(CachingResolverTest, AddressesAreCachedPerHostAndPort) {
  fake_.setAddresses("mx.a.test", {"192.0.2.1", "2001:db8::1"});
  AddressAnswer a = addresses("mx.a.test", 25);
  ASSERT_EQ(a.rcode, Rcode::Ok);
  ASSERT_EQ(a.endpoints.size(), 2u);
  EXPECT_EQ(a.endpoints[0].port(), 25);
  addresses("mx.a.test", 25);
  EXPECT_EQ(addressQueries_, 1);
  a = addresses("mx.a.test", 2525);
  EXPECT_EQ(a.endpoints[0].port(), 2525);
  EXPECT_EQ(addressQueries_, 2);
  EXPECT_EQ(addresses("nowhere.test", 25).rcode, Rcode::NxDomain);
  EXPECT_EQ(addresses("nowhere.test", 25).rcode, Rcode::NxDomain);
  EXPECT_EQ(addressQueries_, 3);
}

TEST(ShuffleTiesTest, OnlyWithinEqualPreference) {
  std::mt19937_64 rng(7);
  std::vector<MxRecord> records = {{"a", 1}, {"b", 2}, {"c", 2}, {"d", 3}};
  for (int i = 0; i < 20; ++i) {
    CachingResolver::shuffleTies(records, rng);
    EXPECT_EQ(records[0].host, "a");
    EXPECT_EQ(records[3].host, "d");
  }
  std::vector<MxRecord> none;
  CachingResolver::shuffleTies(none, rng);
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace salvo::dns
