#include "engine/net/loop.h"

#include <pthread.h>
#include <uv.h>

#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace salvo::net {

namespace {

// Crash loudly on a broken invariant of our own use of libuv.
void check(int rc, const char* what) {
  if (rc != 0) {
    fprintf(stderr, "salvo: %s: %s\n", what, uv_strerror(rc));
    std::abort();
  }
}

}  // namespace

EventLoop::EventLoop() : loop_(std::make_unique<uv_loop_t>()) {
  check(uv_loop_init(loop_.get()), "uv_loop_init");
  async_ = new uv_async_t;
  async_->data = this;
  check(uv_async_init(loop_.get(), async_,
                      [](uv_async_t* a) { static_cast<EventLoop*>(a->data)->drain(); }),
        "uv_async_init");
  loopThread_ = std::this_thread::get_id();
}

EventLoop::~EventLoop() {
  stop();
  join();
  // Functions never run may own handles (a connection awaiting deferred destruction):
  // destroy them while the loop can still close those handles.
  std::vector<std::function<void()>> unrun;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    unrun.swap(pending_);
  }
  unrun.clear();
  // Close our async handle and any handle still open, then let their callbacks run.
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  uv_walk(
      loop_.get(),
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) {
          uv_close(h, nullptr);  // owners already destroyed; memory is theirs to leak-check
        }
      },
      nullptr);
  uv_run(loop_.get(), UV_RUN_DEFAULT);
  uv_loop_close(loop_.get());
}

void EventLoop::post(std::function<void()> fn) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake = pending_.empty();
    pending_.push_back(std::move(fn));
  }
  if (wake) {
    uv_async_send(async_);
  }
}

void EventLoop::drain() {
  // Read stopping_ in the same critical section as the swap: a function posted before
  // stop() is then always in this batch and runs before the loop stops. (Reading it after
  // running the batch let a post()+stop() pair from another thread land between the two
  // reads, and the posted function never ran.) A stop() that comes later sends the async
  // again, so it is seen on the next drain.
  std::vector<std::function<void()>> batch;
  bool stop = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(pending_);
    stop = stopping_;
  }
  for (auto& fn : batch) {
    fn();
  }
  if (stop) {
    uv_stop(loop_.get());
  }
}

void EventLoop::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(pending_);
  }
  for (auto& fn : batch) {
    fn();
  }
}

void EventLoop::run() {
  loopThread_ = std::this_thread::get_id();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return;
    }
  }
  uv_run(loop_.get(), UV_RUN_DEFAULT);
}

void EventLoop::start(const std::string& name) {
  thread_ = std::thread([this, name] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    run();
  });
}

void EventLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  uv_async_send(async_);
}

void EventLoop::join() {
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) {
    thread_.join();
  }
}

bool EventLoop::inLoopThread() const {
  return std::this_thread::get_id() == loopThread_;
}

std::uint64_t EventLoop::nowMs() const {
  return uv_now(loop_.get());
}

// --- Timer ---

struct Timer::Handle {
  uv_timer_t timer;
  std::function<void()> fn;
};

Timer::Timer(EventLoop& loop) : handle_(new Handle) {
  check(uv_timer_init(loop.raw(), &handle_->timer), "uv_timer_init");
  handle_->timer.data = handle_;
}

Timer::~Timer() {
  uv_timer_stop(&handle_->timer);
  handle_->fn = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->timer),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

void Timer::start(std::uint64_t timeoutMs, std::uint64_t repeatMs, std::function<void()> fn) {
  handle_->fn = std::move(fn);
  check(uv_timer_start(
            &handle_->timer,
            [](uv_timer_t* t) {
              auto* h = static_cast<Handle*>(t->data);
              if (h->fn) {
                // Copy: the callback may re-arm or destroy the timer.
                auto fn = h->fn;
                fn();
              }
            },
            timeoutMs, repeatMs),
        "uv_timer_start");
}

void Timer::stop() {
  uv_timer_stop(&handle_->timer);
}

bool Timer::active() const {
  return uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_->timer)) != 0;
}

// --- FdWatcher ---

struct FdWatcher::Handle {
  uv_poll_t poll;
  FdWatcher::Callback cb;
};

FdWatcher::FdWatcher(EventLoop& loop, int fd) : handle_(new Handle) {
  check(uv_poll_init_socket(loop.raw(), &handle_->poll, fd), "uv_poll_init_socket");
  handle_->poll.data = handle_;
}

FdWatcher::~FdWatcher() {
  uv_poll_stop(&handle_->poll);
  handle_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

void FdWatcher::watch(bool readable, bool writable, Callback cb) {
  handle_->cb = std::move(cb);
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  if (events == 0) {
    uv_poll_stop(&handle_->poll);
    return;
  }
  check(uv_poll_start(&handle_->poll, events,
                      [](uv_poll_t* p, int status, int ev) {
                        auto* h = static_cast<Handle*>(p->data);
                        if (!h->cb) {
                          return;
                        }
                        auto cb = h->cb;
                        // On error report both directions ready so the owner reads the error.
                        if (status < 0) {
                          cb(true, true);
                          return;
                        }
                        cb((ev & UV_READABLE) != 0, (ev & UV_WRITABLE) != 0);
                      }),
        "uv_poll_start");
}

// --- SignalWatcher ---

struct SignalWatcher::Handle {
  uv_signal_t signal;
  std::function<void()> fn;
};

SignalWatcher::SignalWatcher(EventLoop& loop, int signum, std::function<void()> fn)
    : handle_(new Handle) {
  handle_->fn = std::move(fn);
  check(uv_signal_init(loop.raw(), &handle_->signal), "uv_signal_init");
  handle_->signal.data = handle_;
  check(uv_signal_start(
            &handle_->signal,
            [](uv_signal_t* s, int) {
              auto* h = static_cast<Handle*>(s->data);
              if (h->fn) {
                h->fn();
              }
            },
            signum),
        "uv_signal_start");
}

SignalWatcher::~SignalWatcher() {
  uv_signal_stop(&handle_->signal);
  handle_->fn = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&handle_->signal),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

}  // namespace salvo::net
