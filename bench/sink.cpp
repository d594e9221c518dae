#include "bench/sink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "engine/net/loop.h"
#include "engine/net/tcp.h"

namespace salvo::bench {

namespace {

// writev(2) until everything is written; false with errno set on failure.
bool writeAll(int fd, iovec* iov, int count) {
  while (count > 0) {
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

}  // namespace

// One event loop, its listener and the connections it accepted. Everything but the loop
// itself is touched only on the loop thread (or after the thread has been joined).
struct Sink::Worker {
  net::EventLoop loop;
  std::unique_ptr<net::TcpListener> listener;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections;

  void teardown() {
    listener.reset();
    connections.clear();
  }
};

// Joins one accepted socket to one SinkSession, and injects the faults that need a clock
// or a socket: the greeting delay (a timer, so other connections go on), the connection
// dropped at the greeting, the per-connection and sink-wide rate limits.
class Sink::Connection : public net::TcpHandler, public SinkSessionEvents {
 public:
  Connection(Sink& sink, Worker& worker, std::unique_ptr<net::TcpConnection> tcp,
             std::uint64_t number)
      : sink_(sink),
        worker_(worker),
        tcp_(std::move(tcp)),
        session_(sink.rules_, *this, number),
        number_(number) {}

  // May destroy the connection (a drop at the greeting): the caller must not touch it
  // afterwards.
  void begin() {
    const Profile& faults = sink_.faults_;
    if (faults.dropFraction > 0 &&
        faultHash(sink_.rules_.seed, fmt::format("connection {}", number_)) < faults.dropFraction) {
      sink_.dropped_.fetch_add(1, std::memory_order_relaxed);
      finish();  // destroying the TcpConnection closes the socket; nothing was sent
      return;
    }
    tcp_->start(*this);
    if (faults.greetingDelayMs == 0) {
      greet();
      return;
    }
    greetingTimer_ = std::make_unique<net::Timer>(worker_.loop);
    greetingTimer_->start(faults.greetingDelayMs, 0, [this] {
      sink_.delayedGreetings_.fetch_add(1, std::memory_order_relaxed);
      greet();
      if (!early_.empty()) {
        // A client that spoke before the greeting: its commands are served now.
        std::string early = std::move(early_);
        onData(early);  // may destroy this connection: the last statement
      }
    });
  }

  void onConnect(const std::string&) override {}

  void onData(std::string_view bytes) override {
    if (!greeted_) {
      early_.append(bytes);
      return;
    }
    if (tls_) {
      onTlsBytes(bytes);
    } else {
      session_.feed(bytes);
    }
    if (quit_) {
      finish();  // the 221 is queued: destroying the connection flushes it, then closes
    }
  }

  void onClosed(const std::string&) override {
    if (tls_ && !tls_->established()) {
      sink_.tlsFailed_.fetch_add(1, std::memory_order_relaxed);
    }
    finish();
  }

  void sendReply(std::string_view bytes) override {
    if (!tls_) {
      tcp_->write(bytes);
      return;
    }
    cipherOut_.clear();
    if (tls_->write(bytes, cipherOut_) == net::TlsStream::Result::Failed) {
      quit_ = true;  // nothing more can be said on this connection
      return;
    }
    tcp_->write(cipherOut_);
  }

  // The session accepted STARTTLS and its 220 went out in plaintext: from now on every
  // byte read is ciphertext. The session dropped whatever followed the command.
  void onStartTls() override { tls_ = std::make_unique<net::TlsServer>(*sink_.tlsContext_); }

  bool onMessage(const SinkMessage& message, std::string& error) override {
    if (sink_.options_.delayMs > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(sink_.options_.delayMs));
    }
    if (!sink_.options_.maildir.empty() && !sink_.deliver(message, scratch_, error)) {
      return false;
    }
    sink_.messages_.fetch_add(1, std::memory_order_relaxed);
    if (sink_.options_.measureRate) {
      sink_.recordMessageTime();
    }
    sink_.recipients_.fetch_add(message.recipients.size(), std::memory_order_relaxed);
    sink_.bytes_.fetch_add(message.size, std::memory_order_relaxed);
    return true;
  }

  void onRecipientRefused(std::string_view, bool permanent) override {
    (permanent ? sink_.rejected_ : sink_.deferred_).fetch_add(1, std::memory_order_relaxed);
  }

  void onQuit() override { quit_ = true; }

  // Without a reply: the queued replies to earlier commands still go out, then the socket
  // closes.
  void onDrop() override { quit_ = true; }

  MailAdmission onMail() override {
    const Profile& faults = sink_.faults_;
    const std::uint64_t now = worker_.loop.nowMs();
    if (faults.connectionRate > 0) {
      // Fixed one-second windows, from the first MAIL of the window.
      if (rateCount_ == 0 || now - rateWindowMs_ >= 1000) {
        rateWindowMs_ = now;
        rateCount_ = 0;
      }
      if (static_cast<double>(rateCount_ + 1) > faults.connectionRate) {
        sink_.rateLimited_.fetch_add(1, std::memory_order_relaxed);
        return MailAdmission::RateLimited;
      }
      ++rateCount_;
    }
    if (faults.rateLimit > 0 && !sink_.admitSinkWide(now)) {
      sink_.rateLimited_.fetch_add(1, std::memory_order_relaxed);
      return MailAdmission::RateLimited;
    }
    return MailAdmission::Accept;
  }

  void onFault(SinkFault fault) override {
    switch (fault) {
      case SinkFault::Deferred4xx:
        sink_.faults4xx_.fetch_add(1, std::memory_order_relaxed);
        break;
      case SinkFault::Rejected5xx:
        sink_.faults5xx_.fetch_add(1, std::memory_order_relaxed);
        break;
      case SinkFault::ConnectionLimit:
        sink_.connectionLimited_.fetch_add(1, std::memory_order_relaxed);
        break;
      case SinkFault::Dropped:
        sink_.dropped_.fetch_add(1, std::memory_order_relaxed);
        break;
    }
  }

 private:
  void greet() {
    greeted_ = true;
    session_.greet();
  }

  void onTlsBytes(std::string_view bytes) {
    plainIn_.clear();
    cipherOut_.clear();
    const bool wasEstablished = tls_->established();
    const auto result = tls_->feed(bytes, plainIn_, cipherOut_);
    if (!cipherOut_.empty()) {
      tcp_->write(cipherOut_);  // handshake messages, or an alert before closing
    }
    switch (result) {
      case net::TlsStream::Result::Failed:
        if (!wasEstablished) {
          sink_.tlsFailed_.fetch_add(1, std::memory_order_relaxed);
        }
        quit_ = true;
        return;
      case net::TlsStream::Result::Closed:
        quit_ = true;
        return;
      case net::TlsStream::Result::Established:
        sink_.tls_.fetch_add(1, std::memory_order_relaxed);
        session_.tlsEstablished();
        break;
      case net::TlsStream::Result::Ok:
        break;
    }
    if (!plainIn_.empty()) {
      session_.feed(plainIn_);  // replies come back through sendReply(), into cipherOut_
    }
  }

  // Destroys this connection: nothing may touch a member afterwards.
  void finish() {
    sink_.openConnections_.fetch_sub(1, std::memory_order_relaxed);
    worker_.connections.erase(this);
  }

  Sink& sink_;
  Worker& worker_;
  std::unique_ptr<net::TcpConnection> tcp_;
  SinkSession session_;
  std::uint64_t number_;
  std::string scratch_;  // the maildir header, reused
  bool quit_ = false;
  bool greeted_ = false;
  std::string early_;  // bytes received before a delayed greeting
  std::unique_ptr<net::Timer> greetingTimer_;
  std::uint64_t rateWindowMs_ = 0;
  std::uint64_t rateCount_ = 0;
  std::unique_ptr<net::TlsServer> tls_;  // after STARTTLS
  std::string plainIn_;                  // decrypted input of one read
  std::string cipherOut_;                // encrypted output of one write
};

std::optional<Sink::Profile> Sink::profile(const std::string& name) {
  if (name == "accept-all") {
    return Profile{};
  }
  if (name == "realistic") {
    // The table of docs/sink.md: keep the two identical.
    Profile p;
    p.faults = {
        {{"gmail", "googlemail"}, 0.01, 0.005},
        {{"yahoo", "ymail", "aol"}, 0.03, 0.01},
        {{"outlook", "hotmail", "live", "msn"}, 0.02, 0.01},
        {{}, 0.005, 0.02},
    };
    p.greetingDelayMs = 100;
    p.dropFraction = 0.01;
    p.connectionRate = 10;
    return p;
  }
  return std::nullopt;
}

bool Sink::resolveFaults(const Options& options, Profile& out, std::string& error) {
  auto base = profile(options.profile);
  if (!base) {
    error = fmt::format("--profile \"{}\": expected accept-all or realistic", options.profile);
    return false;
  }
  auto fraction = [&error](const char* name, const std::optional<double>& value) {
    if (value && !(*value >= 0 && *value <= 1)) {
      error = fmt::format("{} {}: expected a fraction between 0 and 1", name, *value);
      return false;
    }
    return true;
  };
  auto rate = [&error](const char* name, const std::optional<double>& value) {
    if (value && !(*value >= 0)) {
      error = fmt::format("{} {}: expected messages per second, 0 or more", name, *value);
      return false;
    }
    return true;
  };
  if (!fraction("--defer-fraction", options.deferFraction) ||
      !fraction("--reject-fraction", options.rejectFraction) ||
      !fraction("--drop-fraction", options.dropFraction) ||
      !rate("--connection-rate", options.connectionRate) ||
      !rate("--rate-limit", options.rateLimit)) {
    return false;
  }
  Profile p = std::move(*base);
  // An explicit fraction applies to every domain: it replaces the profile's value in each
  // entry, and the catch-all entry is added when the profile has none.
  if (options.deferFraction || options.rejectFraction) {
    if (p.faults.empty() || !p.faults.back().domains.empty()) {
      p.faults.push_back(DomainFaults{});
    }
    for (auto& entry : p.faults) {
      entry.deferFraction = options.deferFraction.value_or(entry.deferFraction);
      entry.rejectFraction = options.rejectFraction.value_or(entry.rejectFraction);
    }
  }
  p.greetingDelayMs = options.greetingDelayMs.value_or(p.greetingDelayMs);
  p.dropFraction = options.dropFraction.value_or(p.dropFraction);
  p.dropAfter = options.dropAfter.value_or(p.dropAfter);
  p.connectionRate = options.connectionRate.value_or(p.connectionRate);
  p.rateLimit = options.rateLimit.value_or(p.rateLimit);
  out = std::move(p);
  return true;
}

bool Sink::admitSinkWide(std::uint64_t nowMs) {
  // Fixed one-second windows on the loops' monotonic clock (libuv's uv_now, which all
  // loops read from the same CLOCK_MONOTONIC).
  std::lock_guard<std::mutex> lock(sinkRateMutex_);
  if (!sinkRateStarted_ || nowMs >= sinkRateWindowMs_ + 1000) {
    sinkRateStarted_ = true;
    sinkRateWindowMs_ = nowMs;
    sinkRateCount_ = 0;
  }
  if (static_cast<double>(sinkRateCount_ + 1) > faults_.rateLimit) {
    return false;
  }
  ++sinkRateCount_;
  return true;
}

Sink::Sink(Options options) : options_(std::move(options)) {
  rules_.hostname = options_.hostname;
  rules_.rejectRcpt = options_.rejectRcpt;
  rules_.deferRcpt = options_.deferRcpt;
  rules_.reply421Every = options_.reply421Every;
  rules_.maxMessageSize = options_.maxMessageSize;
  rules_.capture = !options_.maildir.empty();
  rules_.chunking = options_.chunking;
  rules_.startTls = options_.tls || !options_.tlsCert.empty() || !options_.tlsKey.empty();
}

Sink::~Sink() {
  stop();
}

bool Sink::parseListen(const std::string& text, net::Endpoint& out, std::string& error) {
  std::string host;
  std::uint16_t port = 0;
  if (!net::splitHostPort(text, host, port)) {
    error = fmt::format(
        "bad listen address \"{}\": expected IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:2525", text);
    return false;
  }
  auto ep = net::Endpoint::fromIp(host, port);
  if (!ep) {
    error = fmt::format("bad listen address \"{}\": \"{}\" is not an IP address", text, host);
    return false;
  }
  out = *ep;
  return true;
}

bool Sink::start(std::string& error) {
  if (!workers_.empty()) {
    error = "the sink is already running";
    return false;
  }
  net::Endpoint at;
  if (!parseListen(options_.listen, at, error)) {
    return false;
  }
  if (!resolveFaults(options_, faults_, error)) {
    return false;
  }
  rules_.faults = faults_.faults;
  rules_.seed = options_.seed;
  rules_.dropAfter = faults_.dropAfter;
  if (!options_.auth.empty() && !loadAuth(error)) {
    return false;
  }
  if (!options_.maildir.empty() && !prepareMaildir(error)) {
    return false;
  }
  if (rules_.startTls && !tlsContext_ && !prepareTls(error)) {
    return false;
  }
  pid_ = static_cast<long>(::getpid());
  unsigned threads = options_.threads;
  if (threads == 0) {
    threads = std::max(1U, std::thread::hardware_concurrency());
  }
  if (threads == 1) {
    if (!startWorker(at, false, error)) {
      return false;
    }
  } else {
    if (!probe(at, error)) {
      return false;
    }
    for (unsigned i = 0; i < threads; ++i) {
      if (!startWorker(at, true, error)) {
        stop();
        return false;
      }
    }
  }
  bound_ = *net::Endpoint::fromIp(at.ip(), workers_.front()->listener->port());
  return true;
}

bool Sink::probe(net::Endpoint& at, std::string& error) {
  int fd = ::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = fmt::format("listen {}: {}", at.str(), uv_strerror(uv_translate_sys_error(errno)));
    return false;
  }
  int on = 1;
  // As libuv binds: SO_REUSEADDR, so a port in TIME_WAIT is not "in use".
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  socklen_t len = at.family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), len) != 0) {
    error = fmt::format("listen {}: {}", at.str(), uv_strerror(uv_translate_sys_error(errno)));
    ::close(fd);
    return false;
  }
  sockaddr_storage bound{};
  socklen_t boundLen = sizeof(bound);
  int rc = ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLen);
  int savedErrno = errno;
  ::close(fd);
  if (rc != 0) {
    error = fmt::format("listen {}: {}", at.str(), uv_strerror(uv_translate_sys_error(savedErrno)));
    return false;
  }
  net::Endpoint resolved;
  resolved.addr = bound;
  at = *net::Endpoint::fromIp(at.ip(), resolved.port());
  return true;
}

