#include "engine/net/tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "engine/net/tcp.h"

namespace salvo::net {
namespace {

namespace fs = std::filesystem;

// One side's state for the in-memory exchange: what it decrypted and how it ended.
struct Side {
  std::string plain;
  TlsStream::Result last = TlsStream::Result::Ok;
  bool established = false;
};

// Hands `cipher` to `to`, whole or one byte at a time; records what came out and appends
// the ciphertext it answers with to `answer`.
void deliver(TlsStream& to, std::string_view cipher, bool byteAtATime, Side& side,
             std::string& answer) {
  auto one = [&](std::string_view piece) {
    const auto r = to.feed(piece, side.plain, answer);
    if (r == TlsStream::Result::Established) {
      side.established = true;
    }
    if (r != TlsStream::Result::Ok && r != TlsStream::Result::Established) {
      side.last = r;
    }
  };
  if (!byteAtATime) {
    one(cipher);
    return;
  }
  for (char c : cipher) {
    one(std::string_view(&c, 1));
    if (side.last == TlsStream::Result::Failed) {
      return;
    }
  }
}

// Moves ciphertext back and forth, starting with `toServer`, until neither side has
// anything more to send.
void exchange(TlsClient& client, TlsServer& server, std::string toServer, Side& c, Side& s,
              bool byteAtATime) {
  for (int round = 0; round < 20 && !toServer.empty(); ++round) {
    std::string toClient;
    deliver(server, toServer, byteAtATime, s, toClient);
    toServer.clear();
    if (toClient.empty()) {
      break;
    }
    deliver(client, toClient, byteAtATime, c, toServer);
  }
}

class TlsMemoryTest : public testing::TestWithParam<bool> {};

INSTANTIATE_TEST_SUITE_P(WholeAndByteAtATime, TlsMemoryTest, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "ByteAtATime" : "Whole";
                         });

TEST_P(TlsMemoryTest, SelfSignedHandshakeThenDataBothWays) {
  const bool byteAtATime = GetParam();
  std::string error;
  auto serverContext = TlsContext::createSelfSignedServer(error);
  ASSERT_NE(serverContext, nullptr) << error;
  auto clientContext = TlsContext::createClient("", error);
  ASSERT_NE(clientContext, nullptr) << error;

  TlsClient client(*clientContext, "localhost", false);
  TlsServer server(*serverContext);
  std::string hello;
  ASSERT_EQ(client.start(hello), TlsStream::Result::Ok) << client.error();
  ASSERT_FALSE(hello.empty());
  Side c;
  Side s;
  exchange(client, server, hello, c, s, byteAtATime);
  ASSERT_TRUE(client.established()) << client.error();
  ASSERT_TRUE(server.established()) << server.error();
  EXPECT_TRUE(c.established);
  EXPECT_TRUE(s.established);
  EXPECT_EQ(client.description().rfind("TLSv1.3 ", 0), 0U) << client.description();
  EXPECT_EQ(server.description(), client.description());

  // Client to server, then the server's answer back.
  std::string cipher;
  ASSERT_EQ(client.write("EHLO client.example\r\n", cipher), TlsStream::Result::Ok);
  std::string ignored;
  deliver(server, cipher, byteAtATime, s, ignored);
  EXPECT_EQ(s.plain, "EHLO client.example\r\n");
  cipher.clear();
  const std::string big(100 * 1024, 'x');  // more than the BIO pair's 17 KiB buffer
  ASSERT_EQ(server.write("250 ok\r\n", cipher), TlsStream::Result::Ok);
  ASSERT_EQ(server.write(big, cipher), TlsStream::Result::Ok);
  deliver(client, cipher, false, c, ignored);
  EXPECT_EQ(c.plain, "250 ok\r\n" + big);
  EXPECT_EQ(c.last, TlsStream::Result::Ok) << client.error();
  EXPECT_EQ(s.last, TlsStream::Result::Ok) << server.error();
}

TEST_P(TlsMemoryTest, VerifyingClientRefusesTheSelfSignedCertificate) {
  std::string error;
  auto serverContext = TlsContext::createSelfSignedServer(error);
  ASSERT_NE(serverContext, nullptr) << error;
  auto clientContext = TlsContext::createClient("", error);
  ASSERT_NE(clientContext, nullptr) << error;
  TlsClient client(*clientContext, "127.0.0.1", true);
  TlsServer server(*serverContext);
  std::string hello;
  ASSERT_EQ(client.start(hello), TlsStream::Result::Ok);
  Side c;
  Side s;
  exchange(client, server, hello, c, s, GetParam());
  EXPECT_FALSE(client.established());
  EXPECT_EQ(c.last, TlsStream::Result::Failed);
  EXPECT_EQ(client.error(),
            "certificate verification failed for 127.0.0.1: self-signed certificate");
}

TEST_P(TlsMemoryTest, ServerFailsOnPlaintext) {
  std::string error;
  auto serverContext = TlsContext::createSelfSignedServer(error);
  ASSERT_NE(serverContext, nullptr) << error;
  TlsServer server(*serverContext);
  Side s;
  std::string answer;
  deliver(server, "EHLO client.example\r\n", GetParam(), s, answer);
  EXPECT_EQ(s.last, TlsStream::Result::Failed);
  EXPECT_FALSE(server.established());
  EXPECT_NE(server.error().find("TLS handshake"), std::string::npos) << server.error();
}

// Certificates made by the openssl command (a Debian package the tests need anyway).
class TlsFilesTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = testing::TempDir() + "tls_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // A self-signed EC certificate for 127.0.0.1 in NAME.pem with its key in NAME.key.
  void makeCert(const std::string& name) {
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -days 1 -subj /CN=127.0.0.1 -addext "
        "subjectAltName=IP:127.0.0.1 -keyout " +
        path(name + ".key") + " -out " + path(name + ".pem") + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(TlsFilesTest, ServerFromFilesPassesVerificationAgainstItsCertificate) {
  makeCert("a");
  std::string error;
  auto serverContext = TlsContext::createServer(path("a.pem"), path("a.key"), error);
  ASSERT_NE(serverContext, nullptr) << error;
  auto clientContext = TlsContext::createClient(path("a.pem"), error);
  ASSERT_NE(clientContext, nullptr) << error;

  TlsClient client(*clientContext, "127.0.0.1", true);
  TlsServer server(*serverContext);
  std::string hello;
  ASSERT_EQ(client.start(hello), TlsStream::Result::Ok);
  Side c;
  Side s;
  exchange(client, server, hello, c, s, false);
  EXPECT_TRUE(client.established()) << client.error();
  EXPECT_TRUE(server.established()) << server.error();

  TlsClient wrongName(*clientContext, "mx.example", true);
  TlsServer server2(*serverContext);
  hello.clear();
  ASSERT_EQ(wrongName.start(hello), TlsStream::Result::Ok);
  Side c2;
  Side s2;
  exchange(wrongName, server2, hello, c2, s2, false);
  EXPECT_FALSE(wrongName.established());
  EXPECT_EQ(wrongName.error(), "certificate verification failed for mx.example: hostname mismatch");
}

TEST_F(TlsFilesTest, BadFilesAreNamed) {
  makeCert("a");
  makeCert("b");
  {
    std::ofstream junk(path("junk.pem"));
    junk << "not a certificate\n";
  }
  std::string error;
  EXPECT_EQ(TlsContext::createServer(path("missing.pem"), path("a.key"), error), nullptr);
  EXPECT_EQ(error, "TLS certificate file " + path("missing.pem") +
                       ": cannot read: No such file or directory");
  EXPECT_EQ(TlsContext::createServer(path("a.pem"), path("missing.key"), error), nullptr);
  EXPECT_EQ(error,
            "TLS key file " + path("missing.key") + ": cannot read: No such file or directory");
  EXPECT_EQ(TlsContext::createServer(path("junk.pem"), path("a.key"), error), nullptr);
  EXPECT_EQ(error.rfind("TLS certificate file " + path("junk.pem") + ": not a PEM certificate", 0),
            0U)
      << error;
  EXPECT_EQ(TlsContext::createServer(path("a.pem"), path("junk.pem"), error), nullptr);
  EXPECT_EQ(error.rfind("TLS key file " + path("junk.pem") + ": not a PEM private key", 0), 0U)
      << error;
  EXPECT_EQ(TlsContext::createServer(path("a.pem"), path("b.key"), error), nullptr);
  EXPECT_EQ(error, "TLS key file " + path("b.key") + " does not match the certificate in " +
                       path("a.pem"));
}

// A TLS echo server on a real socket: every decrypted byte goes back encrypted.
class EchoServer : public TcpHandler {
 public:
  EchoServer(TlsContext& context, std::unique_ptr<TcpConnection> tcp)
      : tls_(context), tcp_(std::move(tcp)) {
    tcp_->start(*this);
  }
  void onConnect(const std::string&) override {}
  void onData(std::string_view bytes) override {
    std::string plain;
    std::string out;
    const auto r = tls_.feed(bytes, plain, out);
    ASSERT_NE(r, TlsStream::Result::Failed) << tls_.error();
    if (!plain.empty()) {
      ASSERT_EQ(tls_.write(plain, out), TlsStream::Result::Ok) << tls_.error();
    }
    tcp_->write(out);
  }
  void onClosed(const std::string&) override {}

 private:
  TlsServer tls_;
  std::unique_ptr<TcpConnection> tcp_;
};

class EchoClient : public TcpHandler {
 public:
  EchoClient(TlsContext& context, EventLoop& loop)
      : tls_(context, "localhost", false), loop_(loop) {}
  void attach(TcpConnection& tcp) { tcp_ = &tcp; }
  void onConnect(const std::string& error) override {
    ASSERT_EQ(error, "");
    std::string out;
    ASSERT_EQ(tls_.start(out), TlsStream::Result::Ok);
    tcp_->write(out);
  }
  void onData(std::string_view bytes) override {
    std::string out;
    const auto r = tls_.feed(bytes, received, out);
    ASSERT_NE(r, TlsStream::Result::Failed) << tls_.error();
    if (r == TlsStream::Result::Established) {
      ASSERT_EQ(tls_.write(kMessage, out), TlsStream::Result::Ok);
    }
    tcp_->write(out);
    if (received.size() >= kMessage.size()) {
      loop_.stop();
    }
  }
  void onClosed(const std::string& error) override {
    ADD_FAILURE() << "closed: " << error;
    loop_.stop();
  }

  static constexpr std::string_view kMessage = "EHLO over TLS on a real socket\r\n";
  std::string received;

 private:
  TlsClient tls_;
  EventLoop& loop_;
  TcpConnection* tcp_ = nullptr;
};

TEST(TlsSocketTest, HandshakeAndEchoOverLoopback) {
  std::string error;
  auto serverContext = TlsContext::createSelfSignedServer(error);
  ASSERT_NE(serverContext, nullptr) << error;
  auto clientContext = TlsContext::createClient("", error);
  ASSERT_NE(clientContext, nullptr) << error;

  EventLoop loop;
  Timer watchdog(loop);
  watchdog.start(30'000, 0, [&loop] {
    ADD_FAILURE() << "the echo never came";
    loop.stop();
  });
  std::unique_ptr<EchoServer> server;
  auto listener = TcpListener::listen(
      loop, *Endpoint::fromIp("127.0.0.1", 0), false,
      [&](std::unique_ptr<TcpConnection> tcp) {
        server = std::make_unique<EchoServer>(*serverContext, std::move(tcp));
      },
      error);
  ASSERT_NE(listener, nullptr) << error;
  EchoClient client(*clientContext, loop);
  auto tcp =
      TcpConnection::connect(loop, *Endpoint::fromIp("127.0.0.1", listener->port()), client, 5000);
  client.attach(*tcp);
  loop.run();
  EXPECT_EQ(client.received, EchoClient::kMessage);
}

}  // namespace
}  // namespace salvo::net
