// Dispatcher: the daemon's control loop, joining the queue and the delivery loops.
// Contract: runs on the thread that calls run(). It takes due jobs from the JobStore
// (bounded by maxInFlight), resolves each recipient domain to a destination (a configured
// route, or the domain's MX hosts through the Resolver), hands jobs to the worker loop the
// destination is pinned to, turns results into queue outcomes (retry schedule, expiry) and
// gives them to the single OutcomeWriter thread, which group-commits them. It never does a
// synced write itself and never blocks a loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "campaigns/config.h"
#include "engine/delivery.h"
#include "engine/dns/resolver.h"
#include "engine/net/loop.h"
#include "engine/retry_schedule.h"
#include "engine/route_table.h"
#include "engine/worker.h"
#include "metrics/metrics.h"
#include "queue/outcome_writer.h"
#include "queue/store.h"

namespace salvo::engine {

struct DispatcherOptions {
  bool untilIdle = false;
  // Wall-clock milliseconds; injected so tests can move time.
  std::function<std::int64_t()> clock;
  // Creates the resolver on the control loop; default: c-ares with the config's servers.
  std::function<std::unique_ptr<dns::Resolver>(net::EventLoop&, std::string& error)> resolver;
  // How long a graceful stop waits for busy connections before giving up.
  std::uint64_t stopGraceMs = 10'000;
  // Outcome group commit: one synced batch per maxBatch outcomes or maxDelayMs.
  queue::GroupCommit groupCommit;
};

struct RunSummary {
  std::uint64_t delivered = 0;
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t expired = 0;
  std::uint64_t batches = 0;
};

class Dispatcher : public ResultSink {
 public:
  Dispatcher(const campaigns::SalvoConfig& config, queue::JobStore& store,
             metrics::Metrics* metrics, DispatcherOptions options);
  ~Dispatcher() override;

  // Runs until stop() (or, with untilIdle, until nothing is due or in flight). Returns a
  // sysexits code: 0, or 74 when the queue cannot be written, 78 for a bad resolver setup.
  int run();
  // Thread-safe and async-signal-free: asks run() to stop gracefully.
  void stop();
  const RunSummary& summary() const { return summary_; }

  // ResultSink (delivery loop threads)
  void deliveryDone(DeliveryResult&& result) override;
  void connectionOpened() override;
  void connectionClosed() override;

 private:
  struct DomainEntry;
  void pump();
  void route(DeliveryJob&& job, std::unordered_map<std::string, std::vector<DeliveryJob>>& batches);
  void resolveDomain(const std::string& domain);
  void resolveRoute(const std::string& key, const campaigns::RouteConfig& route);
  void destinationResolved(const std::string& name, std::shared_ptr<const DestinationSpec> spec,
                           std::int64_t ttlMs);
  void destinationFailed(const std::string& name, smtp::Disposition disposition,
                         const std::string& error);
  void dispatch(const std::shared_ptr<const DestinationSpec>& spec,
                std::vector<DeliveryJob>&& jobs);
  void finishLocally(DeliveryJob&& job, smtp::Disposition disposition, const std::string& reply);
  void drainResults();
  void committed(std::vector<queue::Outcome>&& outcomes, const queue::Status& status);
  void refreshGauges();
  void beginShutdown();
  void finishShutdown();
  std::shared_ptr<const campaigns::Campaign> campaignFor(std::uint32_t number, std::string& error);
  std::int64_t now() const { return options_.clock(); }

  const campaigns::SalvoConfig& config_;
  queue::JobStore& store_;
  metrics::Metrics* metrics_;
  DispatcherOptions options_;
  RouteTable routes_;
  RetrySchedule retry_;
  DeliverySettings settings_;

  net::EventLoop control_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<queue::OutcomeWriter> writer_;
  std::unique_ptr<net::Timer> pumpTimer_;
  std::unique_ptr<net::Timer> gaugeTimer_;
  std::unique_ptr<net::Timer> graceTimer_;

  // Destinations by name ("route:host:port" or a recipient domain), with expiry.
  struct Resolved {
    std::shared_ptr<const DestinationSpec> spec;
    std::int64_t expiresMs = 0;
  };
  std::unordered_map<std::string, Resolved> resolved_;
  // Jobs waiting for a name to resolve, by name.
  std::unordered_map<std::string, std::vector<DeliveryJob>> waiting_;
  std::unordered_map<std::uint32_t, std::shared_ptr<const campaigns::Campaign>> campaigns_;

  std::mutex resultsMutex_;
  std::vector<DeliveryResult> results_;  // from delivery loops, drained on the control loop

  // Head-of-line protection: jobs handed to each destination name (route or domain) and
  // not yet finished. A destination at its cap gets no more; its further due jobs are
  // handed back to the queue unattempted, due again after a short delay, so one slow
  // destination holding most due jobs cannot fill the in-flight window.
  std::string destinationName(const std::string& recipient) const;
  std::unordered_map<std::string, std::int64_t> perDestination_;
  std::int64_t perDestinationCap_ = 0;
  std::int64_t handedBackDueMs_ = 0;  // when the last jobs handed back are due again

  std::int64_t inFlight_ = 0;        // leased and not yet committed
  std::int64_t leasedDeferred_ = 0;  // of those, how many were leased from state Deferred
  bool stopping_ = false;
  int workersDrained_ = 0;
  int exitCode_ = 0;
  RunSummary summary_;
};

}  // namespace salvo::engine