bool Sink::startWorker(const net::Endpoint& at, bool reusePort, std::string& error) {
  auto worker = std::make_unique<Worker>();
  Worker* w = worker.get();
  // The listener is created before the loop thread starts, so no other thread uses the
  // loop yet; from then on only the loop thread touches it.
  w->listener = net::TcpListener::listen(
      w->loop, at, reusePort,
      [this, w](std::unique_ptr<net::TcpConnection> tcp) {
        const std::uint64_t number = connections_.fetch_add(1, std::memory_order_relaxed);
        std::uint64_t open = openConnections_.fetch_add(1, std::memory_order_relaxed) + 1;
        std::uint64_t peak = peakConnections_.load(std::memory_order_relaxed);
        while (open > peak && !peakConnections_.compare_exchange_weak(peak, open)) {
        }
        auto conn = std::make_unique<Connection>(*this, *w, std::move(tcp), number);
        Connection* raw = conn.get();
        w->connections.emplace(raw, std::move(conn));
        raw->begin();  // may destroy the connection: the last statement
      },
      error);
  if (w->listener == nullptr) {
    return false;
  }
  w->loop.start("salvo-sink");
  workers_.push_back(std::move(worker));
  return true;
}

std::uint16_t Sink::port() const {
  return bound_.port();
}

