#include "queue/control_spool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace salvo::queue {

namespace {

namespace fs = std::filesystem;
using Code = Status::Code;

constexpr std::string_view kMagic = "salvo-control 1";

Status writeAtomically(const std::string& tmp, const std::string& final,
                       const std::string& content) {
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << content;
    f.flush();
    if (!f) {
      return Status::error(Code::IoError,
                           fmt::format("{}: cannot write: {}", tmp, std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), final.c_str()) != 0) {
    auto text = std::strerror(errno);
    std::remove(tmp.c_str());
    return Status::error(Code::IoError, fmt::format("{}: cannot rename: {}", final, text));
  }
  return Status::ok();
}

bool readFile(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return false;
  }
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return true;
}

bool processAlive(pid_t pid) {
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

std::optional<ControlRequest> parseRequest(const std::string& id, const std::string& text) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kMagic) {
    return std::nullopt;
  }
  ControlRequest r;
  r.id = id;
  while (std::getline(in, line)) {
    auto space = line.find(' ');
    std::string key = line.substr(0, space);
    std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    if (key == "pid") {
      r.pid = static_cast<pid_t>(std::atol(value.c_str()));
    } else if (key == "op") {
      r.op = value;
    } else if (key == "arg") {
      r.args.push_back(value);
    } else {
      return std::nullopt;
    }
  }
  if (r.op.empty() || r.pid <= 0) {
    return std::nullopt;
  }
  return r;
}

}  // namespace

ControlSpool::ControlSpool(std::string dataDir)
    : dataDir_(std::move(dataDir)), dir_((fs::path(dataDir_) / "control").string()) {}

Status ControlSpool::stage(ControlRequest& request) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    return Status::error(Code::IoError, fmt::format("{}: cannot create: {}", dir_, ec.message()));
  }
  static std::atomic<unsigned> serial{0};
  auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
  request.pid = getpid();
  // Names sort by time, so the daemon applies requests in the order they were staged.
  request.id = fmt::format("{:020}-{}-{}", ns, request.pid, serial++);
  std::string text = fmt::format("{}\npid {}\nop {}\n", kMagic, request.pid, request.op);
  for (const auto& a : request.args) {
    if (a.find('\n') != std::string::npos) {
      return Status::error(Code::InvalidArgument,
                           fmt::format("a control argument contains a newline: '{}'", a));
    }
    text += fmt::format("arg {}\n", a);
  }
  auto base = dir_ + "/" + request.id;
  return writeAtomically(base + ".tmp", base + ".req", text);
}

bool ControlSpool::withdraw(const std::string& id) {
  auto base = dir_ + "/" + id;
  if (std::rename((base + ".req").c_str(), (base + ".gone").c_str()) != 0) {
    return false;
  }
  std::remove((base + ".gone").c_str());
  return true;
}

std::optional<ControlReply> ControlSpool::takeReply(const std::string& id) {
  auto path = dir_ + "/" + id + ".reply";
  std::string text;
  if (!readFile(path, text)) {
    return std::nullopt;
  }
  std::remove(path.c_str());
  ControlReply reply;
  // exit <n>\nout <len>\n<bytes>err <len>\n<bytes>
  std::size_t pos = 0;
  auto number = [&](std::string_view key, long long& v) {
    if (text.compare(pos, key.size() + 1, std::string(key) + " ") != 0) {
      return false;
    }
    pos += key.size() + 1;
    auto end = text.find('\n', pos);
    if (end == std::string::npos) {
      return false;
    }
    v = std::atoll(text.substr(pos, end - pos).c_str());
    pos = end + 1;
    return true;
  };
  auto bytes = [&](std::string_view key, std::string& out) {
    long long n = 0;
    if (!number(key, n) || n < 0 || pos + static_cast<std::size_t>(n) > text.size()) {
      return false;
    }
    out = text.substr(pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return true;
  };
  long long code = 0;
  if (!number("exit", code) || !bytes("out", reply.out) || !bytes("err", reply.err)) {
    reply.exitCode = 74;
    reply.out.clear();
    reply.err = fmt::format("salvo: {}: malformed reply from the daemon\n", path);
    return reply;
  }
  reply.exitCode = static_cast<int>(code);
  return reply;
}

bool ControlSpool::claimed(const std::string& id) const {
  std::error_code ec;
  return fs::exists(dir_ + "/" + id + ".work", ec);
}

std::vector<ControlRequest> ControlSpool::claim() {
  std::vector<std::string> ids;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& p = it->path();
    if (p.extension() == ".req") {
      ids.push_back(p.stem().string());
    }
  }
  std::sort(ids.begin(), ids.end());
  std::vector<ControlRequest> out;
  for (const auto& id : ids) {
    auto base = dir_ + "/" + id;
    if (std::rename((base + ".req").c_str(), (base + ".work").c_str()) != 0) {
      continue;  // withdrawn meanwhile
    }
    std::string text;
    auto request = readFile(base + ".work", text) ? parseRequest(id, text) : std::nullopt;
    if (!request || !processAlive(request->pid)) {
      // Nobody waits for it, or it cannot be read: drop it unapplied.
      std::remove((base + ".work").c_str());
      continue;
    }
    out.push_back(std::move(*request));
  }
  return out;
}

Status ControlSpool::answer(const ControlRequest& request, const ControlReply& reply) {
  auto base = dir_ + "/" + request.id;
  std::string text = fmt::format("exit {}\nout {}\n{}err {}\n{}", reply.exitCode, reply.out.size(),
                                 reply.out, reply.err.size(), reply.err);
  auto st = writeAtomically(base + ".rtmp", base + ".reply", text);
  std::remove((base + ".work").c_str());
  return st;
}

void ControlSpool::removeLeftovers() {
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    auto ext = it->path().extension();
    if (ext == ".work" || ext == ".rtmp" || ext == ".gone") {
      fs::remove(it->path(), ec);
    }
  }
}

bool ControlSpool::storeLocked(const std::string& dataDir) {
  auto path = (fs::path(dataDir) / "LOCK").string();
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  bool locked = fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK;
  ::close(fd);
  return locked;
}

}  // namespace salvo::queue
