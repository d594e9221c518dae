#include "engine/event_summary.h"

#include <fmt/core.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_map>

namespace salvo::engine {

namespace {

constexpr std::size_t kMaxReason = 120;

struct Latest {
  EventType type = EventType::Delivered;
  std::string provider;
  std::string reason;
};

}  // namespace

std::string deferralReason(const std::string& reply) {
  std::string out;
  out.reserve(std::min(reply.size(), kMaxReason));
  for (std::size_t i = 0; i < reply.size() && out.size() < kMaxReason; ++i) {
    if (reply[i] == '<') {
      const std::size_t close = reply.find('>', i);
      if (close != std::string::npos) {
        out += "<>";
        i = close;
        continue;
      }
    }
    out += reply[i];
  }
  return out;
}

bool summarizeEvents(const std::string& path, int keepFiles, const ProviderTable& providers,
                     std::size_t topN, std::map<std::string, CampaignEventSummary>& out,
                     std::string& error) {
  // campaign -> recipient -> latest event
  std::map<std::string, std::unordered_map<std::string, Latest>> latest;
  for (const std::string& file : allEventFiles(path, keepFiles)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      error = fmt::format("{}: cannot read: {}", file, std::strerror(errno));
      return false;
    }
    std::string line;
    std::string why;
    while (std::getline(in, line)) {
      auto e = line.empty() ? std::nullopt : eventFromJson(line, why);
      if (!e) {
        continue;  // a torn last line after a crash
      }
      Latest& l = latest[e->campaign][e->recipient];
      l.type = e->type;
      l.provider = e->mxHost.empty() || e->destination.rfind("route:", 0) == 0
                       ? std::string(kOtherProvider)
                       : providers.lookup(e->mxHost).name;
      l.reason = e->type == EventType::Deferred ? deferralReason(e->reply) : std::string();
    }
    if (in.bad()) {
      error = fmt::format("{}: read failed: {}", file, std::strerror(errno));
      return false;
    }
  }
  for (const auto& [campaign, recipients] : latest) {
    CampaignEventSummary& s = out[campaign];
    std::map<std::string, std::uint64_t> reasons;
    for (const auto& [recipient, l] : recipients) {
      ++s.providers[l.provider][eventTypeName(l.type)];
      if (l.type == EventType::Deferred) {
        ++reasons[l.reason];
      }
    }
    s.topDeferrals.assign(reasons.begin(), reasons.end());
    std::stable_sort(s.topDeferrals.begin(), s.topDeferrals.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    if (s.topDeferrals.size() > topN) {
      s.topDeferrals.resize(topN);
    }
  }
  return true;
}

}  // namespace salvo::engine