net::Endpoint Sink::endpoint() const {
  return bound_;
}

void Sink::stop() {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->loop.post([w] { w->teardown(); });
    w->loop.stop();
    w->loop.join();
    // The loop thread is gone: this thread may finish the teardown should the loop have
    // stopped before running it. The EventLoop destructor then runs the close callbacks.
    w->teardown();
  }
  workers_.clear();
}

void Sink::recordMessageTime() {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::lock_guard<std::mutex> lock(rateMutex_);
  recentMs_.push_back(now);
  while (recentMs_.front() <= now - 1000) {
    recentMs_.pop_front();
  }
  peakRate_ = std::max<std::uint64_t>(peakRate_, recentMs_.size());
}

Sink::Stats Sink::stats() const {
  Stats s;
  s.peakConnections = peakConnections_.load(std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(rateMutex_);
    s.peakMessagesPerSecond = peakRate_;
  }
  s.connections = connections_.load(std::memory_order_relaxed);
  s.messages = messages_.load(std::memory_order_relaxed);
  s.recipients = recipients_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  s.deferred = deferred_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed);
  s.faults4xx = faults4xx_.load(std::memory_order_relaxed);
  s.faults5xx = faults5xx_.load(std::memory_order_relaxed);
  s.rateLimited = rateLimited_.load(std::memory_order_relaxed);
  s.connectionLimited = connectionLimited_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.delayedGreetings = delayedGreetings_.load(std::memory_order_relaxed);
  s.tls = tls_.load(std::memory_order_relaxed);
  s.tlsFailed = tlsFailed_.load(std::memory_order_relaxed);
  return s;
}

