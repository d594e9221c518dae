// AresResolver against a DNS server running inside the test on 127.0.0.1: no other network.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "engine/dns/resolver.h"
#include "engine/net/loop.h"
#include "tests/engine/dns/dns_test_server.h"

namespace salvo::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using Behaviour = dnstest::TestDnsServer::Behaviour;

// Guards against a hang only; no test asserts on time.
constexpr std::uint64_t kWatchdogMs = 30000;

std::vector<std::string> strs(const std::vector<net::Endpoint>& endpoints) {
  std::vector<std::string> out;
  for (const net::Endpoint& e : endpoints) {
    out.push_back(e.str());
  }
  return out;
}

std::vector<std::pair<std::string, int>> mxList(const MxAnswer& answer) {
  std::vector<std::pair<std::string, int>> out;
  for (const MxRecord& r : answer.records) {
    out.emplace_back(r.host, r.preference);
  }
  return out;
}

class AresResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Out of preference order, with a mixed-case, dot-terminated host and a tie at 20.
    server_.addMx("mx.example.test", 20, "mx2.example.test", 600);
    server_.addMx("mx.example.test", 10, "MX1.Example.Test.", 300);
    server_.addMx("mx.example.test", 20, "mx3.example.test", 900);
    // The name exists (it has an A record) but has no MX.
    server_.addIp("nodata.example.test", "192.0.2.10", 60);
    server_.setSoa("nodata.example.test", 3600, 120);
    server_.setBehaviour("nx.example.test", Behaviour::NxDomain);
    server_.setBehaviour("nx-soa.example.test", Behaviour::NxDomain);
    server_.setSoa("nx-soa.example.test", 600, 30);
    server_.addMx("nullmx.example.test", 0, ".", 3600);
    server_.setBehaviour("servfail.example.test", Behaviour::ServFail);
    server_.setBehaviour("refused.example.test", Behaviour::Refused);
    // An MX record whose RDATA stops after one octet of the preference.
    server_.add("badmx.example.test", dnstest::TestRecord{dnstest::kTypeMx, 300, {0x00}});
    server_.setBehaviour("silent.example.test", Behaviour::Silent);
    server_.addMx("lossy.example.test", 5, "mx.lossy.example.test", 100);
    server_.setBehaviour("lossy.example.test", Behaviour::DropFirst);
    server_.addIp("host.example.test", "192.0.2.1", 100);
    server_.addIp("host.example.test", "192.0.2.2", 50);
    server_.addIp("host.example.test", "2001:db8::1", 200);
    server_.addIp("v4.example.test", "192.0.2.3", 70);
    server_.addMx("mxonly.example.test", 10, "mx.example.test", 300);
    server_.start();
  }

  AresOptions options(int timeoutMs = 5000, int tries = 2) const {
    AresOptions o;
    o.servers = {server_.address()};
    o.timeoutMs = timeoutMs;
    o.tries = tries;
    return o;
  }

  // One lookup on a fresh loop and resolver; checks the callback comes later, on the loop.
  template <typename Answer, typename Start>
  Answer runOne(const AresOptions& opts, Start start) {
    net::EventLoop loop;
    std::string error;
    std::unique_ptr<AresResolver> resolver = AresResolver::create(loop, opts, error);
    if (!resolver) {
      ADD_FAILURE() << "create failed: " << error;
      return Answer{};
    }
    std::optional<Answer> answer;
    bool returned = false;
    int calls = 0;
    start(*resolver, [&](Answer a) {
      EXPECT_TRUE(returned) << "callback ran inline";
      EXPECT_TRUE(loop.inLoopThread());
      ++calls;
      answer = std::move(a);
      loop.stop();
    });
    returned = true;
    net::Timer watchdog(loop);
    watchdog.start(kWatchdogMs, 0, [&loop] {
      ADD_FAILURE() << "no answer";
      loop.stop();
    });
    loop.run();
    EXPECT_EQ(calls, 1);
    return answer.value_or(Answer{});
  }

  MxAnswer mx(const std::string& domain, const AresOptions& opts) {
    return runOne<MxAnswer>(opts, [&](AresResolver& r, Resolver::MxCallback cb) {
      r.resolveMx(domain, std::move(cb));
    });
  }
  MxAnswer mx(const std::string& domain) { return mx(domain, options()); }

  AddressAnswer addresses(const std::string& host, std::uint16_t port) {
    return runOne<AddressAnswer>(options(), [&](AresResolver& r, Resolver::AddressCallback cb) {
      r.resolveAddresses(host, port, std::move(cb));
    });
  }

  dnstest::TestDnsServer server_;
};

