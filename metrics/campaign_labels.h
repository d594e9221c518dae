// CampaignLabels: keeps the `campaign` metric label bounded. Contract: thread-safe; the N
// campaigns counted most recently each get their own label value, any other campaign is
// counted as "other". A new campaign takes a free slot, or the slot of the least recently
// counted campaign if that one has been idle for at least `idleMs` (a finished campaign);
// when every tracked campaign is still active, the newcomer is "other" rather than
// churning series. The caller learns which campaign lost its slot, to remove its series.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace salvo::metrics {

inline constexpr std::string_view kOtherLabel = "other";

class CampaignLabels {
 public:
  CampaignLabels(std::size_t capacity, std::int64_t idleMs);

  struct Result {
    std::string label;                   // the campaign, or "other"
    std::optional<std::string> evicted;  // a campaign that lost its slot to this one
  };
  Result label(std::string_view campaign, std::int64_t nowMs);

  std::size_t size() const;

 private:
  struct Entry {
    std::string campaign;
    std::int64_t lastMs;
  };
  const std::size_t capacity_;
  const std::int64_t idleMs_;
  mutable std::mutex mutex_;
  std::list<Entry> lru_;  // most recently counted first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace salvo::metrics
