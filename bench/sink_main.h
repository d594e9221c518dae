// The `salvo sink` command body (the CLI in cli/ parses the flags into Sink::Options).
// Contract: runs a Sink until SIGINT or SIGTERM, prints where it listens and a one-line
// summary on stdout, optionally writes the counts as JSON, and returns a sysexits code.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "bench/sink.h"

namespace salvo::bench {

inline constexpr int kSinkExitIoErr = 74;   // EX_IOERR: address in use, maildir, stats file
inline constexpr int kSinkExitConfig = 78;  // EX_CONFIG: malformed listen address, fault option

// Prints "salvo sink: listening on 127.0.0.1:PORT" (flushed at once; the real port when
// asked for port 0), serves until SIGINT/SIGTERM, then prints "salvo sink: N messages,
// M recipients, R rejected, D deferred, B bytes" and writes those counts (and
// connections) as a JSON object to `statsJsonPath` when it is not empty. Returns 0, 78
// for a malformed listen address, 74 when the sink cannot start or the stats file cannot
// be written (78 too for an unknown profile, an out-of-range fault option or an unusable
// TLS certificate or key file, named in the message); errors go to stderr as
// "salvo sink: <message>". With TLS, a line "salvo sink: TLS: N sessions, F failed
// handshakes" follows the summary, and the JSON has "tls" and "tlsFailed" in any case.
int runSinkCommand(const Sink::Options& options, const std::string& statsJsonPath);

// The same with the streams given, and `onListening(port)` called once the sink serves
// and the signal handlers are in place (tests use it to talk to the sink, then raise
// SIGTERM).
int runSinkCommand(const Sink::Options& options, const std::string& statsJsonPath,
                   std::ostream& out, std::ostream& err,
                   const std::function<void(std::uint16_t port)>& onListening);

}  // namespace salvo::bench
