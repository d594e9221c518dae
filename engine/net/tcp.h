// TCP connections and listeners on an EventLoop.
// Contract: all calls on the loop thread. A TcpConnection reports through its
// TcpHandler; after close() (or onClosed) no callback is made again. write() gathers:
// bytes written within one callback are sent with one write call where possible
// (uv_try_write first, uv_write for the rest). Reads go into a large buffer (64 KiB).
// Callbacks only ever come from the loop, never from inside a call on the connection, and
// a handler may destroy its TcpConnection inside any callback. The object stays safe to
// use after its socket is gone (open() false, writes ignored). TCP_NODELAY is on.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "engine/net/address.h"
#include "engine/net/loop.h"

namespace salvo::net {

class TcpHandler {
 public:
  virtual ~TcpHandler() = default;
  // Connected (outbound) — or `error` non-empty when the connection failed
  // ("connect 127.0.0.1:1: connection refused"); a failed connect is final (no onClosed).
  virtual void onConnect(const std::string& error) = 0;
  virtual void onData(std::string_view bytes) = 0;
  // The peer closed (error "connection closed by peer") or the socket failed. Final.
  virtual void onClosed(const std::string& error) = 0;
  // After notifyDrained(): every byte written so far has been taken by the kernel.
  virtual void onDrained() {}
};

class TcpConnection {
 public:
  // Outbound: connects to `to`; `timeoutMs` bounds the connect (0 = none).
  static std::unique_ptr<TcpConnection> connect(EventLoop& loop, const Endpoint& to,
                                                TcpHandler& handler, std::uint64_t timeoutMs);
  ~TcpConnection();  // closes if still open; no callbacks after destruction
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // Attaches the handler of an accepted connection and starts reading.
  void start(TcpHandler& handler);
  // Queues bytes; they are flushed before the current loop iteration ends (bytes written
  // while an outbound connect is pending go out once it succeeds). Ignored after close().
  void write(std::string_view bytes);
  // Flushes queued bytes now.
  void flush();
  // Closes after flushing queued writes. No further callbacks. Queued bytes a peer does
  // not accept within 10 s are dropped. The destructor does the same.
  void close();
  bool open() const;
  std::string peer() const;
  std::uint64_t bytesWritten() const;
  std::uint64_t bytesRead() const;
  // Bytes queued or in flight, not yet taken by the kernel (for back-pressure).
  std::size_t queuedBytes() const;
  // Asks for one onDrained() once queuedBytes() is 0 (from the loop, never from inside this
  // call: on the next loop iteration if it is 0 already). Ignored unless open().
  void notifyDrained();

  struct Impl;
  explicit TcpConnection(Impl* impl);

 private:
  Impl* impl_;  // freed in libuv's close callback
};

class TcpListener {
 public:
  using AcceptCallback = std::function<void(std::unique_ptr<TcpConnection>)>;
  // Binds and listens; `reusePort` sets SO_REUSEPORT so several loops can share a port.
  // Returns nullptr and sets `error` on failure (e.g. "127.0.0.1:25: address in use").
  static std::unique_ptr<TcpListener> listen(EventLoop& loop, const Endpoint& at, bool reusePort,
                                             AcceptCallback onAccept, std::string& error);
  ~TcpListener();
  // The bound port (useful after binding port 0).
  std::uint16_t port() const;

  struct Impl;
  explicit TcpListener(Impl* impl);

 private:
  Impl* impl_;
};

}  // namespace salvo::net