TEST_F(AresResolverTest, MxRecordsSortedByPreferenceWithTheMinimumTtl) {
  MxAnswer a = mx("mx.example.test");
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_THAT(mxList(a), ElementsAre(std::pair<std::string, int>{"mx1.example.test", 10},
                                     std::pair<std::string, int>{"mx2.example.test", 20},
                                     std::pair<std::string, int>{"mx3.example.test", 20}));
  EXPECT_EQ(a.ttl, 300u);
  EXPECT_EQ(a.error, "");
}

TEST_F(AresResolverTest, MxDomainIsCaseInsensitiveAndMayEndWithADot) {
  MxAnswer a = mx("MX.Example.Test.");
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_EQ(a.records.size(), 3u);
}

TEST_F(AresResolverTest, NameWithoutMxIsNoDataCachedForTheSoaNegativeTtl) {
  MxAnswer a = mx("nodata.example.test");
  EXPECT_EQ(a.rcode, Rcode::NoData);
  EXPECT_TRUE(a.records.empty());
  EXPECT_EQ(a.ttl, 120u);  // min(SOA TTL 3600, SOA MINIMUM 120)
  EXPECT_EQ(a.error, "MX lookup for nodata.example.test: no MX records");
}

TEST_F(AresResolverTest, MissingDomainIsNxDomain) {
  MxAnswer a = mx("nx.example.test");
  EXPECT_EQ(a.rcode, Rcode::NxDomain);
  EXPECT_EQ(a.ttl, 300u);  // no SOA: the default
  EXPECT_EQ(a.error, "MX lookup for nx.example.test: domain does not exist (NXDOMAIN)");

  MxAnswer unknown = mx("unknown.example.test");
  EXPECT_EQ(unknown.rcode, Rcode::NxDomain);
}

TEST_F(AresResolverTest, NxDomainTtlComesFromTheSoa) {
  MxAnswer a = mx("nx-soa.example.test");
  EXPECT_EQ(a.rcode, Rcode::NxDomain);
  EXPECT_EQ(a.ttl, 30u);
}

TEST_F(AresResolverTest, NullMxMeansTheDomainTakesNoMail) {
  MxAnswer a = mx("nullmx.example.test");
  EXPECT_EQ(a.rcode, Rcode::NullMx);
  EXPECT_TRUE(a.records.empty());
  EXPECT_EQ(a.ttl, 3600u);
  EXPECT_EQ(a.error,
            "MX lookup for nullmx.example.test: the domain accepts no mail (null MX, RFC 7505)");
}

TEST_F(AresResolverTest, ServFailIsTempFail) {
  MxAnswer a = mx("servfail.example.test");
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_EQ(a.error, "MX lookup for servfail.example.test: server failure (SERVFAIL)");
}

TEST_F(AresResolverTest, RefusedIsTempFail) {
  MxAnswer a = mx("refused.example.test");
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_EQ(a.error,
            "MX lookup for refused.example.test: query refused by the DNS server (REFUSED)");
}

TEST_F(AresResolverTest, MalformedMxAnswerIsTempFail) {
  MxAnswer a = mx("badmx.example.test");
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_THAT(a.error, HasSubstr("MX lookup for badmx.example.test: cannot parse the MX answer: "));
  EXPECT_TRUE(a.records.empty());
}

TEST_F(AresResolverTest, ServFailMovesOnToTheNextServer) {
  dnstest::TestDnsServer failing;
  failing.setBehaviour("mx.example.test", Behaviour::ServFail);
  failing.start();
  AresOptions opts = options();
  opts.servers = {failing.address(), server_.address()};
  MxAnswer a = mx("mx.example.test", opts);
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_EQ(a.records.size(), 3u);
  EXPECT_EQ(failing.queries(), 1);
}

