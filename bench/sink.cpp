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

// Joins one accepted socket to one SinkSession.
class Sink::Connection : public net::TcpHandler, public SinkSessionEvents {
 public:
  Connection(Sink& sink, Worker& worker, std::unique_ptr<net::TcpConnection> tcp)
      : sink_(sink), worker_(worker), tcp_(std::move(tcp)), session_(sink.rules_, *this) {}

  void begin() {
    tcp_->start(*this);
    session_.greet();
  }

  void onConnect(const std::string&) override {}

  void onData(std::string_view bytes) override {
    session_.feed(bytes);
    if (quit_) {
      finish();  // the 221 is queued: destroying the connection flushes it, then closes
    }
  }

  void onClosed(const std::string&) override { finish(); }

  void sendReply(std::string_view bytes) override { tcp_->write(bytes); }

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

 private:
  // Destroys this connection: nothing may touch a member afterwards.
  void finish() {
    sink_.openConnections_.fetch_sub(1, std::memory_order_relaxed);
    worker_.connections.erase(this);
  }

  Sink& sink_;
  Worker& worker_;
  std::unique_ptr<net::TcpConnection> tcp_;
  SinkSession session_;
  std::string scratch_;  // the maildir header, reused
  bool quit_ = false;
};

Sink::Sink(Options options) : options_(std::move(options)) {
  rules_.hostname = options_.hostname;
  rules_.rejectRcpt = options_.rejectRcpt;
  rules_.deferRcpt = options_.deferRcpt;
  rules_.reply421Every = options_.reply421Every;
  rules_.maxMessageSize = options_.maxMessageSize;
  rules_.capture = !options_.maildir.empty();
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
  if (!options_.auth.empty() && !loadAuth(error)) {
    return false;
  }
  if (!options_.maildir.empty() && !prepareMaildir(error)) {
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
        connections_.fetch_add(1, std::memory_order_relaxed);
        std::uint64_t open = openConnections_.fetch_add(1, std::memory_order_relaxed) + 1;
        std::uint64_t peak = peakConnections_.load(std::memory_order_relaxed);
        while (open > peak && !peakConnections_.compare_exchange_weak(peak, open)) {
        }
        auto conn = std::make_unique<Connection>(*this, *w, std::move(tcp));
        Connection* raw = conn.get();
        w->connections.emplace(raw, std::move(conn));
        raw->begin();
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
  return s;
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
