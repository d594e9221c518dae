#include "engine/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace salvo::engine {

namespace {
std::atomic<int> gLevel{static_cast<int>(LogLevel::Info)};
constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void setLogLevel(LogLevel level) {
  gLevel = static_cast<int>(level);
}

bool logEnabled(LogLevel level) {
  return static_cast<int>(level) <= gLevel.load();
}

void logLine(LogLevel level, std::string_view line) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per line: stdio locks the stream, so lines from threads never interleave.
  std::fprintf(stderr, "%s.%03dZ %s %.*s\n", stamp, static_cast<int>(ms.count()),
               kNames[static_cast<int>(level)], static_cast<int>(line.size()), line.data());
}

}  // namespace salvo::engine
