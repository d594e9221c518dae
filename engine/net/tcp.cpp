#include "engine/net/tcp.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace salvo::net {

namespace {

constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr int kListenBacklog = 1024;
// How long close() waits for queued output to reach a peer that does not read before it
// drops the connection anyway.
constexpr std::uint64_t kCloseLingerMs = 10'000;

std::string uvError(int rc) {
  return uv_strerror(rc);
}

// Crash loudly on a broken invariant of our own use of libuv.
void mustSucceed(int rc, const char* what) {
  if (rc != 0) {
    std::fprintf(stderr, "salvo: %s: %s\n", what, uv_strerror(rc));
    std::abort();
  }
}

// One 64 KiB read buffer per loop thread, shared by all its connections: libuv calls the
// alloc callback, read(2) and the read callback back to back, and TcpHandler::onData()
// must not keep the bytes, so no two reads ever use the buffer at the same time. This
// keeps ten thousand idle connections from pinning 640 MiB of buffers.
char* readBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadBufferSize]);
  return buffer.get();
}

std::string endpointText(const sockaddr_storage& addr) {
  Endpoint ep;
  ep.addr = addr;
  return ep.str();
}

}  // namespace

// Four handles (the socket, a check and an idle handle for the end-of-iteration flush and
// deferred reports, a timer for connect timeout and close linger) and the requests on
// them. The Impl is freed by the close callback of the last of the four handles (after
// libuv has called back every request with UV_ECANCELED) — or, when the TcpConnection
// object outlives the socket (closed by the peer, say), by its destructor: whichever of
// the two comes last.
struct TcpConnection::Impl {
  enum class State {
    Connecting,  // outbound, uv_connect pending
    Open,
    Failed,   // an error waits to be reported from the check callback
    Closing,  // close() called: output is draining; no callbacks
    Closed,   // uv_close called on every handle
  };

  uv_tcp_t tcp;
  uv_check_t flushCheck;
  uv_idle_t flushIdle;
  uv_timer_t timer;
  uv_connect_t connectReq;
  uv_write_t writeReq;
  int openHandles = 0;
  bool attached = false;  // a TcpConnection object still points here

