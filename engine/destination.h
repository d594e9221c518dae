// Destination: the per-destination queue and connection pool, on one delivery loop.
// Contract: lives on the loop thread it was created on and needs no locks. It opens
// connections as demand and the connection limit allow, hands each ready connection the
// next job, fails over to the next endpoint (next MX host) when a connection cannot be
// established, and when every endpoint has failed defers what it holds (site scope) so
// the jobs come back on the retry schedule. Throttles come in a later issue.
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
  void connectionFinished(SmtpConnection& connection, const std::string& error,
                          smtp::FailureScope scope) override;

  // Called after a connection closes so an owner can notice a drained destination.
  std::function<void()> onDrained;

 private:
  void pump();
  void openConnection();
  void failPending(const std::string& error);

  net::EventLoop& loop_;
  std::shared_ptr<const DestinationSpec> spec_;
  const DeliverySettings& settings_;
  ResultSink& results_;
  std::deque<DeliveryJob> pending_;
  std::vector<std::unique_ptr<SmtpConnection>> connections_;
  std::size_t nextEndpoint_ = 0;
  std::size_t consecutiveFailures_ = 0;
  bool shuttingDown_ = false;
  bool pumping_ = false;
};

}  // namespace salvo::engine
