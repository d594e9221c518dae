#include "engine/net/tcp.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace salvo::net {
namespace {

// A handler whose reactions are set per test; it records every callback.
class Recorder : public TcpHandler {
 public:
  std::function<void(const std::string&)> connected;
  std::function<void(std::string_view)> data;
  std::function<void(const std::string&)> closed;
  std::function<void()> drained;

  int connects = 0;
  int closes = 0;
  int drains = 0;
  std::string connectError;
  std::string closeError;
  std::string received;

  void onConnect(const std::string& error) override {
    ++connects;
    connectError = error;
    if (connected) {
      connected(error);
    }
  }
  void onData(std::string_view bytes) override {
    received.append(bytes);
    if (data) {
      data(bytes);
    }
  }
  void onDrained() override {
    ++drains;
    if (drained) {
      drained();
    }
  }
  void onClosed(const std::string& error) override {
    ++closes;
    closeError = error;
    if (closed) {
      closed(error);
    }
  }
};

Endpoint loopback(std::uint16_t port) {
  return *Endpoint::fromIp("127.0.0.1", port);
}

// Fails the test instead of hanging when an awaited event never comes.
class Watchdog {
 public:
  explicit Watchdog(EventLoop& loop) : timer_(loop) {
    timer_.start(30'000, 0, [&loop] {
      ADD_FAILURE() << "the awaited event never came";
      loop.stop();
    });
  }

 private:
  Timer timer_;
};

// A listener on 127.0.0.1:0 that keeps every accepted connection with its own handler.
struct Server {
  explicit Server(EventLoop& loop) {
    std::string error;
    listener = TcpListener::listen(
        loop, loopback(0), false,
        [this](std::unique_ptr<TcpConnection> conn) {
          auto handler = std::make_unique<Recorder>();
          if (onAccept) {
            onAccept(*conn, *handler);
          }
          conn->start(*handler);
          connections.push_back(std::move(conn));
          handlers.push_back(std::move(handler));
        },
        error);
    EXPECT_NE(listener, nullptr) << error;
    EXPECT_EQ(error, "");
  }
  std::uint16_t port() const { return listener->port(); }

  std::function<void(TcpConnection&, Recorder&)> onAccept;
  std::unique_ptr<TcpListener> listener;
  std::vector<std::unique_ptr<TcpConnection>> connections;
  std::vector<std::unique_ptr<Recorder>> handlers;
};

TEST(TcpTest, ListenerOnPortZeroReportsTheBoundPort) {
  EventLoop loop;
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  EXPECT_NE(server.port(), 0);
}

TEST(TcpTest, EchoOverLoopback) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  std::string acceptedPeer;
  server.onAccept = [&](TcpConnection& conn, Recorder& handler) {
    acceptedPeer = conn.peer();
    TcpConnection* c = &conn;
    handler.data = [c](std::string_view bytes) { c->write(bytes); };
  };

  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string& error) {
    ASSERT_EQ(error, "");
    conn->write("hello, ");
    conn->write("world\r\n");
  };
  client.data = [&](std::string_view) {
    if (client.received.size() >= 14) {
      loop.stop();
    }
  };
  loop.run();

  EXPECT_EQ(client.connects, 1);
  EXPECT_EQ(client.received, "hello, world\r\n");
  EXPECT_EQ(conn->peer(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(acceptedPeer.rfind("127.0.0.1:", 0), 0U) << acceptedPeer;
  EXPECT_TRUE(conn->open());
  EXPECT_EQ(conn->bytesWritten(), 14U);
  EXPECT_EQ(conn->bytesRead(), 14U);
  EXPECT_EQ(client.closes, 0);
}

TEST(TcpTest, ManySmallWritesAreGatheredAndArriveIntact) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);

  std::string expected;
  for (int i = 0; i < 20000; ++i) {
    expected += "RCPT TO:<user" + std::to_string(i) + "@example.com>\r\n";
  }
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    Recorder* h = &handler;
    handler.data = [&, h](std::string_view) {
      if (h->received.size() >= expected.size()) {
        loop.stop();
      }
    };
  };

  Recorder client;
  std::size_t queuedAfterWrites = 0;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string& error) {
    ASSERT_EQ(error, "");
    for (int i = 0; i < 20000; ++i) {
      conn->write("RCPT TO:<user" + std::to_string(i) + "@example.com>\r\n");
    }
    // Nothing was sent yet: the writes wait for the end of the loop iteration.
    queuedAfterWrites = conn->queuedBytes();
  };
  loop.run();

  EXPECT_EQ(queuedAfterWrites, expected.size());
  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->received, expected);
  EXPECT_EQ(conn->bytesWritten(), expected.size());
  EXPECT_EQ(conn->queuedBytes(), 0U);
}