  TcpHandler* handler = nullptr;
  State state = State::Open;
  bool reading = false;
  bool writing = false;      // writeReq is in flight
  bool checkActive = false;  // check + idle started
  bool drainWanted = false;  // notifyDrained() was called: onDrained() once output is empty
  std::string out;           // queued by write(), not yet handed to the kernel
  std::string inflight;      // owned by the in-flight uv_write until its callback
  std::size_t inflightOffset = 0;
  std::string peer;
  std::string error;  // the failure waiting in state Failed
  bool errorIsConnect = false;
  std::uint64_t connectTimeoutMs = 0;
  std::uint64_t bytesWritten = 0;
  std::uint64_t bytesRead = 0;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }

  void init(EventLoop& loop) {
    mustSucceed(uv_tcp_init(loop.raw(), &tcp), "uv_tcp_init");
    mustSucceed(uv_check_init(loop.raw(), &flushCheck), "uv_check_init");
    mustSucceed(uv_idle_init(loop.raw(), &flushIdle), "uv_idle_init");
    mustSucceed(uv_timer_init(loop.raw(), &timer), "uv_timer_init");
    openHandles = 4;
    tcp.data = this;
    flushCheck.data = this;
    flushIdle.data = this;
    timer.data = this;
    connectReq.data = this;
    writeReq.data = this;
  }

  static void onHandleClosed(uv_handle_t* h) {
    auto* self = static_cast<Impl*>(h->data);
    if (--self->openHandles == 0 && !self->attached) {
      delete self;
    }
  }

  void closeHandle(uv_handle_t* h) {
    if (!uv_is_closing(h)) {
      uv_close(h, onHandleClosed);
    }
  }

  // Closes everything; pending requests are cancelled and their callbacks ignored.
  void closeHandles() {
    state = State::Closed;
    handler = nullptr;
    closeHandle(reinterpret_cast<uv_handle_t*>(&tcp));
    closeHandle(reinterpret_cast<uv_handle_t*>(&flushCheck));
    closeHandle(reinterpret_cast<uv_handle_t*>(&flushIdle));
    closeHandle(reinterpret_cast<uv_handle_t*>(&timer));
  }

  void stopReading() {
    if (reading) {
      uv_read_stop(stream());
      reading = false;
    }
  }

  void startReading() {
    if (!reading && state == State::Open) {
      mustSucceed(uv_read_start(stream(), onAlloc, onRead), "uv_read_start");
      reading = true;
    }
  }

  // Runs onCheck at the end of this loop iteration. The idle handle only keeps the poll
  // phase from blocking when this is called outside of it (timers, pending callbacks):
  // check handles alone do not.
  void scheduleCheck() {
    if (checkActive) {
      return;
    }
    checkActive = true;
    uv_check_start(&flushCheck, onCheck);
    uv_idle_start(&flushIdle, [](uv_idle_t*) {});
  }

  // Records a failure to report from the check callback, so that no public call ever
  // calls the handler back from inside itself.
  void fail(std::string message, bool isConnect) {
    if (state == State::Closing) {
      closeHandles();
      return;
    }
    if (state == State::Failed || state == State::Closed) {
      return;
    }
    state = State::Failed;
    error = std::move(message);
    errorIsConnect = isConnect;
    stopReading();
    uv_timer_stop(&timer);
    scheduleCheck();
  }

  void finishCloseIfDrained() {
    if (state == State::Closing && !writing && out.empty()) {
      closeHandles();
    }
  }

  void flushNow() {
    if ((state != State::Open && state != State::Closing) || writing) {
      return;
    }
    if (out.empty()) {
      finishCloseIfDrained();
      return;
    }
    uv_buf_t buf = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
    int n = uv_try_write(stream(), &buf, 1);
    if (n == UV_EAGAIN) {
      n = 0;
    }
    if (n < 0) {
      fail(fmt::format("write {}: {}", peer, uvError(n)), false);
      return;
    }
    bytesWritten += static_cast<std::uint64_t>(n);
    if (static_cast<std::size_t>(n) == out.size()) {
      out.clear();
      finishCloseIfDrained();
      return;
    }
    // The kernel took part of it: hand the rest to uv_write. Swapping keeps both strings'
    // capacity for reuse and costs no copy.
    inflight.swap(out);
    out.clear();
    inflightOffset = static_cast<std::size_t>(n);
    buf = uv_buf_init(inflight.data() + inflightOffset,
                      static_cast<unsigned>(inflight.size() - inflightOffset));
    int rc = uv_write(&writeReq, stream(), &buf, 1, onWrite);
    if (rc < 0) {
      inflight.clear();
      fail(fmt::format("write {}: {}", peer, uvError(rc)), false);
      return;
    }
    writing = true;
  }

  static void onAlloc(uv_handle_t*, std::size_t, uv_buf_t* buf) {
    buf->base = readBuffer();
    buf->len = kReadBufferSize;
  }

  static void onRead(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* self = static_cast<Impl*>(s->data);
    if (self->state != State::Open) {
      return;
    }
    if (nread > 0) {
      self->bytesRead += static_cast<std::uint64_t>(nread);
      if (self->handler != nullptr) {
        // May destroy the TcpConnection; this Impl lives until the close callbacks.
        self->handler->onData(std::string_view(buf->base, static_cast<std::size_t>(nread)));
      }
      return;
    }
    if (nread == 0) {
      return;  // EAGAIN
    }
    std::string message =
        nread == UV_EOF ? std::string("connection closed by peer")
                        : fmt::format("read {}: {}", self->peer, uvError(static_cast<int>(nread)));
    TcpHandler* handler = self->handler;
    self->closeHandles();
    if (handler != nullptr) {
      handler->onClosed(message);
    }
  }

  static void onWrite(uv_write_t* req, int status) {
    auto* self = static_cast<Impl*>(req->data);
    self->writing = false;
    if (self->state == State::Closed || self->state == State::Failed) {
      return;
    }
    if (status < 0) {
      self->fail(fmt::format("write {}: {}", self->peer, uvError(status)), false);
      return;
    }
    self->bytesWritten += self->inflight.size() - self->inflightOffset;
    self->inflight.clear();
    self->flushNow();
    self->reportDrained();
  }

  // The last thing of a loop callback: onDrained() when asked for and output is empty.
  void reportDrained() {
    if (drainWanted && state == State::Open && !writing && out.empty() && handler != nullptr) {
      drainWanted = false;
      handler->onDrained();  // may destroy the TcpConnection; this Impl lives on
    }
  }

  static void onCheck(uv_check_t* c) {
    auto* self = static_cast<Impl*>(c->data);
    uv_check_stop(&self->flushCheck);
    uv_idle_stop(&self->flushIdle);
    self->checkActive = false;
    if (self->state == State::Failed) {
      TcpHandler* handler = self->handler;
      std::string message = std::move(self->error);
      bool isConnect = self->errorIsConnect;
      self->closeHandles();
      if (handler != nullptr) {
        if (isConnect) {
          handler->onConnect(message);
        } else {
          handler->onClosed(message);
        }
      }
      return;
    }
    self->flushNow();
    self->reportDrained();
  }

  static void onConnect(uv_connect_t* req, int status) {
    auto* self = static_cast<Impl*>(req->data);
    if (self->state != State::Connecting) {
      return;  // timed out, failed or closed meanwhile (status is UV_ECANCELED)
    }
    uv_timer_stop(&self->timer);
    TcpHandler* handler = self->handler;
    if (status < 0) {
      std::string message = fmt::format("connect {}: {}", self->peer, uvError(status));
      self->closeHandles();
      if (handler != nullptr) {
        handler->onConnect(message);
      }
      return;
    }
    self->state = State::Open;
    self->startReading();
    if (!self->out.empty()) {
      self->scheduleCheck();
    }
    if (handler != nullptr) {
      handler->onConnect("");
    }
  }

  static void onConnectTimeout(uv_timer_t* t) {
    auto* self = static_cast<Impl*>(t->data);
    if (self->state != State::Connecting) {
      return;
    }
    TcpHandler* handler = self->handler;
    std::string message =
        fmt::format("connect {}: timed out after {} ms", self->peer, self->connectTimeoutMs);
    self->closeHandles();
    if (handler != nullptr) {
      handler->onConnect(message);
    }
  }

  static void onLingerTimeout(uv_timer_t* t) { static_cast<Impl*>(t->data)->closeHandles(); }
};