TEST_F(AresResolverTest, ServFailFromEveryServerIsTempFail) {
  dnstest::TestDnsServer failing;
  failing.setBehaviour("servfail.example.test", Behaviour::ServFail);
  failing.start();
  AresOptions opts = options();
  opts.servers = {failing.address(), server_.address()};
  MxAnswer a = mx("servfail.example.test", opts);
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  // With several servers c-ares 1.18 keeps no rcode once it has failed over.
  EXPECT_EQ(a.error,
            "MX lookup for servfail.example.test: no DNS server gave a usable answer (each "
            "answered SERVFAIL, REFUSED or NOTIMP, or could not be reached)");
}

TEST_F(AresResolverTest, NoAnswerIsTempFailAfterTheTimeout) {
  MxAnswer a = mx("silent.example.test", options(200, 1));
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_EQ(a.error,
            "MX lookup for silent.example.test: no answer from the DNS server after 1 try");
  EXPECT_EQ(server_.queries(), 1);
}

TEST_F(AresResolverTest, NoAnswerFromSeveralServersIsTempFail) {
  dnstest::TestDnsServer other;
  other.setBehaviour("silent.example.test", Behaviour::Silent);
  other.start();
  AresOptions opts = options(200, 1);
  opts.servers = {server_.address(), other.address()};
  MxAnswer a = mx("silent.example.test", opts);
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_EQ(a.error,
            "MX lookup for silent.example.test: no answer from any of 2 DNS servers after 1 try "
            "each");
  EXPECT_EQ(server_.queries(), 1);
  EXPECT_EQ(other.queries(), 1);
}

TEST_F(AresResolverTest, TimerRetriesALostQuery) {
  MxAnswer a = mx("lossy.example.test", options(200, 4));
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_THAT(mxList(a), ElementsAre(std::pair<std::string, int>{"mx.lossy.example.test", 5}));
  EXPECT_GE(server_.queries(), 2);
}

TEST_F(AresResolverTest, UnreachableServerIsTempFail) {
  // A UDP port nobody listens on: the kernel answers with ICMP port unreachable.
  std::string address;
  {
    dnstest::TestDnsServer closed;  // bound, never started, then closed: the port is free
    address = closed.address();
  }
  AresOptions opts = options(5000, 1);
  opts.servers = {address};
  MxAnswer a = mx("mx.example.test", opts);
  EXPECT_EQ(a.rcode, Rcode::TempFail);
  EXPECT_EQ(a.error,
            "MX lookup for mx.example.test: could not contact the DNS server (connection refused)");
}

TEST_F(AresResolverTest, EmptyDomainIsRejectedWithoutAQuery) {
  MxAnswer a = mx("");
  EXPECT_EQ(a.rcode, Rcode::NxDomain);
  EXPECT_EQ(a.error, "MX lookup for '': not a valid domain name");
  EXPECT_EQ(server_.queries(), 0);
}

TEST_F(AresResolverTest, AddressesFromAAndAaaaWithTheRequestedPort) {
  AddressAnswer a = addresses("host.example.test", 25);
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_THAT(strs(a.endpoints),
              UnorderedElementsAre("192.0.2.1:25", "192.0.2.2:25", "[2001:db8::1]:25"));
  EXPECT_EQ(a.ttl, 50u);
}

TEST_F(AresResolverTest, AddressesWithOnlyIpv4) {
  AddressAnswer a = addresses("v4.example.test", 2525);
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_THAT(strs(a.endpoints), ElementsAre("192.0.2.3:2525"));
  EXPECT_EQ(a.ttl, 70u);
}

