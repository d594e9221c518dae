#include "metrics/campaign_labels.h"

namespace salvo::metrics {

CampaignLabels::CampaignLabels(std::size_t capacity, std::int64_t idleMs)
    : capacity_(capacity), idleMs_(idleMs) {}

CampaignLabels::Result CampaignLabels::label(std::string_view campaign, std::int64_t nowMs) {
  std::lock_guard lock(mutex_);
  const std::string key(campaign);
  if (key == kOtherLabel) {
    // A campaign really called "other" shares the overflow label.
    return Result{key, std::nullopt};
  }
  if (const auto it = index_.find(key); it != index_.end()) {
    it->second->lastMs = nowMs;
    lru_.splice(lru_.begin(), lru_, it->second);
    return Result{key, std::nullopt};
  }
  Result result{key, std::nullopt};
  if (lru_.size() >= capacity_) {
    if (capacity_ == 0 || nowMs - lru_.back().lastMs < idleMs_) {
      return Result{std::string(kOtherLabel), std::nullopt};
    }
    result.evicted = std::move(lru_.back().campaign);
    index_.erase(*result.evicted);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, nowMs});
  index_.emplace(key, lru_.begin());
  return result;
}

std::size_t CampaignLabels::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

}  // namespace salvo::metrics