TcpConnection::TcpConnection(Impl* impl) : impl_(impl) {
  impl_->attached = true;
}

TcpConnection::~TcpConnection() {
  close();
  impl_->handler = nullptr;
  impl_->attached = false;
  if (impl_->openHandles == 0) {
    delete impl_;  // the close callbacks have all run
  }
}

std::unique_ptr<TcpConnection> TcpConnection::connect(EventLoop& loop, const Endpoint& to,
                                                      TcpHandler& handler,
                                                      std::uint64_t timeoutMs) {
  auto* impl = new Impl;
  impl->init(loop);
  impl->handler = &handler;
  impl->state = Impl::State::Connecting;
  impl->peer = to.str();
  impl->connectTimeoutMs = timeoutMs;
  uv_tcp_nodelay(&impl->tcp, 1);  // applied by libuv once the socket exists
  int rc = uv_tcp_connect(&impl->connectReq, &impl->tcp,
                          reinterpret_cast<const sockaddr*>(&to.addr), Impl::onConnect);
  if (rc < 0) {
    impl->fail(fmt::format("connect {}: {}", impl->peer, uvError(rc)), true);
  } else if (timeoutMs > 0) {
    uv_timer_start(&impl->timer, Impl::onConnectTimeout, timeoutMs, 0);
  }
  return std::make_unique<TcpConnection>(impl);
}

void TcpConnection::start(TcpHandler& handler) {
  impl_->handler = &handler;
  impl_->startReading();
}

void TcpConnection::write(std::string_view bytes) {
  if (impl_->state != Impl::State::Open && impl_->state != Impl::State::Connecting) {
    return;
  }
  impl_->out.append(bytes);
  if (impl_->state == Impl::State::Open) {
    impl_->scheduleCheck();
  }
}

void TcpConnection::notifyDrained() {
  if (impl_->state == Impl::State::Open) {
    impl_->drainWanted = true;
    impl_->scheduleCheck();
  }
}

void TcpConnection::flush() {
  if (impl_->state == Impl::State::Open) {
    impl_->flushNow();
  }
}

