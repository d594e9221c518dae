// `salvo sink`: a fast SMTP sink and capture server with per-recipient fault injection,
// the peer of Salvo's own tests, demo and benchmark.
// Contract: start() binds and serves on its own EventLoop thread; stop() (or the
// destructor) closes every connection and joins. Each connection runs a SinkSession
// (pure protocol code); this file only joins sessions to sockets, counts, and writes
// accepted messages to a maildir when one is given. Stats are atomics, readable from any
// thread at any time. The work is split into Workers (one EventLoop + listener + its
// connections each): one per core by default, sharing the port with SO_REUSEPORT (the
// kernel spreads the connections); the counters are shared atomics, so they stay exact.
// Faults that need a clock or a socket are injected here, never with a sleep on the loop
// (except the legacy --delay-ms): the greeting delay is a timer, connections are dropped
// at accept, and the per-connection and sink-wide rate limits answer a MAIL with 421
// (docs/sink.md). The session decides the per-recipient faults.
// With TLS, STARTTLS is offered; the connection runs the server handshake through a
// net::TlsServer (memory BIOs) and the session sees only plaintext. One TLS context
// (the given certificate, or a self-signed one made at start) serves every loop.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/sink_session.h"
#include "engine/net/address.h"
#include "engine/net/tls.h"

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
    // Stall this long before accepting each message. It blocks the loop serving the
    // connection (threads = 1: the whole sink): a deliberately slow server, for
    // head-of-line tests.
    std::uint32_t delayMs = 0;
    // Event loops (threads) serving the port; 0 = one per core.
    unsigned threads = 0;
    // "USER:PASSWORD_FILE": offer AUTH PLAIN LOGIN and require these credentials (the
    // file's first line is the password). Empty: no AUTH.
    std::string auth;
    // Fault: 421 to the MAIL after this many messages on one connection (0 = never).
    std::size_t reply421Every = 0;
    // Record the peak of accepted messages in any one-second window (a lock per message:
    // for tests, not benchmarks).
    bool measureRate = false;
    // Offer CHUNKING (BDAT, RFC 3030).
    bool chunking = false;
    // Offer STARTTLS (RFC 3207) with the PEM certificate chain and key in these files, or
    // with a self-signed certificate made at start when both are empty. Setting the files
    // implies tls.
    bool tls = false;
    std::string tlsCert;
    std::string tlsKey;

    // Fault injection (docs/sink.md). "accept-all" (no faults) or "realistic" (a table of
    // per-domain fractions, a greeting delay, dropped connections and a per-connection
    // rate limit); an option given explicitly overrides the profile's value.
    std::string profile = "accept-all";
    std::uint64_t seed = 1;                        // of every fault decision
    std::optional<double> deferFraction;           // of RCPTs answered 451 4.7.1, all domains
    std::optional<double> rejectFraction;          // of RCPTs answered 550 5.1.1, all domains
    std::optional<std::uint32_t> greetingDelayMs;  // before the 220 (a timer: no blocking)
    std::optional<double> dropFraction;            // of connections closed instead of greeted
    std::optional<std::size_t> dropAfter;          // close unanswered at the MAIL after N messages
    std::optional<double> connectionRate;          // messages/s on one connection, then 421
    std::optional<double> rateLimit;               // messages/s over the whole sink, then 421
  };

  // The settings a profile gives, before explicit options override them.
  struct Profile {
    std::vector<DomainFaults> faults;
    std::uint32_t greetingDelayMs = 0;
    double dropFraction = 0;
    std::size_t dropAfter = 0;
    double connectionRate = 0;  // 0 = none
    double rateLimit = 0;       // 0 = none
  };
  // nullopt for an unknown name.
  static std::optional<Profile> profile(const std::string& name);
  // The profile with `options`' explicit values applied; false with a message naming
  // the option when a value is out of range or the profile unknown.
  static bool resolveFaults(const Options& options, Profile& out, std::string& error);

  struct Stats {
    std::uint64_t connections = 0;            // accepted
    std::uint64_t messages = 0;               // accepted (250 after the final dot)
    std::uint64_t recipients = 0;             // recipients of accepted messages
    std::uint64_t rejected = 0;               // RCPTs refused with 550 by a rejectRcpt rule
    std::uint64_t deferred = 0;               // RCPTs refused with 451 by a deferRcpt rule
    std::uint64_t bytes = 0;                  // octets of accepted messages (unstuffed data)
    std::uint64_t peakConnections = 0;        // open at the same time, at most
    std::uint64_t peakMessagesPerSecond = 0;  // in any 1 s window (with measureRate)
    // Injected faults.
    std::uint64_t faults4xx = 0;          // RCPTs answered 451 4.7.1 by a defer fraction
    std::uint64_t faults5xx = 0;          // RCPTs answered 550 5.1.1 by a reject fraction
    std::uint64_t rateLimited = 0;        // MAILs answered 421 by a rate limit
    std::uint64_t connectionLimited = 0;  // MAILs answered 421 by reply421Every
    std::uint64_t dropped = 0;            // connections closed without a reply
    std::uint64_t delayedGreetings = 0;   // greetings sent after the greeting delay
    std::uint64_t tls = 0;                // TLS handshakes completed (STARTTLS)
    std::uint64_t tlsFailed = 0;          // STARTTLS handshakes that failed
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
  // address ...", "cannot create maildir ...", "--auth ...").
  bool start(std::string& error);
  // Builds the TLS context when TLS is asked for (start() calls it if nobody did): false
  // with a message naming the file ("TLS key file k.pem: cannot read: ...", "--tls-cert
  // needs --tls-key"). Lets a caller tell bad TLS options apart from a failed start.
  bool prepareTls(std::string& error);
  // The number of loops serving, once started.
  std::size_t threads() const { return workers_.size(); }
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
  // Binds a plain socket (no SO_REUSEPORT) to `at` and releases it: fails as a single
  // listener would when the address is taken (a SO_REUSEPORT listener of another sink
  // would otherwise join it silently), and resolves port 0 for the workers.
  static bool probe(net::Endpoint& at, std::string& error);
  bool loadAuth(std::string& error);  // reads options_.auth into rules_
  bool prepareMaildir(std::string& error);
  // Writes one message to the maildir (tmp/, then renamed into new/).
  bool deliver(const SinkMessage& message, std::string& scratch, std::string& error);

  // The sink-wide rate limit: true when one more message fits in this second.
  bool admitSinkWide(std::uint64_t nowMs);

  Options options_;
  Profile faults_;  // resolved by start()
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
  std::atomic<std::uint64_t> openConnections_{0};
  std::atomic<std::uint64_t> peakConnections_{0};
  std::atomic<std::uint64_t> faults4xx_{0};
  std::atomic<std::uint64_t> faults5xx_{0};
  std::atomic<std::uint64_t> rateLimited_{0};
  std::atomic<std::uint64_t> connectionLimited_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> delayedGreetings_{0};
  std::atomic<std::uint64_t> tls_{0};
  std::atomic<std::uint64_t> tlsFailed_{0};
  std::shared_ptr<net::TlsContext> tlsContext_;  // built by prepareTls(); shared by the loops
  std::mutex sinkRateMutex_;
  std::uint64_t sinkRateWindowMs_ = 0;  // start of the current one-second window
  std::uint64_t sinkRateCount_ = 0;     // messages admitted in it
  bool sinkRateStarted_ = false;
  void recordMessageTime();  // with measureRate
  mutable std::mutex rateMutex_;
  std::deque<std::int64_t> recentMs_;  // accepted-message times within the last second
  std::uint64_t peakRate_ = 0;
};

}  // namespace salvo::bench
