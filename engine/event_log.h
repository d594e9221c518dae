// EventLog: the per-recipient event log, one JSON object per line (JSON Lines), rotated by
// size. Contract: append() is thread-safe and cheap (it queues); one writer thread of the
// log's own serializes and writes in batches, so no event loop ever waits on the disk.
// flush() waits for what was appended before it. Events are written with write(2), not
// fsync'd: the queue (RocksDB) is the record of truth, this log is for people and tools.
// Rotation keeps `keepFiles` older files as PATH.1 (newest) .. PATH.N. The reader exports
// one campaign's events, oldest first, as CSV or JSON Lines (`salvo events CAMPAIGN`).
// One writer per file: the daemon alone writes PATH. A submit (run by the CLI, or by the
// daemon's control thread when a daemon holds the queue) writes the events it produces --
// recipients skipped because they are suppressed -- to a file of its own beside the log,
// DIR/submitted/CAMPAIGN.jsonl (SubmitEvents), published by a rename once complete. Readers
// take the submits' files first: a campaign's submit happens before any of its deliveries.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace salvo::engine {

enum class EventType { Delivered, Deferred, Bounced, Expired, Suppressed };
const char* eventTypeName(EventType type);  // "delivered", ...
std::optional<EventType> parseEventType(std::string_view name);

struct DeliveryEvent {
  EventType type = EventType::Delivered;
  std::int64_t timeMs = 0;  // when it happened, ms since the Unix epoch (UTC)
  std::string campaign;
  std::string recipient;
  std::string destination;  // the destination (MX site or route) label
  std::string mxHost;       // the host that answered, "" when none did
  bool tls = false;
  int replyCode = 0;     // 0 when there was no reply (connection failure, expiry...)
  std::string enhanced;  // "5.1.1", "" when none
  std::string reply;     // the reply's summary or what went wrong
  std::string category;  // bounce category ("bad-mailbox"...), "" when none
  bool hard = false;     // a hard bounce (the address was suppressed)
  std::uint32_t attempt = 0;
  std::int64_t queuedMs = 0;  // when the job was queued, ms since the epoch

  bool operator==(const DeliveryEvent&) const = default;
};

// One line of the log, without the newline. Invalid UTF-8 in any text (a hostile reply) is
// replaced with U+FFFD rather than making the line unparseable.
std::string eventToJson(const DeliveryEvent& event);
// The reverse; nullopt and `error` for a line that is not a complete event.
std::optional<DeliveryEvent> eventFromJson(std::string_view line, std::string& error);
// "2026-11-28T14:07:46.123Z"
std::string formatEventTime(std::int64_t ms);

struct EventLogOptions {
  std::string path;                          // the current file, e.g. DATA/events.jsonl
  std::uint64_t maxFileBytes = 64ULL << 20;  // rotate before a write would exceed this
  int keepFiles = 5;                         // rotated files kept besides the current one
};

class EventLog {
 public:
  // Opens (appends to) options.path and starts the writer thread. nullptr and `error`
  // naming the file and the reason when it cannot be opened.
  static std::unique_ptr<EventLog> open(EventLogOptions options, std::string& error);
  // Writes everything appended, then stops the writer.
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  void append(DeliveryEvent event);
  void append(std::vector<DeliveryEvent> events);
  // Waits until every event appended before the call has been written. false when a write
  // failed since the log was opened (error() says which and why; later events are still
  // attempted).
  bool flush();
  std::string error() const;
  std::uint64_t eventsWritten() const;

 private:
  EventLog(EventLogOptions options, int fd, std::uint64_t size);
  void run();
  bool writeBatch(const std::string& bytes);
  bool rotate();

  const EventLogOptions options_;
  int fd_;
  std::uint64_t size_;  // of the current file; writer thread only

  mutable std::mutex mutex_;
  std::condition_variable wake_;     // the writer: work or stop
  std::condition_variable written_;  // flush(): a batch is done
  std::vector<DeliveryEvent> pending_;
  std::uint64_t appended_ = 0;  // events appended so far
  std::uint64_t done_ = 0;      // events written (or failed) so far
  std::uint64_t writtenOk_ = 0;
  bool stopping_ = false;
  std::string error_;
  std::thread thread_;
};

// The files of a log, oldest first (PATH.N .. PATH.1, PATH), those that exist.
std::vector<std::string> eventLogFiles(const std::string& path, int keepFiles);

// The event log of a data directory: DATA_DIR/events/events.jsonl.
std::string eventLogPathIn(const std::string& dataDir);
// Where the submit of `campaign` (a valid campaign id) publishes its events, beside the
// log at `path`: DIR/submitted/CAMPAIGN.jsonl.
std::string submitEventsPath(const std::string& path, std::string_view campaign);
// Every file holding events of the log at `path`, oldest first: the submits' files (only
// `campaign`'s when one is given, else all, by name), then eventLogFiles().
std::vector<std::string> allEventFiles(const std::string& path, int keepFiles,
                                       std::string_view campaign = {});

// The events of one submit, for one campaign. They go to submitEventsPath() + ".tmp"
// through an EventLog of their own (never rotated: one submit's file is bounded by its
// recipients), opened at the first event. commit() publishes the file by renaming it over
// any earlier one of the campaign (a submit interrupted and run again) -- or, with no
// events, removes that earlier one. discard() (and the destructor, before commit) removes
// what was written. An empty `logPath` disables it: every call succeeds, nothing is written.
class SubmitEvents {
 public:
  SubmitEvents(std::string logPath, std::string campaign);
  ~SubmitEvents();
  SubmitEvents(const SubmitEvents&) = delete;
  SubmitEvents& operator=(const SubmitEvents&) = delete;

  // false and `error` (naming the file) when the file cannot be created.
  bool append(DeliveryEvent event, std::string& error);
  // Waits for the writes and publishes. false and `error` when a write or the rename failed.
  bool commit(std::string& error);
  // Removes the temporary file and, after commit(), the published one.
  void discard();

 private:
  std::string published_;  // "" when disabled
  std::string temporary_;
  std::unique_ptr<EventLog> log_;
  bool committed_ = false;
};

enum class ExportFormat { Csv, JsonLines };

struct ExportStats {
  std::uint64_t events = 0;        // exported
  std::uint64_t skippedLines = 0;  // unparseable lines (e.g. a torn last line after a crash)
};

// Writes `campaign`'s events from every file of the log at `path`, oldest first. CSV has a
// header row and RFC 4180 quoting. false and `error` when a file exists but cannot be read.
bool exportCampaignEvents(const std::string& path, int keepFiles, std::string_view campaign,
                          ExportFormat format, std::ostream& out, ExportStats& stats,
                          std::string& error);

}  // namespace salvo::engine
