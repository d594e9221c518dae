#include "engine/scheduling.h"

#include <sched.h>

#include <cerrno>
#include <cstring>

namespace salvo::engine {

bool useBatchScheduling(std::string& error) {
  sched_param param{};
  param.sched_priority = 0;  // the only priority SCHED_BATCH has
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    error = std::string("cannot switch to SCHED_BATCH: ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace salvo::engine
