// Submitter: `salvo submit` — a validated campaign streamed into the queue as jobs.
// Contract: two passes. The first validates the campaign and every recipient (nothing is
// written unless all is well); the second streams recipients into job batches. The
// campaign stays in state Loading (invisible to delivery) until the final synced write
// marks it Active, and any failure during the second pass removes what was written, so a
// failed submit leaves nothing in the queue. Memory stays flat: recipients are streamed.
#pragma once

#include <cstdint>
#include <string>

#include "campaigns/diagnostics.h"
#include "queue/store.h"

namespace salvo::engine {

struct SubmitResult {
  int exitCode = 0;  // sysexits: 0, 65 data, 66 no input, 74 I/O
  std::string campaignId;
  std::uint32_t campaignNumber = 0;
  std::uint64_t recipients = 0;
  campaigns::Diagnostics diagnostics;  // when exitCode != 0
};

SubmitResult submitCampaign(const std::string& path, queue::JobStore& store, std::int64_t nowMs);

}  // namespace salvo::engine
