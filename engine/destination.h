// Destination: the per-destination queue and connection pool, on one delivery loop.
// Contract: lives on the loop thread it was created on and needs no locks. It opens
// connections as demand and the connection limit allow, hands each ready connection the
// next job, fails over to the next endpoint (next MX host) when a connection cannot be
// established or the server refuses it at the greeting (421, RFC 5321 §3.8), and when
// every endpoint has failed defers what it holds (site scope) so the jobs come back on
// the retry schedule. New connections always go to the most preferred endpoint that has
// not failed. Throttles come in a later issue.
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

#include "engine/delivery.h"
#include "engine/smtp_connection.h"

namespace salvo::engine {

class Destination : public ConnectionOwner {
 public:
  Destination(net::EventLoop& loop, std::shared_ptr<const DestinationSpec> spec,
              const DeliverySettings& settings, ResultSink& results);
  ~Destination() override;

  void enqueue(std::vector<DeliveryJob>&& jobs);
  // Stop opening connections; QUIT idle ones, let busy ones finish their jobs.
  void shutdown();
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
  bool shuttingDown_ = false;
  bool pumping_ = false;
};

}  // namespace salvo::engine
