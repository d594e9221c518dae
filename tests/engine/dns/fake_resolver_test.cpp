#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "engine/dns/resolver.h"
#include "engine/net/loop.h"

namespace salvo::dns {
namespace {

// Runs the loop until `expected` callbacks have called done().
class FakeResolverTest : public ::testing::Test {
 protected:
  void expect(int n) { pending_ = n; }
  void done() {
    if (--pending_ == 0) {
      loop_.stop();
    }
  }

  net::EventLoop loop_;
  FakeResolver resolver_{loop_};
  int pending_ = 0;
};

TEST_F(FakeResolverTest, AnswersMxFromItsTableAfterTheCallReturns) {
  MxAnswer table;
  table.rcode = Rcode::Ok;
  table.records = {{"mx1.example.test", 10}, {"mx2.example.test", 20}};
  table.ttl = 600;
  resolver_.setMx("example.test", table);
  std::optional<MxAnswer> got;
  bool returned = false;
  expect(1);
  resolver_.resolveMx("example.test", [&](MxAnswer a) {
    EXPECT_TRUE(returned) << "callback ran inline";
    got = std::move(a);
    done();
  });
  returned = true;
  loop_.run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rcode, Rcode::Ok);
  ASSERT_EQ(got->records.size(), 2u);
  EXPECT_EQ(got->records[0].host, "mx1.example.test");
  EXPECT_EQ(got->records[1].preference, 20);
  EXPECT_EQ(got->ttl, 600u);
}

TEST_F(FakeResolverTest, StoredNegativeAnswersComeBackAsSet) {
  MxAnswer nullMx;
  nullMx.rcode = Rcode::NullMx;
  nullMx.error = "null MX";
  resolver_.setMx("nomail.example.test", nullMx);
  std::optional<MxAnswer> got;
  expect(1);
  resolver_.resolveMx("NoMail.Example.Test.", [&](MxAnswer a) {
    got = std::move(a);
    done();
  });
  loop_.run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rcode, Rcode::NullMx);
  EXPECT_EQ(got->error, "null MX");
}

TEST_F(FakeResolverTest, UnknownNamesAreNxDomainWithAnError) {
  std::optional<MxAnswer> mx;
  std::optional<AddressAnswer> addr;
  expect(2);
  resolver_.resolveMx("missing.example.test", [&](MxAnswer a) {
    mx = std::move(a);
    done();
  });
  resolver_.resolveAddresses("missing.example.test", 25, [&](AddressAnswer a) {
    addr = std::move(a);
    done();
  });
  loop_.run();
  ASSERT_TRUE(mx.has_value());
  EXPECT_EQ(mx->rcode, Rcode::NxDomain);
  EXPECT_EQ(mx->error, "MX lookup for missing.example.test: domain does not exist (fake resolver)");
  ASSERT_TRUE(addr.has_value());
  EXPECT_EQ(addr->rcode, Rcode::NxDomain);
  EXPECT_EQ(addr->error,
            "address lookup for missing.example.test: domain does not exist (fake resolver)");
}

TEST_F(FakeResolverTest, AddressesCarryTheRequestedPort) {
  resolver_.setAddresses("mx1.example.test", {"192.0.2.1", "2001:db8::1"});
  resolver_.setAddresses("empty.example.test", {});
  resolver_.setAddresses("broken.example.test", {"192.0.2.1", "not-an-ip"});
  std::vector<AddressAnswer> got(4);
  expect(4);
  auto store = [&](int i) {
    return [&, i](AddressAnswer a) {
      got[static_cast<std::size_t>(i)] = std::move(a);
      done();
    };
  };
  resolver_.resolveAddresses("mx1.example.test", 2525, store(0));
  resolver_.resolveAddresses("192.0.2.9", 25, store(1));
  resolver_.resolveAddresses("empty.example.test", 25, store(2));
  resolver_.resolveAddresses("broken.example.test", 25, store(3));
  loop_.run();

  EXPECT_EQ(got[0].rcode, Rcode::Ok);
  ASSERT_EQ(got[0].endpoints.size(), 2u);
  EXPECT_EQ(got[0].endpoints[0].str(), "192.0.2.1:2525");
  EXPECT_EQ(got[0].endpoints[1].str(), "[2001:db8::1]:2525");
  EXPECT_GT(got[0].ttl, 0u);

  EXPECT_EQ(got[1].rcode, Rcode::Ok);
  ASSERT_EQ(got[1].endpoints.size(), 1u);
  EXPECT_EQ(got[1].endpoints[0].str(), "192.0.2.9:25");

  EXPECT_EQ(got[2].rcode, Rcode::NoData);
  EXPECT_EQ(got[2].error, "address lookup for empty.example.test: no addresses (fake resolver)");

  EXPECT_EQ(got[3].rcode, Rcode::TempFail);
  EXPECT_EQ(got[3].error,
            "address lookup for broken.example.test: fake resolver table holds 'not-an-ip', which "
            "is not an IP address");
  EXPECT_TRUE(got[3].endpoints.empty());
}

TEST(FakeResolver, AnswersSurviveTheResolver) {
  // The fake copies its answer at call time, so it may go away before the loop runs.
  net::EventLoop loop;
  std::optional<MxAnswer> got;
  {
    FakeResolver resolver(loop);
    MxAnswer table;
    table.rcode = Rcode::NoData;
    resolver.setMx("example.test", table);
    resolver.resolveMx("example.test", [&](MxAnswer a) {
      got = std::move(a);
      loop.stop();
    });
  }
  loop.run();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rcode, Rcode::NoData);
}

}  // namespace
}  // namespace salvo::dns
