// CachingResolver: the MX and address cache in front of a Resolver.
// Contract: a Resolver decorator on one loop thread (like the resolver it wraps). Answers
// are kept for their TTL (clamped to [minTtl, maxTtl]); NXDOMAIN, NoData and null MX are
// kept for the negative-cache TTL (RFC 2308 would take it from the SOA, which the answers
// we get do not carry: it is configuration here); temporary failures are never cached.
// Concurrent lookups of one name share one query. Every MX answer handed out has records
// of equal preference shuffled (RFC 5321 §5.1: spread the load over equal MX hosts), so
// the order differs between answers while preference order always holds. The clock and
// the random seed are injected for tests. Callbacks never run inline.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/dns/resolver.h"

namespace salvo::dns {

struct CacheOptions {
  std::uint32_t minTtlSec = 60;
  std::uint32_t maxTtlSec = 86'400;
  std::uint32_t negativeTtlSec = 300;
  std::uint64_t seed = 0;  // 0: a random seed
};

class CachingResolver : public Resolver {
 public:
  using Clock = std::function<std::int64_t()>;  // milliseconds, monotonic enough
  CachingResolver(net::EventLoop& loop, std::unique_ptr<Resolver> inner, Clock nowMs,
                  CacheOptions options = {});
  ~CachingResolver() override;

  void resolveMx(const std::string& domain, MxCallback cb) override;
  void resolveAddresses(const std::string& host, std::uint16_t port, AddressCallback cb) override;

  // Entries held (expired ones included until they are looked up again).
  std::size_t size() const { return mx_.size() + addresses_.size(); }
  // Queries sent to the wrapped resolver.
  std::uint64_t misses() const { return misses_; }

  // Shuffles runs of equal preference in `records` (already sorted by preference).
  static void shuffleTies(std::vector<MxRecord>& records, std::mt19937_64& rng);

 private:
  template <typename Answer>
  struct Entry {
    Answer answer;
    std::int64_t expiresMs = 0;
    bool ready = false;  // false while the query is in flight
    std::vector<std::function<void(Answer)>> waiters;
  };

  std::int64_t expiry(Rcode rcode, std::uint32_t ttl) const;
  void mxAnswered(const std::string& domain, MxAnswer answer);
  void addressesAnswered(const std::string& key, AddressAnswer answer);
  MxAnswer hand(const Entry<MxAnswer>& entry);

  net::EventLoop& loop_;
  std::unique_ptr<Resolver> inner_;
  Clock now_;
  CacheOptions options_;
  std::mt19937_64 rng_;
  std::unordered_map<std::string, Entry<MxAnswer>> mx_;
  std::unordered_map<std::string, Entry<AddressAnswer>> addresses_;
  std::uint64_t misses_ = 0;
  // Answers of the wrapped resolver can arrive after we are gone (it is destroyed with
  // us, but be safe against posted callbacks): they check this token.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace salvo::dns
