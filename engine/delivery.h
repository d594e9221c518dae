// Values that cross threads between the dispatcher (control loop) and the delivery loops.
// Contract: plain data, moved, never shared; a job goes out as a DeliveryJob and always
// comes back exactly once as a DeliveryResult.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "campaigns/campaign.h"
#include "engine/net/address.h"
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
};

// Where a destination's mail goes, resolved to addresses (MX hosts in preference order).
struct DestinationSpec {
  std::string key;    // "route:host:port" or "mx:host1,host2"
  std::string label;  // for logs
  std::vector<net::Endpoint> endpoints;
};

// Limits and identity every connection of every destination uses.
struct DeliverySettings {
  smtp::SessionConfig session;
  int maxConnections = 8;
  int messagesPerConnection = 1000;
  std::uint64_t connectTimeoutMs = 30'000;
  std::uint64_t idleTimeoutMs = 5'000;
};

// Implemented by the dispatcher; called from delivery loop threads.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void deliveryDone(DeliveryResult&& result) = 0;
  virtual void connectionOpened() = 0;
  virtual void connectionClosed() = 0;
};

}  // namespace salvo::engine
