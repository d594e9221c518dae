// Metrics: the one place that defines every Prometheus family Salvo exports, and the
// HTTP endpoint that serves them. Contract: names follow Prometheus conventions (salvo_
// prefix, _total for counters, base units) and labels are bounded (never a recipient or a
// raw domain). Everything here is thread-safe (prometheus-cpp metrics are atomic). Pure
// code never depends on this module; the engine reports through the methods below.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Exposer;
}  // namespace prometheus

namespace salvo::metrics {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // salvo_messages_total{result}: committed outcomes of delivery attempts.
  void countDelivered(std::uint64_t n = 1);
  void countDeferred(std::uint64_t n = 1);
  void countBounced(std::uint64_t n = 1);
  // salvo_queue_jobs{state}: jobs by state, refreshed from the store.
  void setQueueDepth(std::int64_t queued, std::int64_t deferred, std::int64_t inFlight);
  // salvo_connections_open: SMTP connections currently open.
  void connectionOpened();
  void connectionClosed();
  // salvo_outcome_batches_total: synced outcome batches (group commits).
  void countOutcomeBatch();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* delivered_;
  prometheus::Counter* deferred_;
  prometheus::Counter* bounced_;
  prometheus::Gauge* queued_;
  prometheus::Gauge* deferredJobs_;
  prometheus::Gauge* inFlight_;
  prometheus::Gauge* connections_;
  prometheus::Counter* outcomeBatches_;
};

// Serves /metrics over HTTP for as long as it lives.
class MetricsServer {
 public:
  // `listen` is "host:port" (port 0 picks a free one). nullptr and `error` on failure.
  static std::unique_ptr<MetricsServer> start(const std::string& listen, const Metrics& metrics,
                                              std::string& error);
  ~MetricsServer();
  std::uint16_t port() const;

 private:
  explicit MetricsServer(std::unique_ptr<prometheus::Exposer> exposer);
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace salvo::metrics
