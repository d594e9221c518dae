#include "engine/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/log.h"

namespace salvo::engine {

namespace {

using Json = nlohmann::json;

constexpr std::array<const char*, 5> kTypeNames = {"delivered", "deferred", "bounced", "expired",
                                                   "suppressed"};

// Parses formatEventTime()'s output back to ms.
std::optional<std::int64_t> parseEventTime(const std::string& text) {
  std::tm tm{};
  int ms = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
      z != 'Z' || text.size() != 24) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

std::string csvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string(text);
  }
  std::string out = "\"";
  for (char c : text) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  out += '"';
  return out;
}

void writeCsvRow(std::ostream& out, const DeliveryEvent& e) {
  out << formatEventTime(e.timeMs) << ',' << eventTypeName(e.type) << ',' << csvField(e.campaign)
      << ',' << csvField(e.recipient) << ',' << csvField(e.destination) << ',' << csvField(e.mxHost)
      << ',' << (e.tls ? "true" : "false") << ',';
  if (e.replyCode != 0) {
    out << e.replyCode;
  }
  out << ',' << csvField(e.enhanced) << ',' << csvField(e.reply) << ',' << csvField(e.category)
      << ',' << (e.hard ? "true" : "false") << ',' << e.attempt << ','
      << (e.queuedMs != 0 ? formatEventTime(e.queuedMs) : "") << "\r\n";
}

constexpr std::string_view kSubmittedDir = "submitted";
constexpr std::string_view kSubmittedSuffix = ".jsonl";

constexpr const char* kCsvHeader =
    "time,type,campaign,recipient,destination,mx_host,tls,reply_code,enhanced_code,reply,"
    "category,hard,attempt,queued_at\r\n";

}  // namespace

const char* eventTypeName(EventType type) {
  return kTypeNames[static_cast<std::size_t>(type)];
}

std::optional<EventType> parseEventType(std::string_view name) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
    if (name == kTypeNames[i]) {
      return static_cast<EventType>(i);
    }
  }
  return std::nullopt;
}

std::string formatEventTime(std::int64_t ms) {
  std::int64_t secs = ms / 1000;
  std::int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    secs -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}

std::string eventToJson(const DeliveryEvent& e) {
  Json j = Json::object();
  j["time"] = formatEventTime(e.timeMs);
  j["type"] = eventTypeName(e.type);
  j["campaign"] = e.campaign;
  j["recipient"] = e.recipient;
  j["destination"] = e.destination;
  j["mx"] = e.mxHost;
  j["tls"] = e.tls;
  j["code"] = e.replyCode;
  j["enhanced"] = e.enhanced;
  j["reply"] = e.reply;
  j["category"] = e.category;
  j["hard"] = e.hard;
  j["attempt"] = e.attempt;
  j["queued_at"] = e.queuedMs != 0 ? formatEventTime(e.queuedMs) : "";
  // Replies are untrusted bytes: replace invalid UTF-8 instead of throwing.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<DeliveryEvent> eventFromJson(std::string_view line, std::string& error) {
  const Json j = Json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  DeliveryEvent e;
  const auto text = [&](const char* key, std::string& out) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      error = fmt::format("'{}' is missing or not a string", key);
      return false;
    }
    out = it->get<std::string>();
    return true;
  };
  const auto boolean = [&](const char* key, bool& out) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_boolean()) {
      error = fmt::format("'{}' is missing or not true/false", key);
      return false;
    }
    out = it->get<bool>();
    return true;
  };
  const auto number = [&](const char* key, std::int64_t& out) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) {
      error = fmt::format("'{}' is missing or not an integer", key);
      return false;
    }
    out = it->get<std::int64_t>();
    return true;
  };
  std::string time;
  std::string type;
  std::string queued;
  std::int64_t code = 0;
  std::int64_t attempt = 0;
  if (!text("time", time) || !text("type", type) || !text("campaign", e.campaign) ||
      !text("recipient", e.recipient) || !text("destination", e.destination) ||
      !text("mx", e.mxHost) || !boolean("tls", e.tls) || !number("code", code) ||
      !text("enhanced", e.enhanced) || !text("reply", e.reply) || !text("category", e.category) ||
      !boolean("hard", e.hard) || !number("attempt", attempt) || !text("queued_at", queued)) {
    return std::nullopt;
  }
  const auto t = parseEventTime(time);
  const auto kind = parseEventType(type);
  const auto q = queued.empty() ? std::optional<std::int64_t>(0) : parseEventTime(queued);
  if (!t || !q) {
    error = "a time is not like 2026-11-28T14:07:46.123Z";
    return std::nullopt;
  }
  if (!kind) {
    error = fmt::format("unknown event type '{}'", type);
    return std::nullopt;
  }
  if (code < 0 || code > 599 || attempt < 0 || attempt > UINT32_MAX) {
    error = "'code' or 'attempt' out of range";
    return std::nullopt;
  }
  e.type = *kind;
  e.timeMs = *t;
  e.queuedMs = *q;
  e.replyCode = static_cast<int>(code);
  e.attempt = static_cast<std::uint32_t>(attempt);
  return e;
}

