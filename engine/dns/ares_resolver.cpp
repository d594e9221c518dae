// AresResolver: c-ares 1.18 driven by an EventLoop. c-ares tells us which sockets it wants
// watched (ARES_OPT_SOCK_STATE_CB); an FdWatcher per socket feeds readiness back through
// ares_process_fd, and one Timer fires at ares_timeout() so retries and timeouts happen
// without any blocking call. Answers are never handed to the user from inside c-ares:
// each one is posted to the loop, so a user callback may destroy the resolver, and no
// callback ever runs inline from resolveMx/resolveAddresses (c-ares itself answers some
// lookups inline, e.g. from /etc/hosts). A liveness token drops answers still queued when
// the resolver is destroyed.
#include <ares.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "engine/dns/names.h"
#include "engine/dns/resolver.h"
#include "engine/dns/wire.h"

namespace salvo::dns {

namespace {

// Used when a response carries no TTL we can read (no SOA in a negative answer, an
// answer from /etc/hosts, an IP literal).
constexpr std::uint32_t kDefaultTtl = 300;

// Statuses meaning the name does not exist: permanent, as Rcode::NxDomain says.
bool isNotFound(int status) {
  return status == ARES_ENOTFOUND || status == ARES_EBADNAME;
}

// A name c-ares can be handed as a C string: non-empty, no NUL inside.
bool isQueryableName(const std::string& name) {
  return !name.empty() && name.find('\0') == std::string::npos;
}

std::uint64_t toMs(const timeval& tv) {
  // Round up: waking a millisecond early would find nothing due and spin.
  return static_cast<std::uint64_t>(tv.tv_sec) * 1000 +
         (static_cast<std::uint64_t>(tv.tv_usec) + 999) / 1000;
}

// "ip", "[v6]", "ip:port" or "[v6]:port" -> the canonical "ip:port" / "[v6]:port" that
// c-ares accepts.
bool serverEntry(const std::string& text, std::string& out, std::string& error) {
  constexpr std::uint16_t kDnsPort = 53;
  std::optional<net::Endpoint> endpoint = ipLiteralEndpoint(text, kDnsPort);
  if (!endpoint) {
    std::string host;
    std::uint16_t port = 0;
    if (net::splitHostPort(text, host, port)) {
      if (port == 0) {
        error = fmt::format("invalid DNS server '{}': port must be between 1 and 65535", text);
        return false;
      }
      endpoint = net::Endpoint::fromIp(host, port);
    }
  }
  if (!endpoint) {
    error = fmt::format(
        "invalid DNS server '{}': expected an IP address, 'ip:port' or '[ipv6]:port' "
        "(DNS servers cannot be host names)",
        text);
    return false;
  }
  out = endpoint->str();
  return true;
}

}  // namespace

struct AresResolver::Impl {
  Impl(net::EventLoop& l, const AresOptions& o) : loop(l), options(o), timer(l) {}
  ~Impl();

  void onSocketState(ares_socket_t fd, bool readable, bool writable);
  void process(ares_socket_t readFd, ares_socket_t writeFd);
  void armTimer();

  template <typename Answer>
  void deliver(std::function<void(Answer)> cb, Answer answer) {
    loop.post([alive = std::weak_ptr<int>(alive), cb = std::move(cb),
               answer = std::move(answer)]() mutable {
      if (alive.expired()) {
        return;  // the resolver is gone: its answers die with it
      }
      cb(std::move(answer));
    });
  }

