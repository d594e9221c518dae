// Submitter: `salvo submit` — a validated campaign streamed into the queue as jobs.
// Contract: one pass. The campaign (YAML, templates) is loaded and checked first; then
// its recipients are checked as they are streamed into job batches. The campaign stays in
// state Loading (invisible to delivery) until the final synced write marks it Active; a
// bad recipient row, or any other failure, removes what was written, so a failed submit
// leaves nothing in the queue, and reports every error as `salvo validate` does (a second,
// validating pass on that path only). Memory stays flat: recipients are streamed.
// Resubmitting an id is idempotent: same content -> success, nothing added; different
// content -> refused (65).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "campaigns/diagnostics.h"
#include "queue/control_spool.h"
#include "queue/store.h"

namespace salvo::engine {

struct SubmitResult {
  int exitCode = 0;  // sysexits: 0, 65 data, 66 no input, 74 I/O
  std::string campaignId;
  std::uint32_t campaignNumber = 0;
  std::uint64_t recipients = 0;
  std::uint64_t suppressed = 0;        // recipients skipped: on the suppression list
  bool alreadySubmitted = false;       // same id and content: nothing was added
  campaigns::Diagnostics diagnostics;  // when exitCode != 0
};

// Recipients skipped because they are suppressed become `suppressed` events, published
// beside the event log at `eventLogPath` (engine/event_log.h: SubmitEvents) with the jobs;
// "" = only counted.
SubmitResult submitCampaign(const std::string& path, queue::JobStore& store, std::int64_t nowMs,
                            const std::string& eventLogPath = "");

// --- commands that change the queue, with or without a running daemon ---
// `salvo submit|pause|resume|cancel` go through runCommand(): it opens the store and
// applies the command itself when no daemon runs; when `salvo run` holds the store
// (RocksDB admits one writer per data dir) it stages the request in the daemon's control
// spool (queue/control_spool.h) and waits for the daemon's reply. Either way the output
// and exit code are the same. Ops: "submit" (args: absolute campaign path), "pause",
// "resume", "cancel", "purge" (args: campaign name), "suppress-add" (address [reason]),
// "suppress-remove" (address), "suppress-list", "suppress-import" (absolute file path:
// "address[,reason]" lines). Suppressed recipients are skipped at submit (counted as
// suppressed, and `suppressed` events in the data directory's event log: `dataDir`) and
// again when due (the dispatcher).
queue::ControlReply applyCommand(const queue::ControlRequest& request, queue::JobStore& store,
                                 std::int64_t nowMs, const std::string& dataDir);
queue::ControlReply runCommand(const std::string& dataDir, queue::ControlRequest request,
                               const std::function<std::int64_t()>& clock);

// The daemon's side: a thread that claims spooled requests every `pollMs` and applies them
// to the store (a submit may take a while; delivery goes on meanwhile: the store is
// thread-safe and a Loading campaign is invisible to the scan).
class ControlServer {
 public:
  ControlServer(queue::JobStore& store, const std::string& dataDir,
                std::function<std::int64_t()> clock, std::uint32_t pollMs = 200);
  ~ControlServer();  // stop()
  void stop();

 private:
  void loop();
  queue::JobStore& store_;
  std::string dataDir_;
  queue::ControlSpool spool_;
  std::function<std::int64_t()> clock_;
  std::uint32_t pollMs_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace salvo::engine
