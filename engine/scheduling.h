// How the engine's threads are scheduled.
// Contract: useBatchScheduling() switches the calling thread to SCHED_BATCH (Linux,
// sched(7)); threads it creates afterwards inherit the policy, so `salvo run` and
// `salvo bench` call it before they open the store and start their loops. Mail delivery
// is throughput work: a batch thread woken by a socket or a result does not preempt the
// thread running on that CPU, so replies and results are handled many at a time rather
// than one context switch each. Nice values and fairness are unchanged, and no privilege
// is needed. Returns false with the reason in `error` when the kernel refuses; the caller
// logs it and carries on.
#pragma once

#include <string>

namespace salvo::engine {

bool useBatchScheduling(std::string& error);

}  // namespace salvo::engine