  net::EventLoop& loop;
  AresOptions options;
  ares_channel channel = nullptr;
  net::Timer timer;
  std::unordered_map<ares_socket_t, std::unique_ptr<net::FdWatcher>> watchers;
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  bool destroying = false;
  // ARES_FLAG_NOCHECKRESP is set: SERVFAIL, REFUSED and NOTIMP reach our callbacks, and
  // ECONNREFUSED only means the server could not be reached.
  bool rcodesPassedThrough = false;
  std::size_t serverCount = 1;
};

namespace {

struct MxQuery {
  AresResolver::Impl* impl;
  std::string domain;
  Resolver::MxCallback cb;
};

struct AddressQuery {
  AresResolver::Impl* impl;
  std::string host;
  std::uint16_t port;
  Resolver::AddressCallback cb;
};

void sockStateCallback(void* data, ares_socket_t fd, int readable, int writable) {
  static_cast<AresResolver::Impl*>(data)->onSocketState(fd, readable != 0, writable != 0);
}

std::string describeStatus(int status, const AresResolver::Impl& impl) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "domain does not exist (NXDOMAIN)";
    case ARES_ESERVFAIL:
      return "server failure (SERVFAIL)";
    case ARES_EREFUSED:
      return "query refused by the DNS server (REFUSED)";
    case ARES_EFORMERR:
      return "the DNS server rejected the query as malformed (FORMERR)";
    case ARES_ENOTIMP:
      return "the DNS server does not implement the query (NOTIMP)";
    case ARES_ETIMEOUT: {
      const int tries = impl.options.tries;
      if (impl.serverCount == 1) {
        return fmt::format("no answer from the DNS server after {} {}", tries,
                           tries == 1 ? "try" : "tries");
      }
      return fmt::format("no answer from any of {} DNS servers after {} {} each", impl.serverCount,
                         tries, tries == 1 ? "try" : "tries");
    }
    case ARES_ECONNREFUSED:
      if (impl.rcodesPassedThrough) {
        return "could not contact the DNS server (connection refused)";
      }
      return "no DNS server gave a usable answer (each answered SERVFAIL, REFUSED or NOTIMP, "
             "or could not be reached)";
    case ARES_EBADRESP:
      return "malformed DNS response";
    case ARES_EBADNAME:
      return "not a valid domain name";
    case ARES_ENOMEM:
      return "out of memory";
    default:
      return ares_strerror(status);
  }
}

MxAnswer negativeMx(Rcode rcode, const std::string& error,
                    const std::optional<ResponseTtls>& ttls) {
  MxAnswer answer;
  answer.rcode = rcode;
  answer.error = error;
  answer.ttl = ttls && ttls->negativeTtl ? *ttls->negativeTtl : kDefaultTtl;
  return answer;
}

MxAnswer buildMxAnswer(const AresResolver::Impl& impl, const std::string& domain, int status,
                       const unsigned char* abuf, int alen) {
  std::optional<ResponseTtls> ttls;
  if (abuf != nullptr && alen > 0) {
    ttls = readResponseTtls(abuf, static_cast<std::size_t>(alen));
  }
  if (status == ARES_ENODATA) {
    return negativeMx(Rcode::NoData, fmt::format("MX lookup for {}: no MX records", domain), ttls);
  }
  if (isNotFound(status)) {
    return negativeMx(Rcode::NxDomain,
                      fmt::format("MX lookup for {}: {}", domain, describeStatus(status, impl)),
                      ttls);
  }
  if (status != ARES_SUCCESS) {
    MxAnswer answer;
    answer.rcode = Rcode::TempFail;
    answer.error = fmt::format("MX lookup for {}: {}", domain, describeStatus(status, impl));
    return answer;
  }

  ares_mx_reply* reply = nullptr;
  int rc = ares_parse_mx_reply(abuf, alen, &reply);
  if (rc == ARES_ENODATA) {
    // Answers present, but none of type MX (a CNAME chain ending nowhere, say).
    return negativeMx(Rcode::NoData, fmt::format("MX lookup for {}: no MX records", domain), ttls);
  }
  if (rc != ARES_SUCCESS) {
    MxAnswer answer;
    answer.rcode = Rcode::TempFail;
    answer.error =
        fmt::format("MX lookup for {}: cannot parse the MX answer: {}", domain, ares_strerror(rc));
    return answer;
  }
  MxAnswer answer;
  for (const ares_mx_reply* r = reply; r != nullptr; r = r->next) {
    answer.records.push_back(MxRecord{normalizeName(r->host), r->priority});
  }
  ares_free_data(reply);
  answer.ttl = ttls && ttls->answerTtl ? *ttls->answerTtl : kDefaultTtl;

  // RFC 7505: "0 ." says the domain takes no mail. A root target can never be connected
  // to, so a set made only of root targets is a null MX whatever the preference, and a
  // root target mixed with real hosts (which RFC 7505 forbids publishing) is ignored.
  auto isRoot = [](const MxRecord& r) { return r.host.empty(); };
  if (std::all_of(answer.records.begin(), answer.records.end(), isRoot)) {
    answer.records.clear();
    answer.rcode = Rcode::NullMx;
    answer.error =
        fmt::format("MX lookup for {}: the domain accepts no mail (null MX, RFC 7505)", domain);
    return answer;
  }
  answer.records.erase(std::remove_if(answer.records.begin(), answer.records.end(), isRoot),
                       answer.records.end());
  // Stable: equal preferences keep the server's order; shuffling them is policy, not ours.
  std::stable_sort(
      answer.records.begin(), answer.records.end(),
      [](const MxRecord& a, const MxRecord& b) { return a.preference < b.preference; });
  answer.rcode = Rcode::Ok;
  return answer;
}