std::unique_ptr<EventLog> EventLog::open(EventLogOptions options, std::string& error) {
  const int fd = ::open(options.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("event log {}: cannot open: {}", options.path, std::strerror(errno));
    return nullptr;
  }
  struct stat st {};
  const std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  options.keepFiles = std::max(0, options.keepFiles);
  options.maxFileBytes = std::max<std::uint64_t>(1, options.maxFileBytes);
  return std::unique_ptr<EventLog>(new EventLog(std::move(options), fd, size));
}

EventLog::EventLog(EventLogOptions options, int fd, std::uint64_t size)
    : options_(std::move(options)), fd_(fd), size_(size), thread_([this] { run(); }) {}

EventLog::~EventLog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void EventLog::append(DeliveryEvent event) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(event));
    ++appended_;
  }
  wake_.notify_one();
}

void EventLog::append(std::vector<DeliveryEvent> events) {
  if (events.empty()) {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    appended_ += events.size();
    if (pending_.empty()) {
      pending_ = std::move(events);
    } else {
      pending_.insert(pending_.end(), std::make_move_iterator(events.begin()),
                      std::make_move_iterator(events.end()));
    }
  }
  wake_.notify_one();
}

bool EventLog::flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = appended_;
  written_.wait(lock, [&] { return done_ >= target; });
  return error_.empty();
}

std::string EventLog::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

std::uint64_t EventLog::eventsWritten() const {
  std::lock_guard lock(mutex_);
  return writtenOk_;
}

void EventLog::run() {
  std::vector<DeliveryEvent> batch;
  std::string bytes;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) {
        return;  // stopping, and everything is written
      }
      batch.swap(pending_);
    }
    bytes.clear();
    for (const DeliveryEvent& e : batch) {
      bytes += eventToJson(e);
      bytes += '\n';
    }
    const bool ok = writeBatch(bytes);
    {
      std::lock_guard lock(mutex_);
      done_ += batch.size();
      if (ok) {
        writtenOk_ += batch.size();
      }
    }
    written_.notify_all();
    batch.clear();
  }
}

bool EventLog::writeBatch(const std::string& bytes) {
  if (size_ > 0 && size_ + bytes.size() > options_.maxFileBytes && !rotate()) {
    return false;
  }
  if (fd_ < 0) {
    return false;  // a failed rotation left no file; rotate() reported why
  }
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const std::string why = fmt::format("event log {}: write failed: {}", options_.path,
                                          n < 0 ? std::strerror(errno) : "wrote nothing");
      log(LogLevel::Error, "{}", why);
      std::lock_guard lock(mutex_);
      error_ = why;
      return false;
    }
    off += static_cast<std::size_t>(n);
    size_ += static_cast<std::uint64_t>(n);
  }
  return true;
}

bool EventLog::rotate() {
  ::close(fd_);
  fd_ = -1;
  const std::string& p = options_.path;
  const int keep = options_.keepFiles;
  // PATH.keep falls off the end; PATH.i becomes PATH.i+1; PATH becomes PATH.1.
  if (keep > 0) {
    ::unlink(fmt::format("{}.{}", p, keep).c_str());
    for (int i = keep - 1; i >= 1; --i) {
      ::rename(fmt::format("{}.{}", p, i).c_str(), fmt::format("{}.{}", p, i + 1).c_str());
    }
    ::rename(p.c_str(), fmt::format("{}.1", p).c_str());
  } else {
    ::unlink(p.c_str());
  }
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
  size_ = 0;
  if (fd_ < 0) {
    const std::string why =
        fmt::format("event log {}: cannot reopen after rotation: {}", p, std::strerror(errno));
    log(LogLevel::Error, "{}", why);
    std::lock_guard lock(mutex_);
    error_ = why;
    return false;
  }
  return true;
}