TEST(TcpTest, LargeWriteThenCloseDeliversEverythingThenEof) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    handler.closed = [&](const std::string&) { loop.stop(); };
  };

  // Larger than the socket buffers, so uv_try_write takes only part and uv_write the rest.
  std::string big(16 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string& error) {
    ASSERT_EQ(error, "");
    conn->write(big);
    conn->close();
  };
  loop.run();

  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->received.size(), big.size());
  EXPECT_TRUE(server.handlers[0]->received == big);
  EXPECT_EQ(server.handlers[0]->closes, 1);
  EXPECT_EQ(server.handlers[0]->closeError, "connection closed by peer");
  EXPECT_EQ(client.closes, 0);  // no callbacks after close()
  EXPECT_FALSE(conn->open());
}

// onDrained() comes once, after notifyDrained(), when a write larger than the socket
// buffers has been taken by the kernel completely; with nothing queued, on the next turn.
TEST(TcpTest, NotifyDrainedAfterALargeWrite) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  std::string big(8 * 1024 * 1024, 'x');
  Recorder client;
  // Both events are awaited: the last read and the write callback may come in either order.
  const auto stopWhenDone = [&] {
    if (client.drains == 2 && server.handlers.size() == 1 &&
        server.handlers[0]->received.size() == big.size()) {
      loop.stop();
    }
  };
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    handler.data = [&](std::string_view) { stopWhenDone(); };
  };
  std::size_t queuedAtDrain = 1;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string& error) {
    ASSERT_EQ(error, "");
    conn->notifyDrained();  // nothing queued: reported on the next turn of the loop
  };
  client.drained = [&] {
    queuedAtDrain = conn->queuedBytes();
    if (client.drains == 1) {
      conn->write(big);
      conn->notifyDrained();
    }
    stopWhenDone();
  };
  loop.run();
  EXPECT_EQ(client.drains, 2);
  EXPECT_EQ(queuedAtDrain, 0U);
  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->received.size(), big.size());
  EXPECT_EQ(server.handlers[0]->drains, 0);  // never asked for
}

TEST(TcpTest, WritesBeforeConnectGoOutOnceConnected) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    Recorder* h = &handler;
    handler.data = [&, h](std::string_view) {
      if (h->received == "early") {
        loop.stop();
      }
    };
  };
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  conn->write("early");
  EXPECT_FALSE(conn->open());
  loop.run();
  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->received, "early");
}

TEST(TcpTest, WriteFromATimerIsFlushedWithoutOtherTraffic) {
  // A timer callback runs outside the poll phase; the flush must not wait for the next
  // I/O event.
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    handler.data = [&](std::string_view) { loop.stop(); };
  };
  Recorder client;
  Timer timer(loop);
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string&) { timer.start(1, 0, [&] { conn->write("tick"); }); };
  loop.run();
  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->received, "tick");
}

TEST(TcpTest, ConnectRefusedIsReportedWithTheLibuvError) {
  EventLoop loop;
  Watchdog watchdog(loop);
  std::uint16_t port = 0;
  {
    // Take a free port, then release it so nothing listens there.
    Server probe(loop);
    ASSERT_NE(probe.listener, nullptr);
    port = probe.port();
  }
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(port), client, 5000);
  client.connected = [&](const std::string&) { loop.stop(); };
  loop.run();
  EXPECT_EQ(client.connects, 1);
  EXPECT_EQ(client.connectError,
            "connect 127.0.0.1:" + std::to_string(port) + ": connection refused");
  EXPECT_EQ(client.closes, 0);
  EXPECT_FALSE(conn->open());
}

TEST(TcpTest, PeerCloseIsReportedOnce) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection& conn, Recorder&) {
    conn.write("bye\r\n");
    conn.close();
  };
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.closed = [&](const std::string&) {
    conn->write("ignored after close");
    conn->close();
    // Stop on a later iteration, so that a second report would have had its chance.
    loop.post([&] { loop.post([&] { loop.stop(); }); });
  };
  loop.run();
  EXPECT_EQ(client.received, "bye\r\n");
  EXPECT_EQ(client.closes, 1);
  EXPECT_EQ(client.closeError, "connection closed by peer");
  // The object outlives its socket and stays safe to use.
  EXPECT_FALSE(conn->open());
  conn->write("more");
  conn->flush();
  conn->close();
  EXPECT_EQ(conn->queuedBytes(), 0U);
  EXPECT_EQ(conn->bytesRead(), 5U);
  EXPECT_EQ(conn->peer(), "127.0.0.1:" + std::to_string(server.port()));
}

