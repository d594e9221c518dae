#include "campaigns/diagnostics.h"

#include <algorithm>
#include <utility>

namespace salvo::campaigns {

std::string Diagnostic::str() const {
  std::string s = file;
  if (line > 0) {
    if (!s.empty()) {
      s += ':';
    }
    s += std::to_string(line);
    if (column > 0) {
      s += ':';
      s += std::to_string(column);
    }
  }
  if (s.empty()) {
    return message;
  }
  return s + ": " + message;
}

void Diagnostics::add(Diagnostic d) {
  if (items_.size() >= kMaxErrors) {
    ++dropped_;
    return;
  }
  items_.push_back(std::move(d));
}

void Diagnostics::add(std::string file, int line, int column, std::string message, int exitCode) {
  add(Diagnostic{std::move(file), line, column, std::move(message), exitCode});
}

void Diagnostics::sortFrom(std::size_t first) {
  if (first >= items_.size()) {
    return;
  }
  std::vector<std::string> files;
  for (std::size_t i = first; i < items_.size(); ++i) {
    if (std::find(files.begin(), files.end(), items_[i].file) == files.end()) {
      files.push_back(items_[i].file);
    }
  }
  auto rank = [&](const Diagnostic& d) {
    return std::find(files.begin(), files.end(), d.file) - files.begin();
  };
  std::stable_sort(items_.begin() + static_cast<std::ptrdiff_t>(first), items_.end(),
                   [&](const Diagnostic& a, const Diagnostic& b) {
                     const auto ra = rank(a);
                     const auto rb = rank(b);
                     if (ra != rb) {
                       return ra < rb;
                     }
                     if (a.line != b.line) {
                       return a.line < b.line;
                     }
                     return a.column < b.column;
                   });
}

int Diagnostics::exitCode() const {
  if (items_.empty()) {
    return 0;
  }
  // Missing input is the most actionable condition: report it even when other errors
  // (often consequences of it) came first.
  for (const Diagnostic& d : items_) {
    if (d.exitCode == kExitNoInput) {
      return kExitNoInput;
    }
  }
  return items_.front().exitCode;
}

}  // namespace salvo::campaigns
