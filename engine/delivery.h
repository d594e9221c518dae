// Values that cross threads between the dispatcher (control loop) and the delivery loops.
// Contract: plain data, moved, never shared; a job goes out as a DeliveryJob and always
// comes back exactly once as a DeliveryResult.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "campaigns/campaign.h"
#include "campaigns/config.h"
#include "engine/destination_limits.h"
#include "engine/net/address.h"
#include "engine/net/tls.h"
#include "engine/shaping_rules.h"
#include "engine/smtp/session.h"
#include "metrics/metrics.h"
#include "queue/job.h"

namespace salvo::engine {

class RenderPool;

struct DeliveryJob {
  queue::JobId id;
  queue::JobRecord record;  // as leased: record.state is the state it was taken in
  std::shared_ptr<const campaigns::Campaign> campaign;
  // Steady-clock microseconds when the dispatcher leased it: for latency figures only
  // (`salvo bench`), never for scheduling.
  std::int64_t leasedAtUs = 0;
  // Steady-clock microseconds when its MAIL FROM was queued to send (0: not sent yet).
  std::int64_t submittedUs = 0;
  // The destination it was counted against for head-of-line protection (the MX site once
  // its domain has resolved, else the domain; a route's key), so its result uncounts the
  // same one.
  std::string site;
};

struct DeliveryResult {
  DeliveryJob job;
  smtp::Disposition disposition = smtp::Disposition::Deferred;
  smtp::FailureScope scope = smtp::FailureScope::None;
  std::string reply;  // one line: the deciding reply's summary, or the error
  bool tls = false;   // the attempt ran over TLS (STARTTLS)
  // The deciding reply, when there was one (code 0 otherwise), for classification.
  int replyCode = 0;
  smtp::EnhancedCode enhanced{};
  std::string mxHost{};       // the host name of the endpoint that answered, "" when none did
  double latencySeconds = 0;  // from MAIL FROM to the deciding reply (0: never sent)
  // False for a job given back unsent on request (Destination::withdraw): it returns to
  // the queue as it was leased, due now, with no attempt counted.
  bool attempted = true;
};

// Where a destination's mail goes, resolved to addresses (MX hosts in preference order).
struct DestinationSpec {
  // "route:host:port", or "mx:" and the MX host names sorted and joined by ',': domains
  // served by the same MX hosts share one destination (connections, throttle, window).
  std::string key;
  std::string label;  // for logs
  std::vector<net::Endpoint> endpoints;
  // The host name each endpoint was resolved from (MX host or route host), parallel to
  // `endpoints`: the TLS server name (SNI) and the name `verify` checks.
  std::vector<std::string> hostNames;
  smtp::TlsPolicy tls = smtp::TlsPolicy::Opportunistic;
  smtp::AuthSettings auth;  // a route's SMTP AUTH account; user "" = none
  // The mailbox provider (ProviderTable, by MX host; "other" for routes and unknown sites)
  // and the limits this destination gets (provider limits with configured overrides).
  std::string provider = "other";
  DestinationLimits limits = defaultDestinationLimits();
};

// Limits and identity every connection of every destination uses.
struct DeliverySettings {
  smtp::SessionConfig session;
  int maxConnections = 8;
  int messagesPerConnection = 1000;
  std::uint64_t connectTimeoutMs = 30'000;
  std::uint64_t idleTimeoutMs = 5'000;
  // The one TLS client context every connection shares; null when it could not be built
  // (tlsContextError says why): then TLS is skipped where optional and defers where not.
  std::shared_ptr<net::TlsContext> tlsContext;
  std::string tlsContextError;
  // Where connections render (and sign) the messages of DKIM-signing campaigns, off their
  // loop (null: on the loop, as every other message). Thread-safe.
  RenderPool* renderPool = nullptr;
  // Shaping rules every destination applies to non-2xx replies (null: none).
  const ShapingRules* shaping = nullptr;
  // Where destinations report throttles and connections (null: nowhere). Thread-safe.
  metrics::Metrics* metrics = nullptr;
  // Steady milliseconds for the limits (tests inject one); unset = std::chrono::steady_clock.
  std::function<std::int64_t()> steadyMs;
};

// Fills `settings` from the configuration's delivery section: per-state timeouts, the
// TLS context (system store plus delivery.tls_ca_file).
void applyDeliveryConfig(const campaigns::DeliveryConfig& config, DeliverySettings& settings);

// The session's TLS policy for a configured mode.
smtp::TlsPolicy tlsPolicyFor(campaigns::TlsMode mode);

// Implemented by the dispatcher; called from delivery loop threads.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void deliveryDone(DeliveryResult&& result) = 0;
  virtual void connectionOpened(const std::string& provider) = 0;
  virtual void connectionClosed(const std::string& provider) = 0;
};

}  // namespace salvo::engine
