// Diagnostics for bad input: every error with file:line:column, and the sysexits code
// the command should exit with. Contract: validation collects all errors it can find
// (capped), it does not stop at the first.
#pragma once

#include <string>
#include <vector>

namespace salvo::campaigns {

// sysexits(3)
inline constexpr int kExitUsage = 64;
inline constexpr int kExitDataErr = 65;
inline constexpr int kExitNoInput = 66;
inline constexpr int kExitUnavailable = 69;
inline constexpr int kExitSoftware = 70;
inline constexpr int kExitIoErr = 74;
inline constexpr int kExitTempFail = 75;
inline constexpr int kExitConfig = 78;

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when there is no position
  int column = 0;  // 1-based; 0 when there is none
  std::string message;
  int exitCode = kExitDataErr;

  // "file:line:column: message" (the parts that are known).
  std::string str() const;
};

class Diagnostics {
 public:
  static constexpr std::size_t kMaxErrors = 100;
  void add(Diagnostic d);
  void add(std::string file, int line, int column, std::string message,
           int exitCode = kExitDataErr);
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size() + dropped_; }
  const std::vector<Diagnostic>& items() const { return items_; }
  std::size_t dropped() const { return dropped_; }
  // Orders the items from index `first` on by file (in order of first appearance), then
  // line and column, so a file's errors read top to bottom whatever check found them.
  void sortFrom(std::size_t first);
  // The exit code for the whole set: the first error's (66 for missing input wins over 65).
  int exitCode() const;

 private:
  std::vector<Diagnostic> items_;
  std::size_t dropped_ = 0;
};

}  // namespace salvo::campaigns
