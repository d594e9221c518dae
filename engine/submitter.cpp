#include "engine/submitter.h"

#include <vector>

#include "campaigns/campaign.h"

namespace salvo::engine {

namespace {

constexpr std::size_t kBatchSize = 10'000;

int exitCodeFor(const queue::Status& status) {
  return status.code() == queue::Status::Code::AlreadyExists ? campaigns::kExitDataErr
                                                             : campaigns::kExitIoErr;
}

}  // namespace

SubmitResult submitCampaign(const std::string& path, queue::JobStore& store, std::int64_t nowMs) {
  SubmitResult result;
  auto& diags = result.diagnostics;
  std::uint64_t expected = 0;
  auto loaded = campaigns::validateCampaign(path, diags, expected);
  if (!loaded || !diags.empty()) {
    result.exitCode = diags.empty() ? campaigns::kExitDataErr : diags.exitCode();
    return result;
  }
  const auto& campaign = *loaded->campaign;
  result.campaignId = campaign.id();

  std::uint32_t number = 0;
  auto status = store.beginCampaign(campaign.id(), campaign.serialize(), nowMs, number);
  if (!status.isOk()) {
    diags.add(path, 0, 0, status.message(), exitCodeFor(status));
    result.exitCode = exitCodeFor(status);
    return result;
  }
  result.campaignNumber = number;

  auto fail = [&](int code, const std::string& message) {
    diags.add(path, 0, 0, message, code);
    auto undo = store.abortCampaign(number);
    if (!undo.isOk()) {
      diags.add(path, 0, 0, "could not remove the partly written campaign: " + undo.message(),
                campaigns::kExitIoErr);
    }
    result.exitCode = code;
    return result;
  };

  auto reader = loaded->openRecipients(diags);
  if (!reader) {
    return fail(diags.exitCode(), "cannot read the recipients a second time");
  }
  std::vector<queue::JobRecord> batch;
  batch.reserve(kBatchSize);
  std::uint64_t written = 0;
  campaigns::Recipient recipient;
  auto flush = [&]() -> queue::Status {
    if (batch.empty()) {
      return queue::Status::ok();
    }
    auto s = store.addJobs(number, written - batch.size(), batch, nowMs);
    batch.clear();
    return s;
  };
  while (reader->next(recipient, diags)) {
    queue::JobRecord job;
    job.state = queue::JobState::Queued;
    job.createdMs = nowMs;
    job.dueMs = nowMs;
    job.recipient = std::move(recipient.email);
    job.values = std::move(recipient.values);
    batch.push_back(std::move(job));
    ++written;
    if (batch.size() == kBatchSize) {
      status = flush();
      if (!status.isOk()) {
        return fail(campaigns::kExitIoErr, "writing jobs: " + status.message());
      }
    }
  }
  if (!diags.empty()) {
    // The first pass was clean, so the input changed underneath us.
    return fail(diags.exitCode(), "the recipients changed while being submitted");
  }
  if (written != expected) {
    return fail(campaigns::kExitDataErr, "the recipients changed while being submitted (" +
                                             std::to_string(expected) + " validated, " +
                                             std::to_string(written) + " read)");
  }
  status = flush();
  if (status.isOk()) {
    status = store.finishCampaign(number, written);
  }
  if (!status.isOk()) {
    return fail(campaigns::kExitIoErr, "writing jobs: " + status.message());
  }
  result.recipients = written;
  return result;
}

}  // namespace salvo::engine
