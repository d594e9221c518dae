// `salvo bench`: one command that measures Salvo end to end on this machine.
// Contract: creates a temporary data directory and configuration, starts `salvo sink` as
// a separate process (so CPU figures separate Salvo from its peer) unless a target is
// given, generates a synthetic campaign, submits it and runs the engine until idle, then
// reports submit rate, delivery rate, delivery latency (lease to outcome, p50/p99), CPU
// per 1,000 messages, peak RSS and synced batches, as text or JSON. With --dkim it signs
// every message with a key generated for the run. With --tls every message goes over
// STARTTLS (the route's tls is `required`, unverified): its own sink offers STARTTLS with
// a self-signed certificate, and a --target must offer it (checked with one EHLO before
// submitting). It measures; it asserts nothing about speed.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace salvo::bench {

struct BenchOptions {
  std::uint64_t recipients = 10'000;
  std::uint32_t domains = 10;
  std::uint32_t size = 4096;    // approximate message size in octets
  std::string target;           // HOST:PORT of an existing SMTP server; empty = own sink
  int threads = 0;              // delivery loops; 0 = one per core
  int connections = 8;          // per destination
  std::size_t maxInFlight = 0;  // jobs leased at once (delivery.max_in_flight); 0 = default
  std::string dkim = "none";    // "none", "rsa" (rsa-sha256, 2048 bits) or "ed25519"
  bool tls = false;             // STARTTLS required on every connection
  bool json = false;
  bool progress = true;     // a progress line when stderr is a terminal
  std::string keepDir;      // when set, work there and keep it
  std::string salvoBinary;  // the `salvo` executable that runs the sink
};

struct BenchReport {
  std::uint64_t recipients = 0;
  std::uint32_t domains = 0;
  std::uint32_t messageBytes = 0;
  std::size_t maxInFlight = 0;
  double submitSeconds = 0;
  double deliverySeconds = 0;
  std::uint64_t delivered = 0;
  std::uint64_t deferred = 0;
  std::uint64_t bounced = 0;
  std::uint64_t expired = 0;
  std::uint64_t outcomeBatches = 0;
  std::uint64_t handedBack = 0;  // leased jobs returned to the queue unattempted
  double cpuSeconds = 0;         // this process, during delivery
  double sinkCpuSeconds = 0;     // the sink process, whole life (own sink only)
  std::uint64_t sinkMessages = 0;
  std::uint64_t sinkConnections = 0;  // own sink only
  std::uint64_t sinkTlsSessions = 0;  // own sink only
  bool tls = false;
  double peakRssMiB = 0;
  std::string target;
  std::string dkim = "none";
  // Delivery latency, lease to result, over every result (microseconds).
  std::uint64_t latencySamples = 0;
  double latencyP50Ms = 0;
  double latencyP99Ms = 0;
  double latencyMaxMs = 0;

  double submitRate() const { return submitSeconds > 0 ? recipients / submitSeconds : 0; }
  double deliveryRate() const { return deliverySeconds > 0 ? delivered / deliverySeconds : 0; }
  double megabytesPerSecond() const {
    return deliverySeconds > 0 ? delivered * double(messageBytes) / 1e6 / deliverySeconds : 0;
  }
};

// Runs the benchmark; writes the report to `out`, errors to `err`. Returns a sysexits
// code (0 on success, even when some messages were not delivered: the report says so).
int runBench(const BenchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace salvo::bench