void mxCallback(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
  std::unique_ptr<MxQuery> query(static_cast<MxQuery*>(arg));
  if (status == ARES_EDESTRUCTION) {
    return;  // ares_destroy from ~AresResolver: the caller asked for silence
  }
  query->impl->deliver(std::move(query->cb),
                       buildMxAnswer(*query->impl, query->domain, status, abuf, alen));
}

AddressAnswer buildAddressAnswer(const AddressQuery& query, int status,
                                 const ares_addrinfo* result) {
  const AresResolver::Impl& impl = *query.impl;
  AddressAnswer answer;
  if (status == ARES_SUCCESS && result != nullptr) {
    std::optional<std::uint32_t> ttl;
    for (const ares_addrinfo_node* node = result->nodes; node != nullptr; node = node->ai_next) {
      net::Endpoint endpoint;
      if (node->ai_family == AF_INET && node->ai_addrlen >= sizeof(sockaddr_in)) {
        sockaddr_in sin;
        std::memcpy(&sin, node->ai_addr, sizeof(sin));
        sin.sin_port = htons(query.port);
        std::memcpy(&endpoint.addr, &sin, sizeof(sin));
      } else if (node->ai_family == AF_INET6 && node->ai_addrlen >= sizeof(sockaddr_in6)) {
        sockaddr_in6 sin6;
        std::memcpy(&sin6, node->ai_addr, sizeof(sin6));
        sin6.sin6_port = htons(query.port);
        std::memcpy(&endpoint.addr, &sin6, sizeof(sin6));
      } else {
        continue;
      }
      answer.endpoints.push_back(endpoint);
      auto nodeTtl = static_cast<std::uint32_t>(std::max(node->ai_ttl, 0));
      ttl = ttl ? std::min(*ttl, nodeTtl) : nodeTtl;
    }
    if (!answer.endpoints.empty()) {
      answer.rcode = Rcode::Ok;
      answer.ttl = ttl.value_or(kDefaultTtl);
      return answer;
    }
    status = ARES_ENODATA;
  }
  if (status == ARES_ENODATA) {
    answer.rcode = Rcode::NoData;
    answer.ttl = kDefaultTtl;
    answer.error = fmt::format(
        "address lookup for {}: no IPv4 or IPv6 addresses (no A or AAAA records)", query.host);
  } else if (isNotFound(status)) {
    answer.rcode = Rcode::NxDomain;
    answer.ttl = kDefaultTtl;
    answer.error =
        fmt::format("address lookup for {}: {}", query.host, describeStatus(status, impl));
  } else {
    answer.rcode = Rcode::TempFail;
    answer.error =
        fmt::format("address lookup for {}: {}", query.host, describeStatus(status, impl));
  }
  return answer;
}

