#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <exception>

namespace salvo::metrics {

namespace {
constexpr const char* kVersion = "0.1.0";
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& messages = prometheus::BuildCounter()
                       .Name("salvo_messages_total")
                       .Help("Delivery attempts by committed result.")
                       .Register(*registry_);
  delivered_ = &messages.Add({{"result", "delivered"}});
  deferred_ = &messages.Add({{"result", "deferred"}});
  bounced_ = &messages.Add({{"result", "bounced"}});

  auto& depth = prometheus::BuildGauge()
                    .Name("salvo_queue_jobs")
                    .Help("Jobs in the queue by state.")
                    .Register(*registry_);
  queued_ = &depth.Add({{"state", "queued"}});
  deferredJobs_ = &depth.Add({{"state", "deferred"}});
  inFlight_ = &depth.Add({{"state", "in_flight"}});

  connections_ = &prometheus::BuildGauge()
                      .Name("salvo_connections_open")
                      .Help("SMTP connections currently open.")
                      .Register(*registry_)
                      .Add({});
  outcomeBatches_ = &prometheus::BuildCounter()
                         .Name("salvo_outcome_batches_total")
                         .Help("Synced outcome batches written to the queue (group commits).")
                         .Register(*registry_)
                         .Add({});
  prometheus::BuildGauge()
      .Name("salvo_build_info")
      .Help("Salvo build information; always 1.")
      .Register(*registry_)
      .Add({{"version", kVersion}})
      .Set(1);
}

Metrics::~Metrics() = default;

void Metrics::countDelivered(std::uint64_t n) {
  delivered_->Increment(static_cast<double>(n));
}
void Metrics::countDeferred(std::uint64_t n) {
  deferred_->Increment(static_cast<double>(n));
}
void Metrics::countBounced(std::uint64_t n) {
  bounced_->Increment(static_cast<double>(n));
}

void Metrics::setQueueDepth(std::int64_t queued, std::int64_t deferred, std::int64_t inFlight) {
  queued_->Set(static_cast<double>(queued));
  deferredJobs_->Set(static_cast<double>(deferred));
  inFlight_->Set(static_cast<double>(inFlight));
}

void Metrics::connectionOpened() {
  connections_->Increment();
}
void Metrics::connectionClosed() {
  connections_->Decrement();
}
void Metrics::countOutcomeBatch() {
  outcomeBatches_->Increment();
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer)
    : exposer_(std::move(exposer)) {}

MetricsServer::~MetricsServer() = default;

std::unique_ptr<MetricsServer> MetricsServer::start(const std::string& listen,
                                                    const Metrics& metrics, std::string& error) {
  // civetweb reports a bind failure by throwing; turn it into an error at this boundary.
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(listen, 1);
    exposer->RegisterCollectable(metrics.registry());
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer)));
  } catch (const std::exception& e) {
    error = "metrics endpoint " + listen + ": cannot listen: " + e.what();
    return nullptr;
  }
}

std::uint16_t MetricsServer::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<std::uint16_t>(ports.front());
}

}  // namespace salvo::metrics
