#include "engine/submitter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <system_error>
#include <vector>

#include "campaigns/campaign.h"
#include "engine/event_log.h"

namespace salvo::engine {

namespace {

constexpr std::size_t kBatchSize = 10'000;

int exitCodeFor(const queue::Status& status) {
  return status.code() == queue::Status::Code::AlreadyExists ? campaigns::kExitDataErr
                                                             : campaigns::kExitIoErr;
}

}  // namespace

SubmitResult submitCampaign(const std::string& path, queue::JobStore& store, std::int64_t nowMs,
                            const std::string& eventLogPath) {
  SubmitResult result;
  auto& diags = result.diagnostics;
  // The full report, as `salvo validate` gives it, for a campaign found wrong anywhere:
  // its YAML, its templates or any recipient row.
  auto reject = [&] {
    std::uint64_t count = 0;
    campaigns::validateCampaign(path, diags, count);
    if (diags.empty()) {
      // Wrong while being streamed, right when read again: the file changed meanwhile.
      diags.add(path, 0, 0, "the recipients changed while being submitted; submit again");
    }
    result.exitCode = diags.exitCode();
    return result;
  };
  campaigns::Diagnostics loadDiags;
  auto loaded = campaigns::loadCampaign(path, loadDiags);
  if (!loaded || !loadDiags.empty()) {
    return reject();
  }
  const auto& campaign = *loaded->campaign;
  result.campaignId = campaign.id();

  // Resubmitting is idempotent: the same id with the same content (compiled campaign and
  // recipient count) is already queued, so succeed without adding jobs; a submit that was
  // interrupted left nothing behind (see the contract), so it simply runs again. The
  // same id with different content is refused: a new campaign needs a new id. (This rare
  // path counts the recipients in a validating pass of its own.)
  std::string spec = campaign.serialize();
  if (auto existing = store.campaignByName(campaign.id());
      existing && existing->state != queue::CampaignState::Loading) {
    std::uint64_t expected = 0;
    if (!campaigns::validateCampaign(path, diags, expected) || !diags.empty()) {
      result.exitCode = diags.empty() ? campaigns::kExitDataErr : diags.exitCode();
      return result;
    }
    if (existing->spec == spec && existing->jobs == expected) {
      result.campaignNumber = existing->number;
      result.recipients = existing->jobs;  // recipients, suppressed ones included
      result.alreadySubmitted = true;
      return result;
    }
    diags.add(path, 0, 0,
              "campaign '" + campaign.id() +
                  "' already exists with different content; give the new campaign a new id",
              campaigns::kExitDataErr);
    result.exitCode = campaigns::kExitDataErr;
    return result;
  }
  std::uint32_t number = 0;
  auto status = store.beginCampaign(campaign.id(), spec, nowMs, number);
  if (!status.isOk()) {
    diags.add(path, 0, 0, status.message(), exitCodeFor(status));
    result.exitCode = exitCodeFor(status);
    return result;
  }
  result.campaignNumber = number;

  // Published only together with the jobs: a failed submit leaves no events either.
  SubmitEvents events(eventLogPath, campaign.id());
  // While one batch is written (on its own thread), the next is read and checked.
  std::future<queue::Status> pending;
  auto settle = [&] { return pending.valid() ? pending.get() : queue::Status::ok(); };
  auto undoWrites = [&] {
    settle();  // no write may land after the abort
    events.discard();
    auto undo = store.abortCampaign(number);
    if (!undo.isOk()) {
      // Still Loading, so never delivered: the next writer to open the store purges it.
      diags.add(path, 0, 0,
                "could not remove the partly written campaign now (" + undo.message() +
                    "); it is removed the next time the queue is opened for writing",
                campaigns::kExitIoErr);
    }
  };
  auto fail = [&](int code, const std::string& message) {
    diags.add(path, 0, 0, message, code);
    undoWrites();
    result.exitCode = code;
    return result;
  };

  // One pass: recipients are checked as they are streamed into jobs. The first bad row
  // stops the writing; what was written is removed and the full report is produced.
  campaigns::Diagnostics rowDiags;
  auto reader = loaded->openRecipients(rowDiags);
  if (!reader) {
    undoWrites();
    result.campaignNumber = 0;
    return reject();
  }
  std::vector<queue::JobRecord> batch;
  batch.reserve(kBatchSize);
  std::uint64_t written = 0;  // jobs
  std::uint64_t read = 0;     // recipients, suppressed ones included
  std::uint64_t suppressed = 0;
  campaigns::Recipient recipient;
  std::string error;
  // A scheduled campaign's jobs become due at start_at; the retry schedule's maximum age
  // counts from then too.
  const std::int64_t dueMs = std::max(nowMs, campaign.startAtMs());
  auto flush = [&]() -> queue::Status {
    auto s = settle();
    if (!s.isOk() || batch.empty()) {
      return s;
    }
    const std::uint64_t first = written - batch.size();
    auto write = [&store, number, first, dueMs](const std::vector<queue::JobRecord>& jobs) {
      return store.addJobs(number, first, jobs, dueMs);
    };
    try {
      pending = std::async(std::launch::async,
                           [write, jobs = std::vector(batch)] { return write(jobs); });
    } catch (const std::system_error&) {
      s = write(batch);  // no thread to spare: write it here
    }
    batch.clear();
    return s;
  };
  while (reader->next(recipient, rowDiags)) {
    if (!rowDiags.empty()) {
      break;
    }
    ++read;
    if (auto entry = store.suppressed(recipient.email)) {
      ++suppressed;
      DeliveryEvent e;
      e.type = EventType::Suppressed;
      e.timeMs = nowMs;
      e.campaign = campaign.id();
      e.recipient = std::move(recipient.email);
      e.reply = "suppressed: " + entry->reason + " (skipped at submit)";
      if (!events.append(std::move(e), error)) {
        return fail(campaigns::kExitIoErr, "suppressed recipients: " + error);
      }
      continue;
    }
    queue::JobRecord job;
    job.state = queue::JobState::Queued;
    job.createdMs = dueMs;
    job.dueMs = dueMs;
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
  if (!rowDiags.empty() || read == 0) {
    reject();
    undoWrites();
    result.campaignNumber = 0;
    return result;
  }
  status = flush();
  if (status.isOk()) {
    status = settle();
  }
  if (status.isOk() && !events.commit(error)) {
    return fail(campaigns::kExitIoErr, "suppressed recipients: " + error);
  }
  if (status.isOk()) {
    status = store.finishCampaign(number, read, suppressed);
  }
  if (!status.isOk()) {
    return fail(campaigns::kExitIoErr, "writing jobs: " + status.message());
  }
  result.recipients = written;
  result.suppressed = suppressed;
  return result;
}

namespace {

constexpr std::int64_t kPickupWaitMs = 5'000;  // a daemon polls every 200 ms

int exitCodeForControl(const queue::Status& status) {
  switch (status.code()) {
    case queue::Status::Code::NotFound:
      return campaigns::kExitNoInput;
    case queue::Status::Code::InvalidArgument:
    case queue::Status::Code::AlreadyExists:
      return campaigns::kExitDataErr;
    case queue::Status::Code::Busy:
      return campaigns::kExitTempFail;
    default:
      return campaigns::kExitIoErr;
  }
}

// The store could not be opened: a data directory that is missing (66), held by a daemon
// (75), or anything else, such as a file in its place, a read-only or full file system or
// a corrupt store (74). As `salvo status` and `salvo run` report the same failures.
int exitCodeForOpen(const queue::Status& status) {
  switch (status.code()) {
    case queue::Status::Code::NotFound:
      return campaigns::kExitNoInput;
    case queue::Status::Code::Busy:
      return campaigns::kExitTempFail;
    default:
      return campaigns::kExitIoErr;
  }
}

queue::ControlReply failure(int code, const std::string& message) {
  return queue::ControlReply{code, "", "salvo: " + message + "\n"};
}

void sleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Reads "address[,reason]" lines ('#' comments and blank lines skipped) into the list,
// 10,000 per synced batch.
queue::ControlReply importSuppressions(const std::string& path, queue::JobStore& store,
                                       std::int64_t nowMs) {
  std::ifstream in(path);
  if (!in) {
    return failure(campaigns::kExitNoInput,
                   fmt::format("suppress import: cannot read {}: {}", path, std::strerror(errno)));
  }
  std::vector<queue::Suppression> chunk;
  std::uint64_t total = 0;
  std::string line;
  for (std::size_t lineNo = 1; std::getline(in, line); ++lineNo) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') {
      continue;
    }
    auto comma = line.find(',');
    queue::Suppression e;
    e.address = line.substr(first, comma == std::string::npos ? std::string::npos : comma - first);
    while (!e.address.empty() && (e.address.back() == ' ' || e.address.back() == '\t')) {
      e.address.pop_back();
    }
    e.reason = comma == std::string::npos ? "imported" : line.substr(comma + 1);
    e.addedMs = nowMs;
    if (e.address.find('@') == std::string::npos) {
      return failure(campaigns::kExitDataErr,
                     fmt::format("{}:{}: '{}' is not an email address ({} imported before it)",
                                 path, lineNo, e.address, total));
    }
    chunk.push_back(std::move(e));
    if (chunk.size() == 10'000) {
      if (auto st = store.addSuppressions(chunk); !st.isOk()) {
        return failure(exitCodeForControl(st), "suppress import: " + st.message());
      }
      total += chunk.size();
      chunk.clear();
    }
  }
  if (auto st = store.addSuppressions(chunk); !st.isOk()) {
    return failure(exitCodeForControl(st), "suppress import: " + st.message());
  }
  total += chunk.size();
  return queue::ControlReply{0, fmt::format("{} address(es) suppressed from {}\n", total, path),
                             ""};
}

queue::ControlReply applySuppress(const queue::ControlRequest& request, queue::JobStore& store,
                                  std::int64_t nowMs) {
  const auto& a = request.args;
  if (request.op == "suppress-list" && a.empty()) {
    queue::ControlReply reply;
    for (const auto& e : store.suppressions()) {
      reply.out += fmt::format("{}\t{}\t{}\n", e.address, e.addedMs, e.reason);
    }
    return reply;
  }
  if (request.op == "suppress-add" && (a.size() == 1 || a.size() == 2)) {
    queue::Suppression e{a[0], a.size() == 2 ? a[1] : "manual", nowMs};
    if (auto st = store.addSuppressions({e}); !st.isOk()) {
      return failure(exitCodeForControl(st), "suppress add: " + st.message());
    }
    return queue::ControlReply{0, fmt::format("{} suppressed\n", a[0]), ""};
  }
  if (request.op == "suppress-remove" && a.size() == 1) {
    if (auto st = store.removeSuppression(a[0]); !st.isOk()) {
      return failure(exitCodeForControl(st), "suppress remove: " + st.message());
    }
    return queue::ControlReply{0, fmt::format("{} no longer suppressed\n", a[0]), ""};
  }
  if (request.op == "suppress-import" && a.size() == 1) {
    return importSuppressions(a[0], store, nowMs);
  }
  return failure(campaigns::kExitUsage,
                 fmt::format("bad control request '{}' with {} argument(s)", request.op, a.size()));
}

}  // namespace

