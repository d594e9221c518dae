// Destination: the per-destination queue and connection pool, on one delivery loop.
// Contract: lives on the loop thread it was created on and needs no locks. It opens
// connections as demand and the connection limit allow, hands each ready connection the
// next job, fails over to the next endpoint (next MX host) when a connection cannot be
// established or the server refuses it at the greeting (421, RFC 5321 §3.8), and when
// every endpoint has failed defers what it holds (site scope) so the jobs come back on
// the retry schedule. New connections always go to the most preferred endpoint that has
// not failed.
// Throttles (DestinationThrottle): the destination's limits (spec->limits: provider
// defaults with configured overrides) bound it. Connections open at once follow a
// concurrency window that only site failures shrink (connection refused or timed out,
// greeting failures, 421); new connections per minute and messages per second go through
// smooth rate limiters, and when one holds the destination back a timer is armed at the
// moment it allows the next step (no polling). Messages per connection cap each
// connection. Shaping rules turn non-2xx replies into actions held for a while: suspend
// the destination (its pending jobs are deferred), scale its rate or connections, or
// suspend one campaign there (that campaign's jobs are deferred). A site the window
// declares dead defers its jobs until the probe time.
// TLS: connections use the spec's policy. Under opportunistic TLS a failed handshake
// makes the destination retry its jobs at once over plaintext, as Postfix does at its
// "may" level (smtp_tls_security_level=may: a failed handshake is retried with TLS
// disabled); that holds for this Destination's lifetime. Under required/verify a failed
// handshake counts as a failed endpoint and the jobs are deferred.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/concurrency_window.h"
#include "engine/delivery.h"
#include "engine/net/loop.h"
#include "engine/rate_limiter.h"
#include "engine/shaping_rules.h"
#include "engine/smtp_connection.h"

namespace salvo::engine {

// Every limit of one destination, as decisions on values: the caller passes `nowMs`
// (steady) and the throttle never reads a clock, so tests drive it without sockets.
class DestinationThrottle {
 public:
  DestinationThrottle(const DestinationLimits& limits, const ShapingRules* shaping);

  // Connections that may be open at `nowMs`: the window (0 while dead and resting, 1 for
  // the probe) under the connection ceiling scaled by shaping; 0 while suspended.
  int connectionsAllowed(std::int64_t nowMs);
  // May a new connection open now, with `open` already open? Takes a connections-per-
  // minute slot when it may. When not, `limit` names what held it back (a
  // DestinationLimits key, or "suspended").
  bool tryOpen(int open, std::int64_t nowMs, std::string_view& limit);
  // May one more message be submitted now? Takes a messages-per-second slot when it may.
  bool trySend(std::int64_t nowMs, std::string_view& limit);
  // When a limit that held the destination back allows the next step (>= nowMs).
  std::int64_t nextStepMs(std::int64_t nowMs) const;
  int messagesPerConnection() const { return limits_.messagesPerConnection; }

  // The site answered and took work (any outcome but a site failure).
  void onSuccess();
  // A connection ended with a failure of `scope` (only Site moves the window).
  void onFailure(smtp::FailureScope scope, std::int64_t nowMs);
  // A non-2xx reply: the shaping rule it triggered (now in force), or nullptr.
  // `sentAtMs`: when the message (or connection) it answers was sent (opened).
  const ShapingRule* onReply(int code, const smtp::EnhancedCode& enhanced, std::string_view text,
                             std::string_view campaign, std::int64_t nowMs, std::int64_t sentAtMs);

  bool suspended(std::int64_t nowMs) const { return shaping_.destinationSuspended(nowMs); }
  bool campaignSuspended(std::string_view campaign, std::int64_t nowMs) const {
    return shaping_.campaignSuspended(campaign, nowMs);
  }
  bool dead() const { return window_.dead(); }
  const ConcurrencyWindow& window() const { return window_; }
  double rate() const { return messages_.rate(); }

 private:
  void applyShaping(std::int64_t nowMs);
  // Sends per second, counted in one-second buckets: the base a rate cut applies to when
  // no messages_per_second is configured.
  void noteSent(std::int64_t nowMs);
  double observedRate(std::int64_t nowMs) const;

  DestinationLimits limits_;
  const ShapingRules* rules_;
  ConcurrencyWindow window_;
  RateLimiter messages_;
  RateLimiter connections_;
  ShapingState shaping_;
  double rateFactor_ = 1.0;
  double connectionFactor_ = 1.0;
  double shapedBaseRate_ = 0;
  std::int64_t bucketStartMs_ = INT64_MIN / 2;
  std::int64_t bucketSends_ = 0;
  std::int64_t lastSecondSends_ = 0;
};

class Destination : public ConnectionOwner {
 public:
  Destination(net::EventLoop& loop, std::shared_ptr<const DestinationSpec> spec,
              const DeliverySettings& settings, ResultSink& results);
  ~Destination() override;

  void enqueue(std::vector<DeliveryJob>&& jobs);
  // A fresher resolution of the same site (same key; another domain it serves, or the
  // same one after its DNS TTL): new connections use its endpoints. Limits, window and
  // open connections are kept.
  void useSpec(std::shared_ptr<const DestinationSpec> spec);
  // Stop opening connections; QUIT idle ones, let busy ones finish their jobs.
  void shutdown();
  // Gives back, unattempted, the jobs of these campaigns not yet on a connection (after a
  // pause or cancel); jobs already in a session finish.
  void withdraw(const std::vector<std::uint32_t>& campaigns);
  bool drained() const { return connections_.empty() && pending_.empty(); }
  std::size_t pending() const { return pending_.size(); }
  std::size_t connections() const { return connections_.size(); }

  void connectionReady(SmtpConnection& connection) override;
  void jobDone(DeliveryResult&& result) override;
  void jobReturned(DeliveryJob&& job) override;
  void connectionFinished(SmtpConnection& connection, const std::string& error,
                          smtp::FailureScope scope) override;

  // Called after a connection closes so an owner can notice a drained destination.
  std::function<void()> onDrained;

 private:
  void pump();
  void openConnection();
  void failPending(const std::string& error);
  // Answers one job as deferred with `reason` (a suspension), without an attempt.
  void deferJob(DeliveryJob&& job, const std::string& reason);
  // Arms the throttle timer at `atMs` (steady) unless it is armed for earlier.
  void wakeAt(std::int64_t atMs, std::string_view limit);
  void shaped(const ShapingRule& rule, std::string_view campaign);
  std::int64_t nowMs() const;
  // The index of the connection's endpoint in spec_->endpoints (size() when not found).
  std::size_t endpointIndex(const SmtpConnection& connection) const;

  net::EventLoop& loop_;
  std::shared_ptr<const DestinationSpec> spec_;
  const DeliverySettings& settings_;
  ResultSink& results_;
  std::deque<DeliveryJob> pending_;
  std::vector<std::unique_ptr<SmtpConnection>> connections_;
  // Endpoints (in MX preference order) that failed at the site level since they last
  // worked: new connections go to the first endpoint not marked.
  std::vector<bool> endpointFailed_;
  bool plaintextOnly_ = false;  // an opportunistic handshake failed here
  DestinationThrottle throttle_;
  std::unique_ptr<net::Timer> timer_;
  std::int64_t timerAtMs_ = 0;  // when the armed timer fires (0 = not armed)
  bool shuttingDown_ = false;
  bool pumping_ = false;
};

}  // namespace salvo::engine