bool Sink::prepareTls(std::string& error) {
  if (!rules_.startTls) {
    return true;
  }
  if (options_.tlsCert.empty() != options_.tlsKey.empty()) {
    error = options_.tlsCert.empty() ? "--tls-key needs --tls-cert (the certificate chain)"
                                     : "--tls-cert needs --tls-key (the certificate's key)";
    return false;
  }
  tlsContext_ = options_.tlsCert.empty()
                    ? net::TlsContext::createSelfSignedServer(error)
                    : net::TlsContext::createServer(options_.tlsCert, options_.tlsKey, error);
  return tlsContext_ != nullptr;
}

bool Sink::loadAuth(std::string& error) {
  const std::size_t colon = options_.auth.find(':');
  if (colon == 0 || colon == std::string::npos || colon + 1 == options_.auth.size()) {
    error = fmt::format("--auth \"{}\": expected USER:PASSWORD_FILE", options_.auth);
    return false;
  }
  const std::string path = options_.auth.substr(colon + 1);
  std::ifstream in(path, std::ios::binary);
  std::string password;
  if (!in || !std::getline(in, password)) {
    error = fmt::format("--auth: cannot read the password file {}", path);
    return false;
  }
  if (!password.empty() && password.back() == '\r') {
    password.pop_back();
  }
  rules_.authUser = options_.auth.substr(0, colon);
  rules_.authPassword = std::move(password);
  return true;
}

