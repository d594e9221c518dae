// Shared plumbing for the YAML files this module reads (campaigns, salvo.yaml).
// Contract: the only place that catches yaml-cpp exceptions; everything here turns
// problems into file:line:column diagnostics (1-based; yaml-cpp marks are 0-based) and
// never throws. Callers never use yaml-cpp's as<T>() conversions, which throw.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "campaigns/diagnostics.h"

namespace salvo::campaigns {

// Reads a whole (small) file. false and `error` (strerror text) when it cannot be read.
bool readWholeFile(const std::string& path, std::string& content, std::string& error);

// A 1-based position; {0, 0} when unknown.
struct YamlPosition {
  int line = 0;
  int column = 0;
};
YamlPosition positionOf(const YAML::Mark& mark);

// A scalar's text, given the file text the node was parsed from: plain null-like scalars
// ("null", "~") are their own text, an empty value is "". nullopt for a list or a map.
std::optional<std::string> scalarText(const YAML::Node& node, std::string_view text);

// The value's position, or the key's when the value is empty (yaml-cpp marks an empty
// value at the start of the next token, often on the next line).
YamlPosition valuePosition(const YAML::Node& key, const YAML::Node& value, std::string_view text);

// User data made safe to quote in a message: control characters escaped (\n, \x01),
// and cut after 200 bytes.
std::string printable(std::string_view text);

// Where diagnostics about one YAML file go.
class YamlFile {
 public:
  YamlFile(std::string file, Diagnostics& diags, int exitCode)
      : file_(std::move(file)), diags_(diags), exitCode_(exitCode) {}

  // Parses `text` (a leading UTF-8 BOM is dropped first and `text` updated, so that
  // marks are offsets into it). nullopt after reporting a syntax error.
  std::optional<YAML::Node> parse(std::string& text);

  const std::string& file() const { return file_; }
  const std::string& text() const { return text_; }
  Diagnostics& diags() { return diags_; }

  void error(YamlPosition at, std::string message, int exitCode);
  void error(YamlPosition at, std::string message) { error(at, std::move(message), exitCode_); }
  void error(const YAML::Node& at, std::string message);

  // scalarText(), with an error naming `what` for a list or a map.
  std::optional<std::string> scalar(const YAML::Node& node, std::string_view what);

  YamlPosition valuePosition(const YAML::Node& key, const YAML::Node& value) const {
    return campaigns::valuePosition(key, value, text_);
  }

  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };
  // The entries of a map whose keys are in `known`; reports unknown keys (with a
  // suggestion), duplicate keys and non-scalar keys.
  std::map<std::string, Entry, std::less<>> readMap(const YAML::Node& map,
                                                    const std::vector<std::string_view>& known);

 private:
  std::string file_;
  Diagnostics& diags_;
  int exitCode_;
  std::string text_;
};

// "unknown key 'subjekt' (did you mean 'subject'?)" or, with no close match,
// "unknown key 'x' (expected one of: a, b)".
std::string unknownKeyMessage(std::string_view key, const std::vector<std::string_view>& known);

// "500ms", "30s", "5m", "4h", "3d" or a bare integer of seconds, in milliseconds.
// nullopt when malformed or when it does not fit in 64 bits.
std::optional<std::uint64_t> parseDurationMs(std::string_view text);

// A decimal integer with nothing else around it.
std::optional<std::int64_t> parseInteger(std::string_view text);

}  // namespace salvo::campaigns