void addressCallback(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<AddressQuery> query(static_cast<AddressQuery*>(arg));
  std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(result, &ares_freeaddrinfo);
  if (status == ARES_EDESTRUCTION) {
    return;
  }
  AddressAnswer answer = buildAddressAnswer(*query, status, result);
  query->impl->deliver(std::move(query->cb), std::move(answer));
}

ares_options baseOptions(const AresOptions& options) {
  ares_options opts{};
  opts.timeout = options.timeoutMs;
  opts.tries = options.tries;
  // No search domains: mail hosts are fully qualified, and appending the local domain to
  // an MX host name would deliver to the wrong machine.
  opts.domains = nullptr;
  opts.ndomains = 0;
  return opts;
}

constexpr int kBaseMask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS;

// How many servers /etc/resolv.conf gives c-ares; 0 with `error` set on failure.
std::size_t countSystemServers(std::string& error) {
  ares_options opts = baseOptions(AresOptions{});
  ares_channel probe = nullptr;
  int rc = ares_init_options(&probe, &opts, kBaseMask);
  if (rc != ARES_SUCCESS) {
    error = fmt::format("cannot initialise the DNS resolver: {}", ares_strerror(rc));
    return 0;
  }
  ares_addr_port_node* list = nullptr;
  rc = ares_get_servers_ports(probe, &list);
  std::size_t count = 0;
  for (const ares_addr_port_node* node = list; node != nullptr; node = node->next) {
    ++count;
  }
  ares_free_data(list);
  ares_destroy(probe);
  if (rc != ARES_SUCCESS || count == 0) {
    error = fmt::format("cannot read the system's DNS servers: {}",
                        rc != ARES_SUCCESS ? ares_strerror(rc) : "none configured");
    return 0;
  }
  return count;
}

ares_channel openChannel(AresResolver::Impl* impl, const AresOptions& options,
                         bool passRcodesThrough, const std::string& servers, std::string& error) {
  ares_options opts = baseOptions(options);
  opts.sock_state_cb = &sockStateCallback;
  opts.sock_state_cb_data = impl;
  opts.flags = passRcodesThrough ? ARES_FLAG_NOCHECKRESP : 0;
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, kBaseMask | ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS);
  if (rc != ARES_SUCCESS) {
    error = fmt::format("cannot initialise the DNS resolver: {}", ares_strerror(rc));
    return nullptr;
  }
  if (!servers.empty()) {
    rc = ares_set_servers_ports_csv(channel, servers.c_str());
    if (rc != ARES_SUCCESS) {
      error = fmt::format("cannot use DNS servers '{}': {}", servers, ares_strerror(rc));
      ares_destroy(channel);
      return nullptr;
    }
  }
  return channel;
}

}  // namespace

AresResolver::Impl::~Impl() {
  destroying = true;
  alive.reset();
  if (channel != nullptr) {
    // Ends every query with ARES_EDESTRUCTION (our callbacks free their state and stay
    // silent) and reports each socket closed, which drops its watcher.
    ares_destroy(channel);
    channel = nullptr;
  }
  watchers.clear();
}

void AresResolver::Impl::onSocketState(ares_socket_t fd, bool readable, bool writable) {
  if (!readable && !writable) {
    // c-ares is about to close fd: stop polling it first (libuv forbids polling a closed fd).
    watchers.erase(fd);
    return;
  }
  std::unique_ptr<net::FdWatcher>& watcher = watchers[fd];
  if (!watcher) {
    watcher = std::make_unique<net::FdWatcher>(loop, fd);
  }
  watcher->watch(readable, writable, [this, fd](bool canRead, bool canWrite) {
    process(canRead ? fd : ARES_SOCKET_BAD, canWrite ? fd : ARES_SOCKET_BAD);
  });
}

void AresResolver::Impl::process(ares_socket_t readFd, ares_socket_t writeFd) {
  ares_process_fd(channel, readFd, writeFd);
  armTimer();
}

