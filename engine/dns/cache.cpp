#include "engine/dns/cache.h"

#include <algorithm>
#include <utility>

namespace salvo::dns {

CachingResolver::CachingResolver(net::EventLoop& loop, std::unique_ptr<Resolver> inner, Clock nowMs,
                                 CacheOptions options)
    : loop_(loop),
      inner_(std::move(inner)),
      now_(std::move(nowMs)),
      options_(options),
      rng_(options.seed != 0 ? options.seed : std::random_device{}()) {}

CachingResolver::~CachingResolver() {
  *alive_ = false;
}

void CachingResolver::shuffleTies(std::vector<MxRecord>& records, std::mt19937_64& rng) {
  auto begin = records.begin();
  while (begin != records.end()) {
    auto end = std::find_if(begin, records.end(),
                            [&](const MxRecord& r) { return r.preference != begin->preference; });
    std::shuffle(begin, end, rng);
    begin = end;
  }
}

std::int64_t CachingResolver::expiry(Rcode rcode, std::uint32_t ttl) const {
  std::uint32_t seconds = 0;
  switch (rcode) {
    case Rcode::Ok:
      seconds = std::clamp(ttl, options_.minTtlSec, options_.maxTtlSec);
      break;
    case Rcode::NoData:
    case Rcode::NxDomain:
    case Rcode::NullMx:
      seconds = options_.negativeTtlSec;
      break;
    case Rcode::TempFail:
      seconds = 0;  // never cached: the next lookup asks again
      break;
  }
  return now_() + static_cast<std::int64_t>(seconds) * 1000;
}

MxAnswer CachingResolver::hand(const Entry<MxAnswer>& entry) {
  MxAnswer answer = entry.answer;
  const std::int64_t left = (entry.expiresMs - now_()) / 1000;
  answer.ttl = static_cast<std::uint32_t>(std::max<std::int64_t>(left, 0));
  shuffleTies(answer.records, rng_);
  return answer;
}

void CachingResolver::resolveMx(const std::string& domain, MxCallback cb) {
  auto [it, fresh] = mx_.try_emplace(domain);
  Entry<MxAnswer>& entry = it->second;
  if (!fresh && entry.ready && entry.expiresMs > now_()) {
    loop_.post([cb = std::move(cb), answer = hand(entry)]() mutable { cb(std::move(answer)); });
    return;
  }
  entry.waiters.push_back(std::move(cb));
  if (!fresh && !entry.ready) {
    return;  // a query is already in flight
  }
  entry.ready = false;
  ++misses_;
  inner_->resolveMx(domain, [this, alive = alive_, domain](MxAnswer answer) {
    if (*alive) {
      mxAnswered(domain, std::move(answer));
    }
  });
}

void CachingResolver::mxAnswered(const std::string& domain, MxAnswer answer) {
  auto it = mx_.find(domain);
  if (it == mx_.end()) {
    return;
  }
  Entry<MxAnswer>& entry = it->second;
  entry.answer = std::move(answer);
  entry.expiresMs = expiry(entry.answer.rcode, entry.answer.ttl);
  entry.ready = true;
  // Settle the cache before calling anyone: a callback may look the name up again.
  std::vector<std::pair<MxCallback, MxAnswer>> calls;
  for (auto& cb : entry.waiters) {
    calls.emplace_back(std::move(cb), hand(entry));
  }
  if (entry.answer.rcode == Rcode::TempFail) {
    mx_.erase(it);
  } else {
    entry.waiters.clear();
  }
  for (auto& [cb, a] : calls) {
    cb(std::move(a));  // already on the loop: called back by the wrapped resolver
  }
}

void CachingResolver::resolveAddresses(const std::string& host, std::uint16_t port,
                                       AddressCallback cb) {
  const std::string key = host + "|" + std::to_string(port);
  auto [it, fresh] = addresses_.try_emplace(key);
  Entry<AddressAnswer>& entry = it->second;
  if (!fresh && entry.ready && entry.expiresMs > now_()) {
    AddressAnswer answer = entry.answer;
    answer.ttl =
        static_cast<std::uint32_t>(std::max<std::int64_t>((entry.expiresMs - now_()) / 1000, 0));
    loop_.post(
        [cb = std::move(cb), answer = std::move(answer)]() mutable { cb(std::move(answer)); });
    return;
  }
  entry.waiters.push_back(std::move(cb));
  if (!fresh && !entry.ready) {
    return;
  }
  entry.ready = false;
  ++misses_;
  inner_->resolveAddresses(host, port, [this, alive = alive_, key](AddressAnswer answer) {
    if (*alive) {
      addressesAnswered(key, std::move(answer));
    }
  });
}

void CachingResolver::addressesAnswered(const std::string& key, AddressAnswer answer) {
  auto it = addresses_.find(key);
  if (it == addresses_.end()) {
    return;
  }
  Entry<AddressAnswer>& entry = it->second;
  entry.answer = std::move(answer);
  entry.expiresMs = expiry(entry.answer.rcode, entry.answer.ttl);
  entry.ready = true;
  std::vector<AddressCallback> waiters = std::move(entry.waiters);
  const AddressAnswer settled = entry.answer;
  if (settled.rcode == Rcode::TempFail) {
    addresses_.erase(it);
  } else {
    entry.waiters.clear();
  }
  for (auto& cb : waiters) {
    cb(settled);
  }
}

}  // namespace salvo::dns
