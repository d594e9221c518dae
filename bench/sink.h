// `salvo sink`: a fast SMTP sink and capture server with per-recipient fault injection,
// the peer of Salvo's own tests, demo and benchmark.
// Contract: start() binds and serves on its own EventLoop thread; stop() (or the
// destructor) closes every connection and joins. Each connection runs a SinkSession
// (pure protocol code); this file only joins sessions to sockets, counts, and writes
// accepted messages to a maildir when one is given. Stats are atomics, readable from any
// thread at any time. The work is split into Workers (one EventLoop + listener + its
// connections each) so that one loop per core with SO_REUSEPORT is a matter of starting
// more of them; today there is one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/sink_session.h"
#include "engine/net/address.h"

namespace salvo::bench {

class Sink {
 public:
  struct Options {
    std::string listen = "127.0.0.1:2525";  // IP:PORT or [IPv6]:PORT; port 0 picks one
    std::string maildir;                    // empty: count messages, keep nothing
    std::vector<std::string> rejectRcpt;    // RCPT address substrings answered 550
    std::vector<std::string> deferRcpt;     // RCPT address substrings answered 451
    std::string hostname = "salvo-sink";
    std::size_t maxMessageSize = 64 * 1024 * 1024;
    // Stall this long before accepting each message. It blocks the sink's loop: a
    // deliberately slow server, for head-of-line tests.
    std::uint32_t delayMs = 0;
  };

  struct Stats {
    std::uint64_t connections = 0;  // accepted
    std::uint64_t messages = 0;     // accepted (250 after the final dot)
    std::uint64_t recipients = 0;   // recipients of accepted messages
    std::uint64_t rejected = 0;     // RCPTs refused with 550 by a rejectRcpt rule
    std::uint64_t deferred = 0;     // RCPTs refused with 451 by a deferRcpt rule
    std::uint64_t bytes = 0;        // octets of accepted messages (unstuffed data)
  };

  explicit Sink(Options options);
  ~Sink();  // stop()
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Parses a listen address; false with a message naming the text when it is not
  // "IP:PORT" or "[IPv6]:PORT" (no DNS names).
  static bool parseListen(const std::string& text, net::Endpoint& out, std::string& error);

  // Creates the maildir (DIR/tmp, DIR/new, DIR/cur) if asked, binds, and starts serving.
  // False with a message ("listen 127.0.0.1:2525: address already in use", "bad listen
  // address ...", "cannot create maildir ...").
  bool start(std::string& error);
  // The bound port (the real one after listening on port 0); 0 before start().
  std::uint16_t port() const;
  // The bound address with the real port.
  net::Endpoint endpoint() const;
  // Closes the listener and every connection, stops and joins the loop. Idempotent.
  void stop();
  Stats stats() const;

 private:
  struct Worker;
  class Connection;

  bool startWorker(const net::Endpoint& at, bool reusePort, std::string& error);
  bool prepareMaildir(std::string& error);
  // Writes one message to the maildir (tmp/, then renamed into new/).
  bool deliver(const SinkMessage& message, std::string& scratch, std::string& error);

  Options options_;
  SinkRules rules_;
  net::Endpoint bound_;
  long pid_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;

  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> messages_{0};
  std::atomic<std::uint64_t> recipients_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> deferred_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> fileCounter_{0};
};

}  // namespace salvo::bench