void AresResolver::Impl::armTimer() {
  if (destroying) {
    return;
  }
  timeval buffer{};
  timeval* next = ares_timeout(channel, nullptr, &buffer);
  if (next == nullptr) {
    timer.stop();  // nothing outstanding
    return;
  }
  timer.start(toMs(*next), 0, [this] { process(ARES_SOCKET_BAD, ARES_SOCKET_BAD); });
}

std::unique_ptr<AresResolver> AresResolver::create(net::EventLoop& loop, const AresOptions& options,
                                                   std::string& error) {
  // Process-wide, once, thread-safe (a function-local static).
  static const int libraryStatus = ares_library_init(ARES_LIB_INIT_ALL);
  if (libraryStatus != ARES_SUCCESS) {
    error = fmt::format("cannot initialise c-ares: {}", ares_strerror(libraryStatus));
    return nullptr;
  }
  if (options.timeoutMs <= 0) {
    error = fmt::format("DNS timeout must be a positive number of milliseconds, got {}",
                        options.timeoutMs);
    return nullptr;
  }
  if (options.tries <= 0) {
    error = fmt::format("DNS tries must be at least 1, got {}", options.tries);
    return nullptr;
  }
  std::string servers;
  for (const std::string& text : options.servers) {
    std::string entry;
    if (!serverEntry(text, entry, error)) {
      return nullptr;
    }
    if (!servers.empty()) {
      servers += ',';
    }
    servers += entry;
  }

  // With several servers keep c-ares' failover: a SERVFAIL, REFUSED or NOTIMP answer
  // moves the query to the next server. c-ares 1.18 then reports the exhausted query as
  // ECONNREFUSED, losing the rcode. With one server there is nowhere to fail over to, so
  // let those answers through and report them precisely.
  std::size_t serverCount = options.servers.size();
  if (serverCount == 0) {
    serverCount = countSystemServers(error);
    if (serverCount == 0) {
      return nullptr;
    }
  }
  auto impl = std::make_unique<Impl>(loop, options);
  impl->serverCount = serverCount;
  impl->rcodesPassedThrough = serverCount == 1;
  impl->channel = openChannel(impl.get(), options, impl->rcodesPassedThrough, servers, error);
  if (impl->channel == nullptr) {
    return nullptr;
  }
  return std::unique_ptr<AresResolver>(new AresResolver(std::move(impl)));
}

AresResolver::AresResolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AresResolver::~AresResolver() = default;

void AresResolver::resolveMx(const std::string& domain, MxCallback cb) {
  if (!isQueryableName(domain)) {
    MxAnswer answer;
    answer.rcode = Rcode::NxDomain;
    answer.ttl = kDefaultTtl;
    answer.error = fmt::format("MX lookup for '{}': not a valid domain name", domain);
    impl_->deliver(std::move(cb), std::move(answer));
    return;
  }
  auto* query = new MxQuery{impl_.get(), domain, std::move(cb)};
  ares_query(impl_->channel, domain.c_str(), ns_c_in, ns_t_mx, &mxCallback, query);
  impl_->armTimer();
}

void AresResolver::resolveAddresses(const std::string& host, std::uint16_t port,
                                    AddressCallback cb) {
  if (auto literal = ipLiteralEndpoint(host, port)) {
    AddressAnswer answer;
    answer.rcode = Rcode::Ok;
    answer.endpoints.push_back(*literal);
    answer.ttl = kDefaultTtl;
    impl_->deliver(std::move(cb), std::move(answer));
    return;
  }
  if (!isQueryableName(host)) {
    AddressAnswer answer;
    answer.rcode = Rcode::NxDomain;
    answer.ttl = kDefaultTtl;
    answer.error = fmt::format("address lookup for '{}': not a valid host name", host);
    impl_->deliver(std::move(cb), std::move(answer));
    return;
  }
  auto* query = new AddressQuery{impl_.get(), host, port, std::move(cb)};
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  ares_getaddrinfo(impl_->channel, host.c_str(), nullptr, &hints, &addressCallback, query);
  impl_->armTimer();
}

}  // namespace salvo::dns
