#include "engine/worker.h"

#include <fmt/core.h>

namespace salvo::engine {

Worker::Worker(int index, const DeliverySettings& settings, ResultSink& results)
    : index_(index), settings_(settings), results_(results) {}

Worker::~Worker() {
  stopAndJoin();
}

void Worker::start() {
  loop_.start(fmt::format("salvo-loop-{}", index_));
}

void Worker::stopAndJoin() {
  // Destinations own libuv handles: destroy them on the loop thread before it stops.
  if (loop_.inLoopThread()) {
    destinations_.clear();
  } else {
    loop_.post([this] { destinations_.clear(); });
  }
  loop_.stop();
  loop_.join();
}

void Worker::deliver(const std::shared_ptr<const DestinationSpec>& spec,
                     std::vector<DeliveryJob>&& jobs) {
  auto& destination = destinations_[spec->key];
  if (!destination) {
    destination = std::make_unique<Destination>(loop_, spec, settings_, results_);
    destination->onDrained = [this] { checkDrained(); };
  } else {
    destination->useSpec(spec);
  }
  destination->enqueue(std::move(jobs));
}

void Worker::withdraw(const std::vector<std::uint32_t>& campaigns) {
  for (auto& [key, destination] : destinations_) {
    destination->withdraw(campaigns);
  }
}

void Worker::shutdown(std::function<void()> done) {
  drainedCallback_ = std::move(done);
  for (auto& [key, destination] : destinations_) {
    destination->shutdown();
  }
  checkDrained();
}

void Worker::checkDrained() {
  if (!drainedCallback_) {
    return;
  }
  for (auto& [key, destination] : destinations_) {
    if (!destination->drained()) {
      return;
    }
  }
  auto done = std::move(drainedCallback_);
  drainedCallback_ = nullptr;
  done();
}

}  // namespace salvo::engine
