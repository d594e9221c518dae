// Metrics: the one place that defines every Prometheus family Salvo exports, and the
// HTTP endpoint that serves them. Contract: names follow Prometheus conventions (salvo_
// prefix, _total for counters, base units: seconds, bytes) and labels are bounded: result,
// state, class, severity, kind, limit and action take values from fixed sets; provider
// comes from the provider table (plus "other"); category from the bounce categories;
// campaign is capped (CampaignLabels). Never a recipient or a raw domain. Everything here
// is thread-safe (prometheus-cpp metrics are atomic). Pure code never depends on this
// module; the engine reports through the methods below. docs/metrics.md is the catalogue.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "metrics/campaign_labels.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
class Exposer;
template <typename T>
class Family;
}  // namespace prometheus

namespace salvo::metrics {

// The committed result of a delivery attempt (the `result` label).
enum class Result { Delivered, Deferred, Bounced, Expired, Suppressed };
const char* resultName(Result result);

struct MetricsOptions {
  std::size_t maxCampaignLabels = 20;       // campaigns with their own label value
  std::int64_t campaignIdleMs = 3'600'000;  // idle this long, a campaign's slot is reusable
  std::function<std::int64_t()> nowMs;      // steady clock; unset = std::chrono::steady_clock
};

// One family as defined here: what docs/metrics.md and the dashboard must agree with.
struct FamilyInfo {
  std::string name;
  std::string type;  // "counter", "gauge" or "histogram"
  std::string help;
};

class Metrics {
 public:
  Metrics();
  explicit Metrics(MetricsOptions options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // --- The aggregate entry points the dispatcher uses today. ---
  // salvo_messages_total{result}: committed outcomes of delivery attempts.
  void countDelivered(std::uint64_t n = 1);
  void countDeferred(std::uint64_t n = 1);
  void countBounced(std::uint64_t n = 1);
  // salvo_queue_jobs{state}: jobs by state, refreshed from the store.
  void setQueueDepth(std::int64_t queued, std::int64_t deferred, std::int64_t inFlight);
  // salvo_connections_open{provider="other"}: use the provider overloads when it is known.
  void connectionOpened();
  void connectionClosed();
  // salvo_outcome_batches_total: synced outcome batches (group commits).
  void countOutcomeBatch();
  // salvo_jobs_handed_back_total: leased jobs returned to the queue unattempted (their
  // destination held its share of the in-flight window, or the campaign's rate).
  void countHandedBack(std::uint64_t n = 1);

  // --- With labels. ---
  // One committed outcome: salvo_messages_total{result}, and the breakdowns
  // salvo_campaign_messages_total{campaign,result} and
  // salvo_provider_messages_total{provider,result}.
  void countMessages(Result result, std::string_view campaign, std::string_view provider,
                     std::uint64_t n = 1);
  // salvo_smtp_replies_total{provider,class}: every reply received, by class (2xx..5xx).
  void countReply(std::string_view provider, int code);
  // salvo_bounces_total{provider,category,severity}
  void countBounce(std::string_view provider, std::string_view category, bool hard);
  // salvo_deferrals_total{provider,category}
  void countDeferral(std::string_view provider, std::string_view category);
  // salvo_retries_total{provider}: attempts that were retries (attempt >= 2).
  void countRetry(std::string_view provider);
  // salvo_queue_jobs{state} for any state ("queued", "deferred", "in_flight", "suspended").
  void setQueueJobs(std::string_view state, std::int64_t jobs);
  // salvo_connections_open{provider} and salvo_connections_opened_total{provider}.
  void connectionOpened(std::string_view provider);
  void connectionClosed(std::string_view provider);
  // salvo_delivery_latency_seconds{provider}: from sending MAIL FROM to the final reply.
  void observeDeliveryLatency(std::string_view provider, double seconds);
  // salvo_time_in_queue_seconds{result}: from submission to a final outcome.
  void observeTimeInQueue(Result result, double seconds);
  // salvo_throttled_total{provider,limit}: a destination limit held sending back; `limit`
  // is a DestinationLimits key ("messages_per_second", "max_connections"...).
  void countThrottled(std::string_view provider, std::string_view limit);
  // salvo_shaping_actions_total{provider,action}: a shaping rule fired.
  void countShapingAction(std::string_view provider, std::string_view action);
  // salvo_suspensions_total{provider,kind}: kind is "destination", "campaign" or "dead"
  // (the concurrency window declared the site dead).
  void countSuspension(std::string_view provider, std::string_view kind);

  // The label value `campaign`'s series carry: itself once counted with a slot of its
  // own, else "other".
  std::string campaignLabel(std::string_view campaign);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // Every family registered, in definition order, whether or not it has series yet (the
  // registry only reports families with at least one series).
  const std::vector<FamilyInfo>& families() const { return families_; }

 private:
  std::int64_t now() const;
  template <typename Builder>
  auto& define(Builder builder, const char* name, const char* type, const char* help);

  MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<FamilyInfo> families_;
  prometheus::Family<prometheus::Counter>* messages_;
  prometheus::Family<prometheus::Counter>* campaignMessages_;
  prometheus::Family<prometheus::Counter>* providerMessages_;
  prometheus::Family<prometheus::Counter>* replies_;
  prometheus::Family<prometheus::Counter>* bounces_;
  prometheus::Family<prometheus::Counter>* deferrals_;
  prometheus::Family<prometheus::Counter>* retries_;
  prometheus::Family<prometheus::Gauge>* queueJobs_;
  prometheus::Family<prometheus::Gauge>* connectionsOpen_;
  prometheus::Family<prometheus::Counter>* connectionsOpened_;
  prometheus::Family<prometheus::Histogram>* deliveryLatency_;
  prometheus::Family<prometheus::Histogram>* timeInQueue_;
  prometheus::Family<prometheus::Counter>* throttled_;
  prometheus::Family<prometheus::Counter>* shapingActions_;
  prometheus::Family<prometheus::Counter>* suspensions_;
  prometheus::Counter* delivered_;
  prometheus::Counter* deferred_;
  prometheus::Counter* bounced_;
  prometheus::Gauge* queued_;
  prometheus::Gauge* deferredJobs_;
  prometheus::Gauge* inFlight_;
  prometheus::Counter* outcomeBatches_;
  prometheus::Counter* handedBack_;

  // Campaign-labelled series: labelling, counting and removing an evicted campaign's
  // series happen under one lock, so no thread increments a series being removed.
  std::mutex campaignMutex_;
  CampaignLabels campaignLabels_;
  std::unordered_map<std::string, std::vector<prometheus::Counter*>> campaignSeries_;
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
