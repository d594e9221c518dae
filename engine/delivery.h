// Values that cross threads between the dispatcher (control loop) and the delivery loops.
// Contract: plain data, moved, never shared; a job goes out as a DeliveryJob and always
// comes back exactly once as a DeliveryResult.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "campaigns/campaign.h"
#include "campaigns/config.h"
#include "engine/net/address.h"
#include "engine/net/tls.h"
#include "engine/smtp/session.h"
#include "queue/job.h"

namespace salvo::engine {

struct DeliveryJob {
  queue::JobId id;
  queue::JobRecord record;  // as leased: record.state is the state it was taken in
  std::shared_ptr<const campaigns::Campaign> campaign;
};

struct DeliveryResult {
  DeliveryJob job;
  smtp::Disposition disposition = smtp::Disposition::Deferred;
  smtp::FailureScope scope = smtp::FailureScope::None;
  std::string reply;  // one line: the deciding reply's summary, or the error
  bool tls = false;   // the attempt ran over TLS (STARTTLS)
};

// Where a destination's mail goes, resolved to addresses (MX hosts in preference order).
struct DestinationSpec {
  std::string key;    // "route:host:port" or "mx:host1,host2"
  std::string label;  // for logs
  std::vector<net::Endpoint> endpoints;
  // The host name each endpoint was resolved from (MX host or route host), parallel to
  // `endpoints`: the TLS server name (SNI) and the name `verify` checks.
  std::vector<std::string> hostNames;
  smtp::TlsPolicy tls = smtp::TlsPolicy::Opportunistic;
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
  virtual void connectionOpened() = 0;
  virtual void connectionClosed() = 0;
};

}  // namespace salvo::engine
