// DNS for delivery: MX lookups and address lookups, asynchronous, never blocking a loop.
// Contract: Resolver is the interface the dispatcher uses; AresResolver is the c-ares
// implementation driven by an EventLoop (FdWatcher + Timer, no blocking calls);
// FakeResolver answers from tables for tests. Callbacks run on the resolver's loop thread,
// never inline from the call that started the lookup.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/net/address.h"
#include "engine/net/loop.h"

namespace salvo::dns {

enum class Rcode {
  Ok,        // answers present
  NoData,    // the name exists but has no record of that type (MX: use implicit MX)
  NxDomain,  // the name does not exist: permanent
  NullMx,    // RFC 7505 "0 ." : the domain accepts no mail: permanent
  TempFail,  // SERVFAIL, timeout, refused, network: temporary
};
const char* rcodeName(Rcode r);

struct MxRecord {
  std::string host;  // lower case, no trailing dot
  std::uint16_t preference = 0;
};

struct MxAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<MxRecord> records;  // sorted by preference
  std::uint32_t ttl = 0;          // seconds
  std::string error;              // human text when not Ok
};

struct AddressAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<net::Endpoint> endpoints;  // IPv4 and IPv6, with the requested port
  std::uint32_t ttl = 0;
  std::string error;
};

class Resolver {
 public:
  using MxCallback = std::function<void(MxAnswer)>;
  using AddressCallback = std::function<void(AddressAnswer)>;
  virtual ~Resolver() = default;
  virtual void resolveMx(const std::string& domain, MxCallback cb) = 0;
  // IP literals are answered without a query.
  virtual void resolveAddresses(const std::string& host, std::uint16_t port,
                                AddressCallback cb) = 0;
};

struct AresOptions {
  // "ip" or "ip:port" servers; empty = the system's /etc/resolv.conf.
  std::vector<std::string> servers;
  int timeoutMs = 5000;
  int tries = 2;
};

// Create, use and destroy on the loop's thread: c-ares channels and loop handles are not
// thread-safe. Destroying it cancels every lookup in flight; their callbacks never run.
class AresResolver : public Resolver {
 public:
  // nullptr and `error` set when c-ares cannot be initialised (bad server address...).
  static std::unique_ptr<AresResolver> create(net::EventLoop& loop, const AresOptions& options,
                                              std::string& error);
  ~AresResolver() override;
  void resolveMx(const std::string& domain, MxCallback cb) override;
  void resolveAddresses(const std::string& host, std::uint16_t port, AddressCallback cb) override;

  struct Impl;

 private:
  explicit AresResolver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Answers from tables; anything not in them is NxDomain. Callbacks are posted to the loop.
class FakeResolver : public Resolver {
 public:
  explicit FakeResolver(net::EventLoop& loop) : loop_(loop) {}
  void setMx(const std::string& domain, MxAnswer answer) { mx_[domain] = std::move(answer); }
  void setAddresses(const std::string& host, std::vector<std::string> ips) {
    addrs_[host] = std::move(ips);
  }
  void resolveMx(const std::string& domain, MxCallback cb) override;
  void resolveAddresses(const std::string& host, std::uint16_t port, AddressCallback cb) override;

 private:
  net::EventLoop& loop_;
  std::map<std::string, MxAnswer> mx_;
  std::map<std::string, std::vector<std::string>> addrs_;
};

}  // namespace salvo::dns
