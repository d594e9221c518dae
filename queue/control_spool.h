// ControlSpool: how commands reach a running daemon. RocksDB admits one read-write
// process per data dir, so while `salvo run` holds the store, `salvo submit|pause|resume|
// cancel` stage a request file in <data_dir>/control/ and the daemon applies it.
// Contract: files only, each step one atomic rename, so a crash on either side never
// leaves a half-read request:
//   client  <id>.tmp --rename--> <id>.req            (stage)
//   daemon  <id>.req --rename--> <id>.work           (claim: exactly one side wins)
//   client  <id>.req --rename--> <id>.gone           (withdraw, when no daemon answers)
//   daemon  <id>.rtmp --rename--> <id>.reply, removes <id>.work   (answer)
// A request whose client process has died is dropped unapplied; a .work left by a daemon
// that died is removed at the next start (its client was told the daemon stopped).
// Knows nothing of what the requests mean.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "queue/store.h"

namespace salvo::queue {

struct ControlRequest {
  std::string id;  // file name stem, unique per request
  pid_t pid = 0;   // the client waiting for the reply
  std::string op;
  std::vector<std::string> args;  // no newline in any argument
};

struct ControlReply {
  int exitCode = 0;
  std::string out;  // for the client's stdout
  std::string err;  // for the client's stderr
};

class ControlSpool {
 public:
  explicit ControlSpool(std::string dataDir);

  // --- client ---
  // Fills request.id and request.pid and stages the request.
  Status stage(ControlRequest& request);
  // True when the request was still unclaimed and is now withdrawn.
  bool withdraw(const std::string& id);
  // The reply, once the daemon has answered (the reply file is removed).
  std::optional<ControlReply> takeReply(const std::string& id);
  // Whether the daemon still holds the request it claimed.
  bool claimed(const std::string& id) const;

  // --- daemon ---
  // Claims every staged request, oldest first; drops those whose client has died or that
  // cannot be parsed (answering the latter when the client lives).
  std::vector<ControlRequest> claim();
  Status answer(const ControlRequest& request, const ControlReply& reply);
  // Removes .work and temporary files left by a daemon or client that died.
  void removeLeftovers();

  // Whether another process holds the RocksDB lock of the data dir (a daemon runs).
  // Never call it in the process that holds the store: closing any descriptor of the LOCK
  // file drops that process's fcntl lock.
  static bool storeLocked(const std::string& dataDir);

  const std::string& dir() const { return dir_; }

 private:
  std::string dataDir_;
  std::string dir_;
};

}  // namespace salvo::queue
