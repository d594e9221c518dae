#include "engine/destination.h"

#include <algorithm>

#include "engine/log.h"

namespace salvo::engine {

Destination::Destination(net::EventLoop& loop, std::shared_ptr<const DestinationSpec> spec,
                         const DeliverySettings& settings, ResultSink& results)
    : loop_(loop),
      spec_(std::move(spec)),
      settings_(settings),
      results_(results),
      endpointFailed_(spec_->endpoints.size(), false) {}

Destination::~Destination() = default;

void Destination::enqueue(std::vector<DeliveryJob>&& jobs) {
  for (auto& job : jobs) {
    pending_.push_back(std::move(job));
  }
  pump();
}

void Destination::shutdown() {
  shuttingDown_ = true;
  // Jobs not yet on a connection stay leased in the store; recovery on the next start
  // returns them to the queue. Only jobs already in a session finish here.
  pending_.clear();
  for (auto& c : connections_) {
    if (c->idle()) {
      c->quit();
    }
  }
}

void Destination::pump() {
  // Connections call back into us (ready, jobDone) while we submit; one pass at a time.
  if (pumping_) {
    return;
  }
  pumping_ = true;
  for (auto& c : connections_) {
    while (!pending_.empty() && c->canAccept()) {
      DeliveryJob job = std::move(pending_.front());
      pending_.pop_front();
      c->submit(std::move(job));
    }
  }
  if (!shuttingDown_ && !spec_->endpoints.empty()) {
    while (!pending_.empty() &&
           connections_.size() < static_cast<std::size_t>(settings_.maxConnections) &&
           connections_.size() < pending_.size()) {
      openConnection();
    }
  }
  if (spec_->endpoints.empty() && !pending_.empty()) {
    failPending("no address to deliver to");
  }
  pumping_ = false;
}

void Destination::openConnection() {
  const auto firstWorking = std::find(endpointFailed_.begin(), endpointFailed_.end(), false);
  const std::size_t i = firstWorking == endpointFailed_.end()
                            ? 0
                            : static_cast<std::size_t>(firstWorking - endpointFailed_.begin());
  const auto& endpoint = spec_->endpoints[i];
  std::string hostName = i < spec_->hostNames.size() ? spec_->hostNames[i] : std::string();
  smtp::TlsPolicy tls = spec_->tls;
  if (plaintextOnly_ && tls == smtp::TlsPolicy::Opportunistic) {
    tls = smtp::TlsPolicy::Disabled;
  }
  auto connection =
      std::make_unique<SmtpConnection>(loop_, endpoint, std::move(hostName), tls, settings_, *this);
  SmtpConnection* raw = connection.get();
  connections_.push_back(std::move(connection));
  results_.connectionOpened();
  raw->start();
}

std::size_t Destination::endpointIndex(const SmtpConnection& connection) const {
  for (std::size_t i = 0; i < spec_->endpoints.size(); ++i) {
    if (spec_->endpoints[i].str() == connection.endpoint().str()) {
      return i;
    }
  }
  return spec_->endpoints.size();
}

void Destination::connectionReady(SmtpConnection& connection) {
  // The endpoint works again (rare: only look it up when some endpoint is marked).
  if (std::find(endpointFailed_.begin(), endpointFailed_.end(), true) != endpointFailed_.end()) {
    const std::size_t i = endpointIndex(connection);
    if (i < endpointFailed_.size()) {
      endpointFailed_[i] = false;
    }
  }
  if (pending_.empty()) {
    if (shuttingDown_ && connection.idle()) {
      connection.quit();
    }
    return;
  }
  pump();
}

void Destination::jobDone(DeliveryResult&& result) {
  results_.deliveryDone(std::move(result));
}

void Destination::jobReturned(DeliveryJob&& job) {
  if (shuttingDown_) {
    return;  // like shutdown()'s pending jobs: still leased, back in the queue on restart
  }
  pending_.push_front(std::move(job));
}

void Destination::connectionFinished(SmtpConnection& connection, const std::string& error,
                                     smtp::FailureScope scope) {
  auto it = std::find_if(connections_.begin(), connections_.end(),
                         [&](const auto& c) { return c.get() == &connection; });
  if (it == connections_.end()) {
    return;
  }
  // Destroy after the current callback chain has unwound: we are inside its call stack.
  std::shared_ptr<SmtpConnection> doomed(std::move(*it));
  connections_.erase(it);
  loop_.post([doomed] {});
  results_.connectionClosed();

  if (!error.empty()) {
    log(LogLevel::Warn, "{} via {}: {}", spec_->label, connection.endpoint().str(), error);
  }
  if (connection.tlsFailed() && spec_->tls == smtp::TlsPolicy::Opportunistic) {
    // Its jobs came back through jobReturned(): retry them at once without TLS.
    log(LogLevel::Info, "{}: TLS handshake failed; retrying without TLS", spec_->label);
    plaintextOnly_ = true;
    if (!shuttingDown_) {
      pump();
    }
    if (drained() && onDrained) {
      onDrained();
    }
    return;
  }
  bool siteFailure = !connection.everReady() && !error.empty() &&
                     (scope == smtp::FailureScope::Site || scope == smtp::FailureScope::Connection);
  if (siteFailure) {
    // Fail over to the next endpoint; when every endpoint has failed, give the jobs back
    // to the retry schedule rather than spinning on a dead site.
    const std::size_t i = endpointIndex(connection);
    if (i < endpointFailed_.size()) {
      endpointFailed_[i] = true;
    }
    if (std::find(endpointFailed_.begin(), endpointFailed_.end(), false) == endpointFailed_.end()) {
      endpointFailed_.assign(endpointFailed_.size(), false);
      failPending(error);
    }
  }
  if (!shuttingDown_) {
    pump();
  }
  if (drained() && onDrained) {
    onDrained();
  }
}

void Destination::failPending(const std::string& error) {
  std::deque<DeliveryJob> jobs;
  jobs.swap(pending_);
  for (auto& job : jobs) {
    results_.deliveryDone(DeliveryResult{std::move(job), smtp::Disposition::Deferred,
                                         smtp::FailureScope::Site, spec_->label + ": " + error});
  }
}

}  // namespace salvo::engine