queue::ControlReply applyCommand(const queue::ControlRequest& request, queue::JobStore& store,
                                 std::int64_t nowMs, const std::string& dataDir) {
  if (request.op.rfind("suppress-", 0) == 0) {
    return applySuppress(request, store, nowMs);
  }
  if (request.args.size() != 1) {
    return failure(campaigns::kExitUsage,
                   fmt::format("'{}' takes one argument, got {}", request.op, request.args.size()));
  }
  const std::string& arg = request.args[0];
  queue::ControlReply reply;
  if (request.op == "submit") {
    auto result = submitCampaign(arg, store, nowMs, eventLogPathIn(dataDir));
    if (result.exitCode != 0) {
      for (const auto& d : result.diagnostics.items()) {
        reply.err += d.str() + "\n";
      }
      if (result.diagnostics.dropped() > 0) {
        reply.err += fmt::format("... and {} more error(s)\n", result.diagnostics.dropped());
      }
      reply.err += "salvo: submit failed; nothing was queued\n";
      reply.exitCode = result.exitCode;
      return reply;
    }
    if (result.alreadySubmitted) {
      reply.out = fmt::format(
          "campaign '{}' (#{}) was already submitted with these {} recipient(s); nothing "
          "queued again\n",
          result.campaignId, result.campaignNumber, result.recipients);
      return reply;
    }
    reply.out = fmt::format("submitted campaign '{}' (#{}): {} recipient(s) queued\n",
                            result.campaignId, result.campaignNumber, result.recipients);
    if (result.suppressed > 0) {
      reply.out += fmt::format("{} suppressed recipient(s) skipped\n", result.suppressed);
    }
    return reply;
  }
  queue::Status status;
  if (request.op == "pause") {
    status = store.pauseCampaign(arg);
    reply.out = fmt::format("campaign '{}' paused\n", arg);
  } else if (request.op == "resume") {
    status = store.resumeCampaign(arg);
    reply.out = fmt::format("campaign '{}' resumed\n", arg);
  } else if (request.op == "cancel") {
    std::uint64_t cancelled = 0;
    status = store.cancelCampaign(arg, cancelled);
    reply.out =
        fmt::format("campaign '{}' cancelled: {} waiting job(s) cancelled\n", arg, cancelled);
  } else if (request.op == "purge") {
    status = store.purgeCampaign(arg);
    reply.out = fmt::format("campaign '{}' purged: job data removed, counters kept\n", arg);
  } else {
    return failure(campaigns::kExitUsage, fmt::format("unknown command '{}'", request.op));
  }
  if (!status.isOk()) {
    return failure(exitCodeForControl(status), fmt::format("{}: {}", request.op, status.message()));
  }
  return reply;
}

