// Operational logging for the daemon: one line per event on stderr, thread-safe.
// Contract: engine/smtp never logs (it reports through SessionSink::trace); the rest of
// engine/ logs through here so the format and level are decided in one place.
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace salvo::engine {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);
void logLine(LogLevel level, std::string_view line);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (logEnabled(level)) {
    logLine(level, fmt::format(format, std::forward<Args>(args)...));
  }
}

}  // namespace salvo::engine