void TcpConnection::close() {
  switch (impl_->state) {
    case Impl::State::Connecting:
    case Impl::State::Failed:
      impl_->closeHandles();
      return;
    case Impl::State::Open:
      impl_->state = Impl::State::Closing;
      impl_->handler = nullptr;
      impl_->stopReading();
      // Either everything reaches the kernel now and the socket closes (close(2) still
      // sends the queued bytes, then FIN), or a uv_write finishes the job later.
      impl_->flushNow();
      if (impl_->state == Impl::State::Closing) {
        uv_timer_start(&impl_->timer, Impl::onLingerTimeout, kCloseLingerMs, 0);
      }
      return;
    case Impl::State::Closing:
    case Impl::State::Closed:
      return;
  }
}

bool TcpConnection::open() const {
  return impl_->state == Impl::State::Open;
}

std::string TcpConnection::peer() const {
  return impl_->peer;
}

std::uint64_t TcpConnection::bytesWritten() const {
  return impl_->bytesWritten;
}

std::uint64_t TcpConnection::bytesRead() const {
  return impl_->bytesRead;
}

std::size_t TcpConnection::queuedBytes() const {
  std::size_t n = impl_->out.size();
  if (impl_->writing) {
    n += impl_->inflight.size() - impl_->inflightOffset;
  }
  return n;
}

// --- TcpListener ---

struct TcpListener::Impl {
  uv_tcp_t tcp;
  EventLoop* loop = nullptr;
  AcceptCallback onAccept;
  bool closed = false;
  std::uint16_t port = 0;

  static void onClosed(uv_handle_t* h) { delete static_cast<Impl*>(h->data); }

  void close() {
    closed = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), onClosed);
  }

  static void onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<Impl*>(server->data);
    if (status < 0 || self->closed) {
      return;  // e.g. EMFILE: libuv retries on the next readiness event
    }
    auto* conn = new TcpConnection::Impl;
    conn->init(*self->loop);
    if (uv_accept(server, conn->stream()) != 0) {
      conn->closeHandles();
      return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    sockaddr_storage addr{};
    int len = sizeof(addr);
    if (uv_tcp_getpeername(&conn->tcp, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      conn->peer = endpointText(addr);
    }
    conn->state = TcpConnection::Impl::State::Open;
    // onAccept lives in this Impl, which outlives a listener destroyed inside the call.
    self->onAccept(std::make_unique<TcpConnection>(conn));
  }
};

TcpListener::TcpListener(Impl* impl) : impl_(impl) {}

TcpListener::~TcpListener() {
  impl_->close();
}

std::unique_ptr<TcpListener> TcpListener::listen(EventLoop& loop, const Endpoint& at,
                                                 bool reusePort, AcceptCallback onAccept,
                                                 std::string& error) {
  auto* impl = new Impl;
  impl->loop = &loop;
  impl->onAccept = std::move(onAccept);
  // Creating the socket now (instead of at bind) lets us set SO_REUSEPORT before bind:
  // libuv 1.44 has no UV_TCP_REUSEPORT flag.
  int rc = uv_tcp_init_ex(loop.raw(), &impl->tcp, static_cast<unsigned>(at.family()));
  if (rc < 0) {
    error = fmt::format("listen {}: {}", at.str(), uvError(rc));
    delete impl;  // a failed uv_tcp_init_ex leaves no handle on the loop
    return nullptr;
  }
  impl->tcp.data = impl;
  auto failed = [&](int code) {
    error = fmt::format("listen {}: {}", at.str(), uvError(code));
    impl->close();
    return nullptr;
  };
  if (reusePort) {
    uv_os_fd_t fd;
    rc = uv_fileno(reinterpret_cast<uv_handle_t*>(&impl->tcp), &fd);
    if (rc < 0) {
      return failed(rc);
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
      return failed(uv_translate_sys_error(errno));
    }
  }
  rc = uv_tcp_bind(&impl->tcp, reinterpret_cast<const sockaddr*>(&at.addr), 0);
  if (rc < 0) {
    return failed(rc);
  }
  // libuv reports EADDRINUSE from bind here, at listen.
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&impl->tcp), kListenBacklog, Impl::onConnection);
  if (rc < 0) {
    return failed(rc);
  }
  sockaddr_storage bound{};
  int len = sizeof(bound);
  rc = uv_tcp_getsockname(&impl->tcp, reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc < 0) {
    return failed(rc);
  }
  Endpoint ep;
  ep.addr = bound;
  impl->port = ep.port();
  return std::make_unique<TcpListener>(impl);
}

std::uint16_t TcpListener::port() const {
  return impl_->port;
}

}  // namespace salvo::net
