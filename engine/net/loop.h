// libuv event loops. Contract: engine/net is the only code that includes uv.h; everything
// else uses these wrappers. An EventLoop owns one uv_loop_t, optionally on its own thread.
// post() is the one thread-safe entry point: functions queued from any thread run on the
// loop thread, in order, woken through one uv_async_t (batched: many posts, one wake-up).
// Handles created on a loop (Timer, FdWatcher, TcpConnection, TcpListener) must be
// created, used and destroyed on that loop's thread; their memory lives until libuv's
// close callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct uv_loop_s;
struct uv_async_s;

namespace salvo::net {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();  // stops and joins the thread if started; closes every handle it owns
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Thread-safe: runs `fn` on the loop thread (never inline, even from the loop thread).
  void post(std::function<void()> fn);
  // Runs the loop on the calling thread until stop().
  void run();
  // Runs the loop on a new thread named `name` (≤15 chars) until stop().
  void start(const std::string& name);
  // Thread-safe: makes run() return (after the current callbacks) and joins the thread
  // when it was started with start(). Idempotent.
  void stop();
  void join();
  // Runs the functions posted so far on the calling thread. Only while the loop is not
  // running (after run() returned): lets an owner finish work posted during shutdown.
  void runPosted();
  bool inLoopThread() const;
  // Monotonic milliseconds as cached by libuv for this iteration.
  std::uint64_t nowMs() const;

  uv_loop_s* raw() { return loop_.get(); }

 private:
  void drain();
  std::unique_ptr<uv_loop_s> loop_;
  uv_async_s* async_ = nullptr;  // freed in its close callback
  std::mutex mutex_;
  std::vector<std::function<void()>> pending_;
  std::thread thread_;
  std::thread::id loopThread_;
  bool stopping_ = false;
};

// A one-shot or repeating timer on a loop.
class Timer {
 public:
  explicit Timer(EventLoop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  // (Re)arms the timer; `repeatMs` 0 = one shot.
  void start(std::uint64_t timeoutMs, std::uint64_t repeatMs, std::function<void()> fn);
  void stop();
  bool active() const;

 private:
  struct Handle;
  Handle* handle_;  // owned by libuv until the close callback
};

// Watches a file descriptor for readability/writability (used by the c-ares resolver).
class FdWatcher {
 public:
  using Callback = std::function<void(bool readable, bool writable)>;
  FdWatcher(EventLoop& loop, int fd);
  ~FdWatcher();
  FdWatcher(const FdWatcher&) = delete;
  FdWatcher& operator=(const FdWatcher&) = delete;
  // Starts or changes what is watched; both false stops watching.
  void watch(bool readable, bool writable, Callback cb);

 private:
  struct Handle;
  Handle* handle_;
};

// Calls `fn` on the loop thread when the process receives `signum` (SIGINT, SIGTERM...).
class SignalWatcher {
 public:
  SignalWatcher(EventLoop& loop, int signum, std::function<void()> fn);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  struct Handle;
  Handle* handle_;
};

}  // namespace salvo::net
