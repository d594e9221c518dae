// rcodeName and the table-driven FakeResolver. The c-ares resolver is in ares_resolver.cpp.
#include "engine/dns/resolver.h"

#include <fmt/format.h>

#include <utility>

#include "engine/dns/names.h"

namespace salvo::dns {

namespace {

// The TTL the fake reports for address answers (its tables carry none).
constexpr std::uint32_t kFakeAddressTtl = 300;

template <typename Table>
typename Table::const_iterator findName(const Table& table, const std::string& name) {
  auto it = table.find(name);
  if (it == table.end()) {
    it = table.find(normalizeName(name));
  }
  return it;
}

}  // namespace

const char* rcodeName(Rcode r) {
  switch (r) {
    case Rcode::Ok:
      return "ok";
    case Rcode::NoData:
      return "nodata";
    case Rcode::NxDomain:
      return "nxdomain";
    case Rcode::NullMx:
      return "nullmx";
    case Rcode::TempFail:
      return "tempfail";
  }
  return "unknown";
}

void FakeResolver::resolveMx(const std::string& domain, MxCallback cb) {
  MxAnswer answer;
  auto it = findName(mx_, domain);
  if (it != mx_.end()) {
    answer = it->second;
  } else {
    answer.rcode = Rcode::NxDomain;
    answer.error = fmt::format("MX lookup for {}: domain does not exist (fake resolver)", domain);
  }
  // Copy the answer now: the fake may be gone by the time the loop runs the callback.
  loop_.post([cb = std::move(cb), answer = std::move(answer)]() mutable { cb(std::move(answer)); });
}

void FakeResolver::resolveAddresses(const std::string& host, std::uint16_t port,
                                    AddressCallback cb) {
  AddressAnswer answer;
  if (auto literal = ipLiteralEndpoint(host, port)) {
    answer.rcode = Rcode::Ok;
    answer.endpoints.push_back(*literal);
    answer.ttl = kFakeAddressTtl;
  } else if (auto it = findName(addrs_, host); it != addrs_.end()) {
    answer.rcode = Rcode::Ok;
    answer.ttl = kFakeAddressTtl;
    for (const std::string& ip : it->second) {
      auto endpoint = net::Endpoint::fromIp(ip, port);
      if (!endpoint) {
        answer = AddressAnswer{};
        answer.rcode = Rcode::TempFail;
        answer.error = fmt::format(
            "address lookup for {}: fake resolver table holds '{}', which is not an IP address",
            host, ip);
        break;
      }
      answer.endpoints.push_back(*endpoint);
    }
    if (answer.rcode == Rcode::Ok && answer.endpoints.empty()) {
      answer.rcode = Rcode::NoData;
      answer.error = fmt::format("address lookup for {}: no addresses (fake resolver)", host);
    }
  } else {
    answer.rcode = Rcode::NxDomain;
    answer.error =
        fmt::format("address lookup for {}: domain does not exist (fake resolver)", host);
  }
  loop_.post([cb = std::move(cb), answer = std::move(answer)]() mutable { cb(std::move(answer)); });
}

}  // namespace salvo::dns