queue::ControlReply runCommand(const std::string& dataDir, queue::ControlRequest request,
                               const std::function<std::int64_t()>& clock) {
  queue::OpenOptions options;
  options.createIfMissing =
      request.op == "submit" || request.op == "suppress-add" || request.op == "suppress-import";
  auto direct = [&](queue::Status& status) -> std::optional<queue::ControlReply> {
    auto store = queue::JobStore::open(dataDir, options, status);
    if (!store) {
      return std::nullopt;
    }
    return applyCommand(request, *store, clock(), dataDir);
  };
  queue::Status status;
  if (auto reply = direct(status)) {
    return *reply;
  }
  if (status.code() != queue::Status::Code::Busy) {
    return failure(exitCodeForOpen(status), "queue: " + status.message());
  }
  // A daemon holds the store: hand the request to it.
  queue::ControlSpool spool(dataDir);
  if (auto st = spool.stage(request); !st.isOk()) {
    return failure(exitCodeForControl(st), "control: " + st.message());
  }
  for (std::int64_t waited = 0;; waited += 20) {
    if (auto reply = spool.takeReply(request.id)) {
      return *reply;
    }
    if (spool.claimed(request.id)) {
      // Applying: wait for the answer as long as the daemon lives.
      if (waited % 1000 == 0 && !queue::ControlSpool::storeLocked(dataDir)) {
        if (auto reply = spool.takeReply(request.id)) {
          return *reply;
        }
        return failure(campaigns::kExitTempFail,
                       fmt::format("{}: the daemon stopped while applying '{}'; check `salvo "
                                   "status` and run the command again",
                                   dataDir, request.op));
      }
    } else if (waited >= kPickupWaitMs && spool.withdraw(request.id)) {
      // Unclaimed: the daemon may have just exited. Try once more on our own.
      if (auto reply = direct(status)) {
        return *reply;
      }
      return failure(exitCodeForOpen(status),
                     fmt::format("queue: {} (and it did not pick up the request within {} s)",
                                 status.message(), kPickupWaitMs / 1000));
    }
    sleepMs(20);
  }
}

ControlServer::ControlServer(queue::JobStore& store, const std::string& dataDir,
                             std::function<std::int64_t()> clock, std::uint32_t pollMs)
    : store_(store), dataDir_(dataDir), spool_(dataDir), clock_(std::move(clock)), pollMs_(pollMs) {
  spool_.removeLeftovers();
  thread_ = std::thread([this] { loop(); });
}

ControlServer::~ControlServer() {
  stop();
}

void ControlServer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void ControlServer::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    for (const auto& request : spool_.claim()) {
      auto reply = applyCommand(request, store_, clock_(), dataDir_);
      auto st = spool_.answer(request, reply);
      if (!st.isOk()) {
        std::fprintf(stderr, "salvo: control: %s\n", st.message().c_str());
      }
    }
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(pollMs_), [this] { return stopping_; });
  }
}

}  // namespace salvo::engine
