// Worker: one delivery event loop on its own thread and the destinations pinned to it.
// Contract: every method except the constructor/start/stop runs on the worker's loop
// thread (the dispatcher reaches it with loop().post()), so destination state needs no
// locks.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/delivery.h"
#include "engine/destination.h"
#include "engine/net/loop.h"

namespace salvo::engine {

class Worker {
 public:
  Worker(int index, const DeliverySettings& settings, ResultSink& results);
  ~Worker();

  net::EventLoop& loop() { return loop_; }
  void start();
  void stopAndJoin();

  // Loop thread only.
  void deliver(const std::shared_ptr<const DestinationSpec>& spec, std::vector<DeliveryJob>&& jobs);
  // Loop thread only: every destination's withdraw().
  void withdraw(const std::vector<std::uint32_t>& campaigns);
  // Loop thread only: stop opening connections, abandon jobs not yet sent (they stay leased
  // in the store and return to the queue on restart), QUIT idle connections, and call
  // `done` once every connection has closed.
  void shutdown(std::function<void()> done);

 private:
  void checkDrained();

  int index_;
  const DeliverySettings& settings_;
  ResultSink& results_;
  net::EventLoop loop_;
  std::unordered_map<std::string, std::unique_ptr<Destination>> destinations_;
  std::function<void()> drainedCallback_;
};

}  // namespace salvo::engine
