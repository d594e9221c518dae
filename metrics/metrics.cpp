#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>

namespace salvo::metrics {

namespace {

constexpr const char* kVersion = "0.1.0";

constexpr std::array<const char*, 5> kResultNames = {"delivered", "deferred", "bounced", "expired",
                                                     "suppressed"};

const char* replyClass(int code) {
  switch (code / 100) {
    case 2:
      return "2xx";
    case 3:
      return "3xx";
    case 4:
      return "4xx";
    case 5:
      return "5xx";
    default:
      return "invalid";
  }
}

std::string label(std::string_view value) {
  // An empty value would make Prometheus drop the label; say what it means instead.
  return value.empty() ? std::string(kOtherLabel) : std::string(value);
}

// Delivery latency: a warm pipelined connection answers in milliseconds, a slow provider
// in tens of seconds (the DATA timeout is minutes).
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
// Time in queue: from seconds (first try works) to the 3-day expiry.
const prometheus::Histogram::BucketBoundaries kQueueBuckets = {
    1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 259200};

}  // namespace

const char* resultName(Result result) {
  return kResultNames[static_cast<std::size_t>(result)];
}

template <typename Builder>
auto& Metrics::define(Builder builder, const char* name, const char* type, const char* help) {
  families_.push_back(FamilyInfo{name, type, help});
  return builder.Name(name).Help(help).Register(*registry_);
}

Metrics::Metrics() : Metrics(MetricsOptions{}) {}

Metrics::Metrics(MetricsOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      campaignLabels_(options_.maxCampaignLabels, options_.campaignIdleMs) {
  messages_ = &define(prometheus::BuildCounter(), "salvo_messages_total", "counter",
                      "Delivery attempts by committed result.");
  delivered_ = &messages_->Add({{"result", "delivered"}});
  deferred_ = &messages_->Add({{"result", "deferred"}});
  bounced_ = &messages_->Add({{"result", "bounced"}});
  messages_->Add({{"result", "expired"}});
  messages_->Add({{"result", "suppressed"}});
  campaignMessages_ =
      &define(prometheus::BuildCounter(), "salvo_campaign_messages_total", "counter",
              "Delivery attempts by campaign and committed result (campaign label capped; "
              "others count as \"other\").");
  providerMessages_ =
      &define(prometheus::BuildCounter(), "salvo_provider_messages_total", "counter",
              "Delivery attempts by mailbox provider and committed result.");
  replies_ = &define(prometheus::BuildCounter(), "salvo_smtp_replies_total", "counter",
                     "SMTP replies received, by provider and reply class.");
  bounces_ = &define(prometheus::BuildCounter(), "salvo_bounces_total", "counter",
                     "Bounces by provider, bounce category and severity (hard or soft).");
  deferrals_ = &define(prometheus::BuildCounter(), "salvo_deferrals_total", "counter",
                       "Deferrals by provider and reason category.");
  retries_ = &define(prometheus::BuildCounter(), "salvo_retries_total", "counter",
                     "Delivery attempts that were retries of a deferred job, by provider.");

  queueJobs_ =
      &define(prometheus::BuildGauge(), "salvo_queue_jobs", "gauge", "Jobs in the queue by state.");
  queued_ = &queueJobs_->Add({{"state", "queued"}});
  deferredJobs_ = &queueJobs_->Add({{"state", "deferred"}});
  inFlight_ = &queueJobs_->Add({{"state", "in_flight"}});

  connectionsOpen_ = &define(prometheus::BuildGauge(), "salvo_connections_open", "gauge",
                             "SMTP connections currently open, by provider.");
  connectionsOpened_ = &define(prometheus::BuildCounter(), "salvo_connections_opened_total",
                               "counter", "SMTP connections established, by provider.");
  deliveryLatency_ =
      &define(prometheus::BuildHistogram(), "salvo_delivery_latency_seconds", "histogram",
              "Time from sending MAIL FROM to the final reply of a message, by provider.");
  timeInQueue_ = &define(prometheus::BuildHistogram(), "salvo_time_in_queue_seconds", "histogram",
                         "Time from submission to a final outcome, by result.");
  throttled_ = &define(prometheus::BuildCounter(), "salvo_throttled_total", "counter",
                       "Times a destination limit held sending back, by provider and limit.");
  shapingActions_ = &define(prometheus::BuildCounter(), "salvo_shaping_actions_total", "counter",
                            "Shaping rules fired by a provider's reply, by provider and action.");
  suspensions_ = &define(prometheus::BuildCounter(), "salvo_suspensions_total", "counter",
                         "Suspensions of a destination or a campaign at a destination, and "
                         "destinations declared dead, by provider and kind.");
  outcomeBatches_ = &define(prometheus::BuildCounter(), "salvo_outcome_batches_total", "counter",
                            "Synced outcome batches written to the queue (group commits).")
                         .Add({});
  handedBack_ = &define(prometheus::BuildCounter(), "salvo_jobs_handed_back_total", "counter",
                        "Leased jobs returned to the queue unattempted: their destination held "
                        "its share of the in-flight window, their campaign its rate, or their "
                        "campaign was paused or cancelled before they were sent.")
                     .Add({});
  define(prometheus::BuildGauge(), "salvo_build_info", "gauge",
         "Salvo build information; always 1.")
      .Add({{"version", kVersion}})
      .Set(1);
}

Metrics::~Metrics() = default;

std::int64_t Metrics::now() const {
  if (options_.nowMs) {
    return options_.nowMs();
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

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
  connectionOpened(kOtherLabel);
}
void Metrics::connectionClosed() {
  connectionClosed(kOtherLabel);
}
void Metrics::countOutcomeBatch() {
  outcomeBatches_->Increment();
}

void Metrics::countHandedBack(std::uint64_t n) {
  handedBack_->Increment(static_cast<double>(n));
}

void Metrics::countMessages(Result result, std::string_view campaign, std::string_view provider,
                            std::uint64_t n) {
  const double v = static_cast<double>(n);
  const char* r = resultName(result);
  messages_->Add({{"result", r}}).Increment(v);
  providerMessages_->Add({{"provider", label(provider)}, {"result", r}}).Increment(v);
  std::lock_guard lock(campaignMutex_);
  auto labelled = campaignLabels_.label(label(campaign), now());
  if (labelled.evicted) {
    // A finished campaign gave up its slot: drop its series so the label set stays bounded.
    for (prometheus::Counter* c : campaignSeries_[*labelled.evicted]) {
      campaignMessages_->Remove(c);
    }
    campaignSeries_.erase(*labelled.evicted);
  }
  prometheus::Counter& c = campaignMessages_->Add({{"campaign", labelled.label}, {"result", r}});
  auto& series = campaignSeries_[labelled.label];
  if (std::find(series.begin(), series.end(), &c) == series.end()) {
    series.push_back(&c);
  }
  c.Increment(v);
}

std::string Metrics::campaignLabel(std::string_view campaign) {
  std::lock_guard lock(campaignMutex_);
  const std::string key = label(campaign);
  if (campaignSeries_.count(key) != 0) {
    return key;
  }
  return std::string(kOtherLabel);
}

void Metrics::countReply(std::string_view provider, int code) {
  replies_->Add({{"provider", label(provider)}, {"class", replyClass(code)}}).Increment();
}

void Metrics::countBounce(std::string_view provider, std::string_view category, bool hard) {
  bounces_
      ->Add({{"provider", label(provider)},
             {"category", label(category)},
             {"severity", hard ? "hard" : "soft"}})
      .Increment();
}

void Metrics::countDeferral(std::string_view provider, std::string_view category) {
  deferrals_->Add({{"provider", label(provider)}, {"category", label(category)}}).Increment();
}

void Metrics::countRetry(std::string_view provider) {
  retries_->Add({{"provider", label(provider)}}).Increment();
}

void Metrics::setQueueJobs(std::string_view state, std::int64_t jobs) {
  queueJobs_->Add({{"state", label(state)}}).Set(static_cast<double>(jobs));
}

void Metrics::connectionOpened(std::string_view provider) {
  connectionsOpen_->Add({{"provider", label(provider)}}).Increment();
  connectionsOpened_->Add({{"provider", label(provider)}}).Increment();
}

void Metrics::connectionClosed(std::string_view provider) {
  connectionsOpen_->Add({{"provider", label(provider)}}).Decrement();
}

void Metrics::observeDeliveryLatency(std::string_view provider, double seconds) {
  deliveryLatency_->Add({{"provider", label(provider)}}, kLatencyBuckets).Observe(seconds);
}

void Metrics::observeTimeInQueue(Result result, double seconds) {
  timeInQueue_->Add({{"result", resultName(result)}}, kQueueBuckets).Observe(seconds);
}

void Metrics::countThrottled(std::string_view provider, std::string_view limit) {
  throttled_->Add({{"provider", label(provider)}, {"limit", label(limit)}}).Increment();
}

void Metrics::countShapingAction(std::string_view provider, std::string_view action) {
  shapingActions_->Add({{"provider", label(provider)}, {"action", label(action)}}).Increment();
}

void Metrics::countSuspension(std::string_view provider, std::string_view kind) {
  suspensions_->Add({{"provider", label(provider)}, {"kind", label(kind)}}).Increment();
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