TEST(TcpTest, DestroyingTheConnectionInsideOnDataStopsCallbacks) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection& conn, Recorder& handler) {
    conn.write("first\r\n");
    // The client destroys its end on the first bytes; the server then sees EOF.
    handler.closed = [&](const std::string&) { loop.stop(); };
  };
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.data = [&](std::string_view) {
    conn->write("last words\r\n");
    conn.reset();
  };
  loop.run();
  EXPECT_EQ(conn, nullptr);
  EXPECT_EQ(client.received, "first\r\n");
  EXPECT_EQ(client.closes, 0);
  ASSERT_EQ(server.handlers.size(), 1U);
  // Destroying a connection closes it like close(): queued bytes still go out.
  EXPECT_EQ(server.handlers[0]->received, "last words\r\n");
  EXPECT_EQ(server.handlers[0]->closeError, "connection closed by peer");
}

TEST(TcpTest, DestroyingTheConnectionInsideOnConnectIsSafe) {
  EventLoop loop;
  Watchdog watchdog(loop);
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  server.onAccept = [&](TcpConnection&, Recorder& handler) {
    handler.closed = [&](const std::string&) { loop.stop(); };
  };
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  client.connected = [&](const std::string&) { conn.reset(); };
  loop.run();
  EXPECT_EQ(client.connects, 1);
  EXPECT_EQ(client.closes, 0);
  ASSERT_EQ(server.handlers.size(), 1U);
  EXPECT_EQ(server.handlers[0]->closes, 1);
}

TEST(TcpTest, DestroyingAPendingConnectMakesNoCallback) {
  EventLoop loop;
  Server server(loop);
  ASSERT_NE(server.listener, nullptr);
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(server.port()), client, 5000);
  conn.reset();
  // Let the loop turn over a few times; the cancelled connect must stay silent.
  loop.post([&] { loop.post([&] { loop.stop(); }); });
  loop.run();
  EXPECT_EQ(client.connects, 0);
  EXPECT_EQ(client.closes, 0);
}

TEST(TcpTest, DestroyingTheListenerInsideAcceptIsSafe) {
  EventLoop loop;
  Watchdog watchdog(loop);
  std::string error;
  std::unique_ptr<TcpConnection> accepted;
  std::unique_ptr<TcpListener> listener;
  listener = TcpListener::listen(
      loop, loopback(0), false,
      [&](std::unique_ptr<TcpConnection> conn) {
        accepted = std::move(conn);
        listener.reset();
        loop.stop();
      },
      error);
  ASSERT_NE(listener, nullptr) << error;
  Recorder client;
  auto conn = TcpConnection::connect(loop, loopback(listener->port()), client, 5000);
  loop.run();
  EXPECT_EQ(listener, nullptr);
  ASSERT_NE(accepted, nullptr);
  EXPECT_TRUE(accepted->open());
}

TEST(TcpTest, TwoListenersShareAPortWithReusePort) {
  EventLoop loop;
  std::string error;
  auto first = TcpListener::listen(
      loop, loopback(0), true, [](std::unique_ptr<TcpConnection>) {}, error);
  ASSERT_NE(first, nullptr) << error;
  std::uint16_t port = first->port();
  auto second = TcpListener::listen(
      loop, loopback(port), true, [](std::unique_ptr<TcpConnection>) {}, error);
  ASSERT_NE(second, nullptr) << error;
  EXPECT_EQ(second->port(), port);

  // Without SO_REUSEPORT the port is taken.
  auto third = TcpListener::listen(
      loop, loopback(port), false, [](std::unique_ptr<TcpConnection>) {}, error);
  EXPECT_EQ(third, nullptr);
  EXPECT_EQ(error, "listen 127.0.0.1:" + std::to_string(port) + ": address already in use");
}

TEST(TcpTest, ListenOnAnAddressThisHostDoesNotHaveFails) {
  EventLoop loop;
  std::string error;
  // 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
  auto listener = TcpListener::listen(
      loop, *Endpoint::fromIp("192.0.2.1", 0), false, [](std::unique_ptr<TcpConnection>) {}, error);
  EXPECT_EQ(listener, nullptr);
  EXPECT_EQ(error, "listen 192.0.2.1:0: address not available");
}

}  // namespace
}  // namespace salvo::net