bool Sink::prepareMaildir(std::string& error) {
  for (const char* sub : {"tmp", "new", "cur"}) {
    std::filesystem::path dir = std::filesystem::path(options_.maildir) / sub;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      error = fmt::format("cannot create maildir {}: {}", dir.string(), ec.message());
      return false;
    }
    if (!std::filesystem::is_directory(dir, ec)) {
      error = fmt::format("cannot create maildir {}: not a directory", dir.string());
      return false;
    }
  }
  return true;
}

// The write happens on the loop thread, and the 250 for the message waits for it. That
// is acceptable for the sink (a test and benchmark peer, not an MTA): a slow disk slows
// only the connections of this loop, and no fsync is done.
bool Sink::deliver(const SinkMessage& message, std::string& scratch, std::string& error) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::uint64_t n = fileCounter_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::string name = fmt::format("{}.{}_{}.salvo-sink", ms, pid_, n);
  std::string tmpPath = options_.maildir + "/tmp/" + name;
  std::string newPath = options_.maildir + "/new/" + name;

  scratch.clear();
  scratch += "Return-Path: <";
  scratch.append(message.from);
  scratch += ">\r\n";
  for (const auto& rcpt : message.recipients) {
    scratch += "Delivered-To: ";
    scratch += rcpt;
    scratch += "\r\n";
  }

  int fd = ::open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("cannot create {}: {}", tmpPath, std::strerror(errno));
    return false;
  }
  iovec iov[2];
  iov[0].iov_base = scratch.data();
  iov[0].iov_len = scratch.size();
  iov[1].iov_base = const_cast<char*>(message.data.data());
  iov[1].iov_len = message.data.size();
  bool ok = writeAll(fd, iov, 2);
  int savedErrno = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    savedErrno = errno;
  }
  if (!ok) {
    error = fmt::format("cannot write {}: {}", tmpPath, std::strerror(savedErrno));
    ::unlink(tmpPath.c_str());
    return false;
  }
  if (::rename(tmpPath.c_str(), newPath.c_str()) != 0) {
    error = fmt::format("cannot rename {} to {}: {}", tmpPath, newPath, std::strerror(errno));
    ::unlink(tmpPath.c_str());
    return false;
  }
  return true;
}

}  // namespace salvo::bench