std::vector<std::string> eventLogFiles(const std::string& path, int keepFiles) {
  std::vector<std::string> out;
  for (int i = std::max(0, keepFiles); i >= 0; --i) {
    const std::string name = i == 0 ? path : fmt::format("{}.{}", path, i);
    struct stat st {};
    if (::stat(name.c_str(), &st) == 0) {
      out.push_back(name);
    }
  }
  return out;
}

std::string eventLogPathIn(const std::string& dataDir) {
  return (std::filesystem::path(dataDir) / "events" / "events.jsonl").string();
}

std::string submitEventsPath(const std::string& path, std::string_view campaign) {
  return (std::filesystem::path(path).parent_path() / kSubmittedDir /
          fmt::format("{}{}", campaign, kSubmittedSuffix))
      .string();
}

std::vector<std::string> allEventFiles(const std::string& path, int keepFiles,
                                       std::string_view campaign) {
  std::vector<std::string> out;
  if (!campaign.empty()) {
    std::string one = submitEventsPath(path, campaign);
    struct stat st {};
    if (::stat(one.c_str(), &st) == 0) {
      out.push_back(std::move(one));
    }
  } else {
    std::error_code ec;
    const auto dir = std::filesystem::path(path).parent_path() / kSubmittedDir;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > kSubmittedSuffix.size() &&
          name.compare(name.size() - kSubmittedSuffix.size(), std::string::npos,
                       kSubmittedSuffix) == 0) {
        out.push_back(entry.path().string());
      }
    }
    std::sort(out.begin(), out.end());
  }
  for (std::string& f : eventLogFiles(path, keepFiles)) {
    out.push_back(std::move(f));
  }
  return out;
}

SubmitEvents::SubmitEvents(std::string logPath, std::string campaign) {
  if (!logPath.empty()) {
    published_ = submitEventsPath(logPath, campaign);
    temporary_ = published_ + ".tmp";
  }
}

SubmitEvents::~SubmitEvents() {
  if (!committed_) {
    discard();
  }
}

bool SubmitEvents::append(DeliveryEvent event, std::string& error) {
  if (published_.empty()) {
    return true;
  }
  if (!log_) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(temporary_).parent_path(), ec);
    ::unlink(temporary_.c_str());  // left by a submit that was interrupted
    EventLogOptions options;
    options.path = temporary_;
    options.maxFileBytes = std::numeric_limits<std::uint64_t>::max();
    options.keepFiles = 0;
    log_ = EventLog::open(std::move(options), error);
    if (!log_) {
      return false;
    }
  }
  log_->append(std::move(event));
  return true;
}

bool SubmitEvents::commit(std::string& error) {
  if (published_.empty()) {
    return true;
  }
  if (!log_) {
    // Nothing suppressed this time: no earlier run's file may speak for this campaign.
    ::unlink(published_.c_str());
    committed_ = true;
    return true;
  }
  const bool written = log_->flush();
  if (!written) {
    error = log_->error();
  }
  log_.reset();
  if (!written) {
    return false;
  }
  if (::rename(temporary_.c_str(), published_.c_str()) != 0) {
    error = fmt::format("event log {}: cannot publish as {}: {}", temporary_, published_,
                        std::strerror(errno));
    return false;
  }
  committed_ = true;
  return true;
}

void SubmitEvents::discard() {
  if (published_.empty()) {
    return;
  }
  log_.reset();
  ::unlink(temporary_.c_str());
  if (committed_) {
    ::unlink(published_.c_str());
  }
}

bool exportCampaignEvents(const std::string& path, int keepFiles, std::string_view campaign,
                          ExportFormat format, std::ostream& out, ExportStats& stats,
                          std::string& error) {
  if (format == ExportFormat::Csv) {
    out << kCsvHeader;
  }
  for (const std::string& file : allEventFiles(path, keepFiles, campaign)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      error = fmt::format("{}: cannot read: {}", file, std::strerror(errno));
      return false;
    }
    std::string line;
    std::string why;
    while (std::getline(in, line)) {
      if (line.empty()) {
        continue;
      }
      auto e = eventFromJson(line, why);
      if (!e) {
        ++stats.skippedLines;
        continue;
      }
      if (e->campaign != campaign) {
        continue;
      }
      ++stats.events;
      if (format == ExportFormat::Csv) {
        writeCsvRow(out, *e);
      } else {
        out << eventToJson(*e) << '\n';
      }
    }
    if (in.bad()) {
      error = fmt::format("{}: read failed: {}", file, std::strerror(errno));
      return false;
    }
  }
  return true;
}

}  // namespace salvo::engine
