#include "bench/sink_main.h"

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "engine/net/loop.h"

namespace salvo::bench {

namespace {

// The peaks are reported with --measure-rate only (the measuring is opt-in).
std::string statsJson(const Sink::Stats& s, bool peaks) {
  return fmt::format(
      "{{\"connections\": {}, \"messages\": {}, \"recipients\": {}, \"rejected\": {}, "
      "\"deferred\": {}, \"bytes\": {}, \"faults4xx\": {}, \"faults5xx\": {}, "
      "\"rateLimited\": {}, \"connectionLimited\": {}, \"dropped\": {}, "
      "\"delayedGreetings\": {}, \"tls\": {}, \"tlsFailed\": {}{}}}\n",
      s.connections, s.messages, s.recipients, s.rejected, s.deferred, s.bytes, s.faults4xx,
      s.faults5xx, s.rateLimited, s.connectionLimited, s.dropped, s.delayedGreetings, s.tls,
      s.tlsFailed,
      peaks ? fmt::format(", \"peak_connections\": {}, \"peak_messages_per_second\": {}",
                          s.peakConnections, s.peakMessagesPerSecond)
            : std::string());
}

bool writeFile(const std::string& path, const std::string& text, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    error = fmt::format("cannot write stats to {}: {}", path, std::strerror(errno));
    return false;
  }
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  int savedErrno = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    savedErrno = errno;
  }
  if (!ok) {
    error = fmt::format("cannot write stats to {}: {}", path, std::strerror(savedErrno));
  }
  return ok;
}

}  // namespace

int runSinkCommand(const Sink::Options& options, const std::string& statsJsonPath) {
  return runSinkCommand(options, statsJsonPath, std::cout, std::cerr, nullptr);
}

int runSinkCommand(const Sink::Options& options, const std::string& statsJsonPath,
                   std::ostream& out, std::ostream& err,
                   const std::function<void(std::uint16_t port)>& onListening) {
  std::string error;
  net::Endpoint at;
  if (!Sink::parseListen(options.listen, at, error)) {
    err << "salvo sink: " << error << std::endl;
    return kSinkExitConfig;
  }
  Sink::Profile resolved;
  if (!Sink::resolveFaults(options, resolved, error)) {
    err << "salvo sink: " << error << std::endl;
    return kSinkExitConfig;
  }

  // This thread waits for the signals on a loop of its own; the sink serves on its own
  // thread. The handlers go in before the sink starts, so that an early SIGTERM still
  // ends in an orderly stop.
  net::EventLoop signals;
  Sink sink(options);
  if (!sink.prepareTls(error)) {
    err << "salvo sink: " << error << std::endl;
    return kSinkExitConfig;
  }
  {
    net::SignalWatcher onInt(signals, SIGINT, [&signals] { signals.stop(); });
    net::SignalWatcher onTerm(signals, SIGTERM, [&signals] { signals.stop(); });
    if (!sink.start(error)) {
      err << "salvo sink: " << error << std::endl;
      return kSinkExitIoErr;
    }
    out << "salvo sink: listening on " << sink.endpoint().str() << std::endl;
    if (onListening) {
      onListening(sink.port());
    }
    signals.run();
  }
  sink.stop();

  Sink::Stats s = sink.stats();
  out << fmt::format("salvo sink: {} messages, {} recipients, {} rejected, {} deferred, {} bytes",
                     s.messages, s.recipients, s.rejected, s.deferred, s.bytes)
      << std::endl;
  if (options.tls || !options.tlsCert.empty() || !options.tlsKey.empty()) {
    out << fmt::format("salvo sink: TLS: {} sessions, {} failed handshakes", s.tls, s.tlsFailed)
        << std::endl;
  }
  const std::uint64_t faults =
      s.faults4xx + s.faults5xx + s.rateLimited + s.connectionLimited + s.dropped;
  if (faults > 0 || s.delayedGreetings > 0) {
    out << fmt::format(
               "salvo sink: faults: {} 4xx, {} 5xx, {} rate limited, {} connection limited, {} "
               "dropped, {} delayed greetings",
               s.faults4xx, s.faults5xx, s.rateLimited, s.connectionLimited, s.dropped,
               s.delayedGreetings)
        << std::endl;
  }
  if (!statsJsonPath.empty() &&
      !writeFile(statsJsonPath, statsJson(s, options.measureRate), error)) {
    err << "salvo sink: " << error << std::endl;
    return kSinkExitIoErr;
  }
  return 0;
}

}  // namespace salvo::bench