TEST_F(AresResolverTest, AddressNegativeAnswers) {
  AddressAnswer nx = addresses("nx.example.test", 25);
  EXPECT_EQ(nx.rcode, Rcode::NxDomain);
  EXPECT_EQ(nx.error, "address lookup for nx.example.test: domain does not exist (NXDOMAIN)");

  AddressAnswer nodata = addresses("mxonly.example.test", 25);
  EXPECT_EQ(nodata.rcode, Rcode::NoData);
  EXPECT_EQ(nodata.error,
            "address lookup for mxonly.example.test: no IPv4 or IPv6 addresses (no A or AAAA "
            "records)");

  AddressAnswer servfail = addresses("servfail.example.test", 25);
  EXPECT_EQ(servfail.rcode, Rcode::TempFail);
  EXPECT_EQ(servfail.error, "address lookup for servfail.example.test: server failure (SERVFAIL)");
}

TEST_F(AresResolverTest, IpLiteralsAreAnsweredWithoutAQuery) {
  AddressAnswer v4 = addresses("192.0.2.7", 2525);
  EXPECT_EQ(v4.rcode, Rcode::Ok);
  EXPECT_THAT(strs(v4.endpoints), ElementsAre("192.0.2.7:2525"));

  AddressAnswer v6 = addresses("2001:db8::2", 25);
  EXPECT_EQ(v6.rcode, Rcode::Ok);
  EXPECT_THAT(strs(v6.endpoints), ElementsAre("[2001:db8::2]:25"));

  AddressAnswer bracketed = addresses("[2001:db8::3]", 587);
  EXPECT_EQ(bracketed.rcode, Rcode::Ok);
  EXPECT_THAT(strs(bracketed.endpoints), ElementsAre("[2001:db8::3]:587"));

  EXPECT_EQ(server_.queries(), 0);
}

TEST_F(AresResolverTest, HostsFileAnswerIsStillDeliveredLater) {
  // c-ares answers "localhost" from /etc/hosts (or RFC 6761) inside ares_getaddrinfo
  // itself; runOne checks the callback still waits for the loop.
  AddressAnswer a = addresses("localhost", 25);
  EXPECT_EQ(a.rcode, Rcode::Ok) << a.error;
  EXPECT_FALSE(a.endpoints.empty());
  for (const std::string& e : strs(a.endpoints)) {
    EXPECT_TRUE(e == "127.0.0.1:25" || e == "[::1]:25") << e;
  }
  EXPECT_EQ(server_.queries(), 0);
}

TEST_F(AresResolverTest, ManyConcurrentLookupsAllAnswered) {
  net::EventLoop loop;
  std::string error;
  auto resolver = AresResolver::create(loop, options(), error);
  ASSERT_NE(resolver, nullptr) << error;
  constexpr int kEach = 30;
  int pending = 2 * kEach;
  int ok = 0;
  auto finish = [&] {
    if (--pending == 0) {
      loop.stop();
    }
  };
  for (int i = 0; i < kEach; ++i) {
    resolver->resolveMx("mx.example.test", [&](MxAnswer a) {
      ok += (a.rcode == Rcode::Ok && a.records.size() == 3) ? 1 : 0;
      finish();
    });
    resolver->resolveAddresses("host.example.test", 25, [&](AddressAnswer a) {
      ok += (a.rcode == Rcode::Ok && a.endpoints.size() == 3) ? 1 : 0;
      finish();
    });
  }
  net::Timer watchdog(loop);
  watchdog.start(kWatchdogMs, 0, [&loop] {
    ADD_FAILURE() << "lookups never finished";
    loop.stop();
  });
  loop.run();
  EXPECT_EQ(ok, 2 * kEach);
}

TEST_F(AresResolverTest, DestroyingWithQueriesInFlightMakesNoCallback) {
  net::EventLoop loop;
  std::string error;
  auto resolver = AresResolver::create(loop, options(), error);
  ASSERT_NE(resolver, nullptr) << error;
  int callbacks = 0;
  // Three queries reach the server and stay unanswered: MX, then A and AAAA together.
  std::atomic<int> seen{0};
  server_.onQuery([&](const std::string& name, std::uint16_t) {
    if (name == "silent.example.test" && seen.fetch_add(1) + 1 == 3) {
      loop.post([&] {
        resolver.reset();
        // Anything the destroyed resolver had queued would run before this.
        loop.post([&] { loop.stop(); });
      });
    }
  });
  resolver->resolveMx("silent.example.test", [&](MxAnswer) { ++callbacks; });
  resolver->resolveAddresses("silent.example.test", 25, [&](AddressAnswer) { ++callbacks; });
  net::Timer watchdog(loop);
  watchdog.start(kWatchdogMs, 0, [&loop] {
    ADD_FAILURE() << "the server never saw the queries";
    loop.stop();
  });
  loop.run();
  server_.onQuery(nullptr);
  EXPECT_EQ(resolver, nullptr);
  EXPECT_EQ(callbacks, 0);
}

