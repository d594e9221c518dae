// EventSummary: what `salvo status` shows beyond the queue's counters, read from the event
// log: per campaign, each recipient's latest outcome counted by provider, and the top
// reasons among recipients whose latest event is a deferral (jobs waiting for a retry).
// Contract: reads the log's files once, oldest first (the submits' files first:
// recipients suppressed at submit); a recipient's later event replaces
// its earlier ones. Providers come from the MX host of each event through the provider
// table (routes and unknown hosts are "other"). Reasons are the reply with addresses
// ("<...>") elided, so one reason groups every recipient it was given to.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/event_log.h"
#include "engine/provider_table.h"

namespace salvo::engine {

struct CampaignEventSummary {
  // provider -> event type name ("delivered"...) -> recipients whose latest event it is
  std::map<std::string, std::map<std::string, std::uint64_t>> providers;
  // reason -> recipients now deferred with it, most frequent first (at most topN)
  std::vector<std::pair<std::string, std::uint64_t>> topDeferrals;
};

// The reply as a deferral reason: "<...>" parts replaced by "<>", capped at 120 octets.
std::string deferralReason(const std::string& reply);

// Summarises every campaign in the log at `path` into `out` (by campaign name). false and
// `error` when a file exists but cannot be read; a missing log is an empty summary.
bool summarizeEvents(const std::string& path, int keepFiles, const ProviderTable& providers,
                     std::size_t topN, std::map<std::string, CampaignEventSummary>& out,
                     std::string& error);

}  // namespace salvo::engine