TEST_F(AresResolverTest, DestroyingBeforeTheLoopRunsDropsQueuedAnswers) {
  net::EventLoop loop;
  std::string error;
  auto resolver = AresResolver::create(loop, options(), error);
  ASSERT_NE(resolver, nullptr) << error;
  int callbacks = 0;
  resolver->resolveAddresses("192.0.2.1", 25, [&](AddressAnswer) { ++callbacks; });
  resolver->resolveMx("", [&](MxAnswer) { ++callbacks; });
  resolver->resolveMx("mx.example.test", [&](MxAnswer) { ++callbacks; });
  resolver.reset();
  loop.post([&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(callbacks, 0);
}

TEST_F(AresResolverTest, ACallbackMayDestroyTheResolver) {
  net::EventLoop loop;
  std::string error;
  auto resolver = AresResolver::create(loop, options(), error);
  ASSERT_NE(resolver, nullptr) << error;
  int callbacks = 0;
  auto destroy = [&](auto) {
    ++callbacks;
    resolver.reset();
    loop.post([&] { loop.stop(); });
  };
  // Both literal answers are queued together; the second dies with the resolver.
  resolver->resolveAddresses("192.0.2.1", 25, destroy);
  resolver->resolveAddresses("192.0.2.2", 25, destroy);
  loop.run();
  EXPECT_EQ(callbacks, 1);
}

TEST(AresResolverCreate, RejectsInvalidServersWithTheirText) {
  net::EventLoop loop;
  for (const std::string bad : {"dns.example.test", "127.0.0.1:0", "127.0.0.1:99999", "300.1.2.3",
                                "[::1", "", "127.0.0.1:53x"}) {
    AresOptions opts;
    opts.servers = {"127.0.0.1", bad};
    std::string error;
    EXPECT_EQ(AresResolver::create(loop, opts, error), nullptr) << bad;
    EXPECT_THAT(error, HasSubstr("invalid DNS server '" + bad + "'")) << bad;
  }
}

TEST(AresResolverCreate, AcceptsIpIpPortAndBracketedIpv6) {
  net::EventLoop loop;
  AresOptions opts;
  opts.servers = {"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]", "[::1]:5353"};
  std::string error;
  EXPECT_NE(AresResolver::create(loop, opts, error), nullptr) << error;
}

TEST(AresResolverCreate, RejectsNonPositiveTimeoutAndTries) {
  net::EventLoop loop;
  std::string error;
  AresOptions opts;
  opts.servers = {"127.0.0.1"};
  opts.timeoutMs = 0;
  EXPECT_EQ(AresResolver::create(loop, opts, error), nullptr);
  EXPECT_EQ(error, "DNS timeout must be a positive number of milliseconds, got 0");
  opts.timeoutMs = 100;
  opts.tries = 0;
  EXPECT_EQ(AresResolver::create(loop, opts, error), nullptr);
  EXPECT_EQ(error, "DNS tries must be at least 1, got 0");
}

TEST(RcodeName, NamesEveryCode) {
  EXPECT_STREQ(rcodeName(Rcode::Ok), "ok");
  EXPECT_STREQ(rcodeName(Rcode::NoData), "nodata");
  EXPECT_STREQ(rcodeName(Rcode::NxDomain), "nxdomain");
  EXPECT_STREQ(rcodeName(Rcode::NullMx), "nullmx");
  EXPECT_STREQ(rcodeName(Rcode::TempFail), "tempfail");
}

}  // namespace
}  // namespace salvo::dns
