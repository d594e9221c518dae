#include "bench/sink.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/sink_main.h"
#include "engine/net/tls.h"

namespace salvo::bench {
namespace {

namespace fs = std::filesystem;

// A plain blocking client in the test thread. The receive timeout only turns a hang
// into a failure.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "send failed";
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads until `count` complete replies (a final line is "NNN " + text) have arrived and
  // returns their text.
  std::string readReplies(int count) {
    std::size_t pos = 0;
    int seen = 0;
    while (seen < count) {
      std::size_t nl = buffer_.find("\r\n", pos);
      if (nl == std::string::npos) {
        if (!fill()) {
          ADD_FAILURE() << "connection ended after " << seen << " of " << count << " replies";
          break;
        }
        continue;
      }
      if (nl - pos >= 4 && buffer_[pos + 3] == ' ') {
        ++seen;
      }
      pos = nl + 2;
    }
    std::string replies = buffer_.substr(0, pos);
    buffer_.erase(0, pos);
    return replies;
  }

  // Whatever is buffered, else the next read ("" when the server closed).
  std::string receive() {
    if (buffer_.empty()) {
      fill();
    }
    return std::exchange(buffer_, {});
  }

  // Reads until the server closes; returns anything that came before.
  std::string readToEof() {
    while (fill()) {
    }
    return std::exchange(buffer_, {});
  }

 private:
  bool fill() {
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<fs::path> listDir(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    out.push_back(entry.path());
  }
  return out;
}

bool allDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// "<unix ms>.<pid>_<counter>.salvo-sink" (std::regex trips GCC 12 warnings under ASan).
bool isMaildirName(std::string_view name, int counter) {
  std::string suffix = "_" + std::to_string(counter) + ".salvo-sink";
  if (name.size() <= suffix.size() || !name.ends_with(suffix)) {
    return false;
  }
  name.remove_suffix(suffix.size());
  std::size_t dot = name.find('.');
  return dot == 13 && allDigits(name.substr(0, dot)) && allDigits(name.substr(dot + 1)) &&
         name.substr(dot + 1) == std::to_string(::getpid());
}

class SinkTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = testing::TempDir() + "sink_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;
};

const char* kEhloReply =
    "250-salvo-sink\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 67108864\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250 SMTPUTF8\r\n";

TEST_F(SinkTest, PipelinedTransactionLandsInTheMaildir) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.maildir = (dir_ / "mail").string();  // created by start()
  options.rejectRcpt = {"nobody"};
  options.deferRcpt = {"later"};
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  ASSERT_NE(sink.port(), 0);
  EXPECT_EQ(sink.endpoint().str(), "127.0.0.1:" + std::to_string(sink.port()));

  Client client(sink.port());
  ASSERT_TRUE(client.connected());
  EXPECT_EQ(client.readReplies(1), "220 salvo-sink ESMTP salvo-sink\r\n");
  client.send(
      "EHLO test.example\r\n"
      "MAIL FROM:<alice@example.com>\r\n"
      "RCPT TO:<bob@example.net>\r\n"
      "RCPT TO:<nobody@example.net>\r\n"
      "RCPT TO:<later@example.net>\r\n"
      "RCPT TO:<carol@example.net>\r\n"
      "DATA\r\n");
  EXPECT_EQ(client.readReplies(7), std::string(kEhloReply) +
                                       "250 2.1.0 Ok\r\n"
                                       "250 2.1.5 Ok\r\n"
                                       "550 5.1.1 <nobody@example.net>: mailbox unavailable\r\n"
                                       "451 4.3.0 <later@example.net>: try again later\r\n"
                                       "250 2.1.5 Ok\r\n"
                                       "354 End data with <CR><LF>.<CR><LF>\r\n");
  const std::string data = "Subject: test\r\n\r\n.dotted\r\nbody\r\n";
  client.send("Subject: test\r\n\r\n..dotted\r\nbody\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(client.readReplies(2), "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
  EXPECT_EQ(client.readToEof(), "");

  // The 250 came after the file was renamed into new/.
  auto files = listDir(dir_ / "mail" / "new");
  ASSERT_EQ(files.size(), 1U);
  EXPECT_TRUE(isMaildirName(files[0].filename().string(), 1)) << files[0];
  EXPECT_EQ(readFile(files[0]),
            "Return-Path: <alice@example.com>\r\n"
            "Delivered-To: bob@example.net\r\n"
            "Delivered-To: carol@example.net\r\n" +
                data);
  EXPECT_TRUE(listDir(dir_ / "mail" / "tmp").empty());
  EXPECT_TRUE(listDir(dir_ / "mail" / "cur").empty());

  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.connections, 1U);
  EXPECT_EQ(stats.messages, 1U);
  EXPECT_EQ(stats.recipients, 2U);
  EXPECT_EQ(stats.rejected, 1U);
  EXPECT_EQ(stats.deferred, 1U);
  EXPECT_EQ(stats.bytes, data.size());
}

TEST_F(SinkTest, CountsManyMessagesOnConcurrentConnections) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;

  const int kMessages = 50;
  std::string batch = "EHLO c\r\n";
  for (int i = 0; i < kMessages; ++i) {
    batch +=
        "MAIL FROM:<s@x>\r\nRCPT TO:<r" + std::to_string(i) + "@y>\r\nDATA\r\n0123456789\r\n.\r\n";
  }
  Client a(sink.port());
  Client b(sink.port());
  ASSERT_TRUE(a.connected());
  ASSERT_TRUE(b.connected());
  a.send(batch);
  b.send(batch);
  for (Client* c : {&a, &b}) {
    std::string replies = c->readReplies(2 + 4 * kMessages);
    std::size_t queued = 0;
    for (std::size_t p = replies.find("250 2.0.0 Ok: queued"); p != std::string::npos;
         p = replies.find("250 2.0.0 Ok: queued", p + 1)) {
      ++queued;
    }
    EXPECT_EQ(queued, static_cast<std::size_t>(kMessages));
    c->send("QUIT\r\n");
    EXPECT_EQ(c->readReplies(1), "221 2.0.0 Bye\r\n");
  }
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.connections, 2U);
  EXPECT_EQ(stats.messages, 2U * kMessages);
  EXPECT_EQ(stats.recipients, 2U * kMessages);
  EXPECT_EQ(stats.bytes, 2U * kMessages * 12);
  EXPECT_EQ(stats.rejected, 0U);
}

TEST_F(SinkTest, FailedMaildirWriteIsA451) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.maildir = (dir_ / "mail").string();
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  fs::remove(dir_ / "mail" / "tmp");

  Client client(sink.port());
  client.readReplies(1);
  client.send("HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n");
  std::string replies = client.readReplies(5);
  std::string expectedPrefix =
      "250 salvo-sink\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
      "354 End data with <CR><LF>.<CR><LF>\r\n"
      "451 4.3.0 cannot create " +
      (dir_ / "mail").string() + "/tmp/";
  EXPECT_EQ(replies.substr(0, expectedPrefix.size()), expectedPrefix) << replies;
  EXPECT_NE(replies.find(": No such file or directory\r\n"), std::string::npos) << replies;
  EXPECT_EQ(sink.stats().messages, 0U);
}

TEST_F(SinkTest, StopClosesOpenConnections) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  EXPECT_EQ(client.readReplies(1), "220 salvo-sink ESMTP salvo-sink\r\n");
  sink.stop();
  EXPECT_EQ(client.readToEof(), "");
  sink.stop();  // idempotent
  EXPECT_EQ(sink.stats().connections, 1U);
}

TEST_F(SinkTest, StartFailsWhenThePortIsTaken) {
  Sink::Options first;
  first.listen = "127.0.0.1:0";
  Sink taken(first);
  std::string error;
  ASSERT_TRUE(taken.start(error)) << error;

  Sink::Options options;
  options.listen = "127.0.0.1:" + std::to_string(taken.port());
  Sink sink(options);
  EXPECT_FALSE(sink.start(error));
  EXPECT_EQ(error, "listen " + options.listen + ": address already in use");
}

TEST_F(SinkTest, BadListenAddresses) {
  std::string error;
  Sink::Options options;
  options.listen = "localhost:2525";
  EXPECT_FALSE(Sink(options).start(error));
  EXPECT_EQ(error, "bad listen address \"localhost:2525\": \"localhost\" is not an IP address");
  options.listen = "127.0.0.1";
  EXPECT_FALSE(Sink(options).start(error));
  EXPECT_EQ(error,
            "bad listen address \"127.0.0.1\": expected IP:PORT or [IPv6]:PORT, e.g. "
            "127.0.0.1:2525");
}

TEST_F(SinkTest, MaildirThatCannotBeCreated) {
  std::ofstream(dir_ / "file") << "not a directory";
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.maildir = (dir_ / "file" / "mail").string();
  Sink sink(options);
  std::string error;
  EXPECT_FALSE(sink.start(error));
  EXPECT_EQ(error.rfind("cannot create maildir " + options.maildir + "/tmp: ", 0), 0U) << error;
}

// --- runSinkCommand ---

TEST_F(SinkTest, CommandServesUntilSigtermAndWritesStats) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  std::ostringstream out;
  std::ostringstream err;
  std::uint16_t port = 0;
  std::string statsPath = (dir_ / "stats.json").string();
  int rc = runSinkCommand(options, statsPath, out, err, [&](std::uint16_t p) {
    port = p;
    {
      Client client(p);
      client.readReplies(1);
      client.send(
          "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
          "hello\r\n.\r\nQUIT\r\n");
      std::string replies = client.readReplies(7);
      std::string tail = "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n";
      EXPECT_TRUE(replies.ends_with(tail)) << replies;
      client.readToEof();
    }
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(rc, 0) << err.str();
  EXPECT_EQ(err.str(), "");
  EXPECT_EQ(out.str(),
            "salvo sink: listening on 127.0.0.1:" + std::to_string(port) +
                "\n"
                "salvo sink: 1 messages, 2 recipients, 0 rejected, 0 deferred, 7 bytes\n");
  EXPECT_EQ(readFile(statsPath),
            "{\"connections\": 1, \"messages\": 1, \"recipients\": 2, \"rejected\": 0, "
            "\"deferred\": 0, \"bytes\": 7, \"faults4xx\": 0, \"faults5xx\": 0, "
            "\"rateLimited\": 0, \"connectionLimited\": 0, \"dropped\": 0, "
            "\"delayedGreetings\": 0, \"tls\": 0, \"tlsFailed\": 0}\n");
}

TEST_F(SinkTest, CommandRejectsAMalformedAddressWith78) {
  Sink::Options options;
  options.listen = "nonsense";
  std::ostringstream out;
  std::ostringstream err;
  int rc = runSinkCommand(options, "", out, err, nullptr);
  EXPECT_EQ(rc, 78);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            "salvo sink: bad listen address \"nonsense\": expected IP:PORT or [IPv6]:PORT, e.g. "
            "127.0.0.1:2525\n");
}

TEST_F(SinkTest, CommandReportsAPortInUseWith74) {
  Sink::Options first;
  first.listen = "127.0.0.1:0";
  Sink taken(first);
  std::string error;
  ASSERT_TRUE(taken.start(error)) << error;

  Sink::Options options;
  options.listen = "127.0.0.1:" + std::to_string(taken.port());
  std::ostringstream out;
  std::ostringstream err;
  int rc = runSinkCommand(options, "", out, err, nullptr);
  EXPECT_EQ(rc, 74);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), "salvo sink: listen " + options.listen + ": address already in use\n");
}

TEST_F(SinkTest, CommandReportsAnUnwritableStatsFileWith74) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  std::ostringstream out;
  std::ostringstream err;
  std::string statsPath = (dir_ / "missing" / "stats.json").string();
  int rc = runSinkCommand(options, statsPath, out, err,
                          [](std::uint16_t) { ::kill(::getpid(), SIGINT); });
  EXPECT_EQ(rc, 74);
  EXPECT_EQ(err.str(),
            "salvo sink: cannot write stats to " + statsPath + ": No such file or directory\n");
  EXPECT_NE(out.str().find("salvo sink: 0 messages, 0 recipients"), std::string::npos) << out.str();
}

TEST_F(SinkTest, ManyLoopsShareThePortAndCountExactly) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.threads = 4;
  options.maildir = (dir_ / "mail").string();
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  EXPECT_EQ(sink.threads(), 4U);
  constexpr int kClients = 24;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(sink.port()));
    ASSERT_TRUE(clients.back()->connected());
  }
  for (int i = 0; i < kClients; ++i) {
    Client& c = *clients[static_cast<std::size_t>(i)];
    c.readReplies(1);
    c.send("EHLO t\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b" + std::to_string(i) +
           "@y.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\n");
  }
  for (auto& c : clients) {
    EXPECT_NE(c->readReplies(5).find("354 "), std::string::npos);
    c->send("Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  }
  for (auto& c : clients) {
    EXPECT_EQ(c->readReplies(2), "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
    EXPECT_EQ(c->readToEof(), "");
  }
  sink.stop();
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.connections, std::uint64_t{kClients});
  EXPECT_EQ(stats.messages, std::uint64_t{kClients});
  EXPECT_EQ(stats.recipients, std::uint64_t{2 * kClients});
  EXPECT_EQ(stats.bytes,
            std::uint64_t{kClients} * std::string("Subject: s\r\n\r\nbody\r\n").size());
  // Maildir names stay unique across loops.
  EXPECT_EQ(listDir(dir_ / "mail" / "new").size(), std::size_t{kClients});
}

TEST_F(SinkTest, ManyLoopsStillRefuseAPortInUse) {
  for (unsigned takenThreads : {1U, 2U}) {
    Sink::Options first;
    first.listen = "127.0.0.1:0";
    first.threads = takenThreads;
    Sink taken(first);
    std::string error;
    ASSERT_TRUE(taken.start(error)) << error;

    Sink::Options options;
    options.listen = "127.0.0.1:" + std::to_string(taken.port());
    options.threads = 3;
    Sink sink(options);
    EXPECT_FALSE(sink.start(error));
    EXPECT_EQ(error, "listen " + options.listen + ": address already in use");
    EXPECT_EQ(sink.threads(), 0U);
  }
}

TEST_F(SinkTest, DefaultIsOneLoopPerCore) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  EXPECT_EQ(sink.threads(), std::max(1U, std::thread::hardware_concurrency()));
}

// --- fault injection ---

Sink::Options faultOptions() {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.threads = 1;
  return options;
}

const char* kTwoMessages =
    "EHLO c\r\n"
    "MAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\none\r\n.\r\n"
    "MAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\ntwo\r\n.\r\n"
    "QUIT\r\n";

const char* kFirstMessageReplies =
    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    "250 2.0.0 Ok: queued\r\n";

TEST_F(SinkTest, DelayedGreetingDoesNotHoldUpOtherConnections) {
  // One loop; a seed under which connection 0 is kept (and waits a minute for its
  // greeting) and connection 1 is dropped. Connection 1 sees its socket closed while
  // connection 0 still waits: the delay is a timer, not a stalled loop (a sleep would
  // hold the close back past the client's 30 s receive timeout).
  Sink::Options options = faultOptions();
  options.greetingDelayMs = 60000;
  options.dropFraction = 0.5;
  for (options.seed = 1; options.seed < 1000; ++options.seed) {
    if (faultHash(options.seed, "connection 0") >= 0.5 &&
        faultHash(options.seed, "connection 1") < 0.5) {
      break;
    }
  }
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client waiting(sink.port());
  ASSERT_TRUE(waiting.connected());
  waiting.send("EHLO early\r\n");  // before the greeting: held until it is sent
  Client dropped(sink.port());
  ASSERT_TRUE(dropped.connected());
  EXPECT_EQ(dropped.readToEof(), "");
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.dropped, 1U);
  EXPECT_EQ(stats.delayedGreetings, 0U);
  EXPECT_EQ(stats.connections, 2U);
  sink.stop();
  EXPECT_EQ(waiting.readToEof(), "");  // never greeted, never answered
}

TEST_F(SinkTest, DelayedGreetingThenCommandsSentEarlyAreServed) {
  Sink::Options options = faultOptions();
  options.greetingDelayMs = 20;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  client.send("EHLO early\r\nQUIT\r\n");
  EXPECT_EQ(client.readToEof(),
            "220 salvo-sink ESMTP salvo-sink\r\n" + std::string(kEhloReply) + "221 2.0.0 Bye\r\n");
  EXPECT_EQ(sink.stats().delayedGreetings, 1U);
}

TEST_F(SinkTest, DropAfterClosesTheSocketWithoutAReply) {
  Sink::Options options = faultOptions();
  options.dropAfter = 1;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  client.readReplies(1);
  client.send(kTwoMessages);
  EXPECT_EQ(client.readToEof(), std::string(kEhloReply) + kFirstMessageReplies);
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.messages, 1U);
  EXPECT_EQ(stats.dropped, 1U);
}

TEST_F(SinkTest, DropFractionOneClosesEveryConnectionAtOnce) {
  Sink::Options options = faultOptions();
  options.dropFraction = 1.0;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  for (int i = 0; i < 3; ++i) {
    Client client(sink.port());
    EXPECT_EQ(client.readToEof(), "");
  }
  EXPECT_EQ(sink.stats().dropped, 3U);
}

// The two rate-limit tests assume the pipelined group is served within one second (it
// takes about a millisecond): both MAILs then fall in the same one-second window.
TEST_F(SinkTest, PerConnectionRateLimitAnswers421AndCloses) {
  Sink::Options options = faultOptions();
  options.connectionRate = 1;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  client.readReplies(1);
  client.send(kTwoMessages);
  EXPECT_EQ(client.readToEof(), std::string(kEhloReply) + kFirstMessageReplies +
                                    "421 4.7.0 rate limited, slow down\r\n");
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.messages, 1U);
  EXPECT_EQ(stats.rateLimited, 1U);
}

TEST_F(SinkTest, SinkWideRateLimitCountsEveryConnection) {
  Sink::Options options = faultOptions();
  options.threads = 2;
  options.rateLimit = 1;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  const std::string one =
      "EHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
  Client first(sink.port());
  first.readReplies(1);
  first.send(one);
  EXPECT_EQ(first.readToEof(),
            std::string(kEhloReply) + kFirstMessageReplies + "221 2.0.0 Bye\r\n");
  Client second(sink.port());
  second.readReplies(1);
  second.send(one);
  EXPECT_EQ(second.readToEof(), std::string(kEhloReply) + "421 4.7.0 rate limited, slow down\r\n");
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.messages, 1U);
  EXPECT_EQ(stats.rateLimited, 1U);
}

TEST_F(SinkTest, ProfilesAndExplicitOverrides) {
  Sink::Profile p;
  std::string error;
  Sink::Options options;
  ASSERT_TRUE(Sink::resolveFaults(options, p, error)) << error;
  EXPECT_TRUE(p.faults.empty());  // accept-all
  EXPECT_EQ(p.greetingDelayMs, 0U);
  EXPECT_EQ(p.connectionRate, 0);

  options.profile = "realistic";
  ASSERT_TRUE(Sink::resolveFaults(options, p, error)) << error;
  ASSERT_EQ(p.faults.size(), 4U);
  EXPECT_EQ(p.faults[0].domains, (std::vector<std::string>{"gmail", "googlemail"}));
  EXPECT_TRUE(p.faults.back().domains.empty());  // the catch-all
  EXPECT_GT(p.greetingDelayMs, 0U);
  EXPECT_GT(p.connectionRate, 0);

  options.rejectFraction = 0;
  options.greetingDelayMs = 0;
  options.connectionRate = 0;
  ASSERT_TRUE(Sink::resolveFaults(options, p, error)) << error;
  for (const auto& entry : p.faults) {
    EXPECT_EQ(entry.rejectFraction, 0);
    EXPECT_GT(entry.deferFraction, 0);  // still the profile's
  }
  EXPECT_EQ(p.greetingDelayMs, 0U);
  EXPECT_EQ(p.connectionRate, 0);

  Sink::Options plain;
  plain.deferFraction = 0.25;  // no table in accept-all: a catch-all entry is added
  ASSERT_TRUE(Sink::resolveFaults(plain, p, error)) << error;
  ASSERT_EQ(p.faults.size(), 1U);
  EXPECT_TRUE(p.faults[0].domains.empty());
  EXPECT_EQ(p.faults[0].deferFraction, 0.25);
  EXPECT_EQ(p.faults[0].rejectFraction, 0);
}

TEST_F(SinkTest, BadFaultOptionsAreNamed) {
  Sink::Profile p;
  std::string error;
  Sink::Options options;
  options.profile = "chaos";
  EXPECT_FALSE(Sink::resolveFaults(options, p, error));
  EXPECT_EQ(error, "--profile \"chaos\": expected accept-all or realistic");
  options = Sink::Options{};
  options.deferFraction = 1.5;
  EXPECT_FALSE(Sink::resolveFaults(options, p, error));
  EXPECT_EQ(error, "--defer-fraction 1.5: expected a fraction between 0 and 1");
  options = Sink::Options{};
  options.rateLimit = -1;
  EXPECT_FALSE(Sink::resolveFaults(options, p, error));
  EXPECT_EQ(error, "--rate-limit -1: expected messages per second, 0 or more");
  EXPECT_FALSE(Sink(options).start(error));

  std::ostringstream out;
  std::ostringstream err;
  options.listen = "127.0.0.1:0";
  EXPECT_EQ(runSinkCommand(options, "", out, err, nullptr), kSinkExitConfig);
  EXPECT_EQ(err.str(), "salvo sink: --rate-limit -1: expected messages per second, 0 or more\n");
}

TEST_F(SinkTest, CommandPrintsTheFaultSummary) {
  Sink::Options options = faultOptions();
  options.dropFraction = 1.0;
  std::ostringstream out;
  std::ostringstream err;
  int rc = runSinkCommand(options, "", out, err, [&](std::uint16_t p) {
    {
      Client client(p);
      client.readToEof();
    }
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(rc, 0) << err.str();
  EXPECT_NE(out.str().find("salvo sink: faults: 0 4xx, 0 5xx, 0 rate limited, 0 connection "
                           "limited, 1 dropped, 0 delayed greetings\n"),
            std::string::npos)
      << out.str();
}

TEST_F(SinkTest, ChunkedMessageLandsInTheMaildir) {
  Sink::Options options = faultOptions();
  options.chunking = true;
  options.maildir = (dir_ / "mail").string();
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  client.readReplies(1);
  client.send(
      "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 4\r\nhi\r\n"
      "BDAT 8 LAST\r\n.\r\nbye\r\nQUIT\r\n");
  std::string replies = client.readToEof();
  EXPECT_NE(replies.find("250-CHUNKING\r\n"), std::string::npos) << replies;
  EXPECT_TRUE(
      replies.ends_with("250 2.0.0 4 octets received\r\n250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n"))
      << replies;
  auto files = listDir(dir_ / "mail" / "new");
  ASSERT_EQ(files.size(), 1U);
  EXPECT_EQ(readFile(files[0]), "Return-Path: <a@x>\r\nDelivered-To: b@y\r\nhi\r\n.\r\nbye\r\n");
  EXPECT_EQ(sink.stats().bytes, 12U);
}

// --- STARTTLS ---

// The client side of TLS over a blocking Client, with Salvo's own TlsClient.
class TlsOverClient {
 public:
  TlsOverClient(Client& client, net::TlsContext& context)
      : client_(client), tls_(context, "127.0.0.1", false) {}

  bool handshake() {
    std::string out;
    if (tls_.start(out) == net::TlsStream::Result::Failed) {
      return false;
    }
    client_.send(out);
    while (!tls_.established()) {
      std::string in = client_.receive();
      out.clear();
      if (in.empty() || tls_.feed(in, plain_, out) == net::TlsStream::Result::Failed) {
        ADD_FAILURE() << "handshake: " << tls_.error();
        return false;
      }
      client_.send(out);
    }
    return true;
  }

  void send(std::string_view plain) {
    std::string out;
    ASSERT_EQ(tls_.write(plain, out), net::TlsStream::Result::Ok) << tls_.error();
    client_.send(out);
  }

  // Decrypts until `count` complete replies have arrived.
  std::string readReplies(int count) {
    for (;;) {
      int seen = 0;
      std::size_t end = 0;
      for (std::size_t pos = 0, nl; (nl = plain_.find("\r\n", pos)) != std::string::npos;
           pos = nl + 2) {
        if (nl - pos >= 4 && plain_[pos + 3] == ' ' && ++seen == count) {
          end = nl + 2;
          break;
        }
      }
      if (end > 0) {
        std::string replies = plain_.substr(0, end);
        plain_.erase(0, end);
        return replies;
      }
      std::string in = client_.receive();
      std::string out;
      if (in.empty() || tls_.feed(in, plain_, out) == net::TlsStream::Result::Failed) {
        ADD_FAILURE() << "connection ended after " << seen << " of " << count << " replies";
        return std::exchange(plain_, {});
      }
      client_.send(out);
    }
  }

 private:
  Client& client_;
  net::TlsClient tls_;
  std::string plain_;
};

const char* kEhloReplyWithStartTls =
    "250-salvo-sink\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 67108864\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-STARTTLS\r\n"
    "250 SMTPUTF8\r\n";

TEST_F(SinkTest, StartTlsOverARealSocketIgnoresInjectedPlaintext) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.tls = true;  // self-signed
  options.maildir = (dir_ / "mail").string();
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  auto context = net::TlsContext::createClient("", error);
  ASSERT_NE(context, nullptr) << error;
  {
    Client client(sink.port());
    ASSERT_TRUE(client.connected());
    client.readReplies(1);
    client.send("EHLO c\r\n");
    EXPECT_EQ(client.readReplies(1), kEhloReplyWithStartTls);
    // The injected transaction travels in the same segment as STARTTLS.
    client.send("STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nowned\r\n.\r\n");
    EXPECT_EQ(client.readReplies(1), "220 2.0.0 ready to start TLS\r\n");
    TlsOverClient tls(client, *context);
    ASSERT_TRUE(tls.handshake());
    tls.send("MAIL FROM:<a@x>\r\n");
    EXPECT_EQ(tls.readReplies(1), "503 5.5.1 send EHLO or HELO first\r\n");
    tls.send("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nsecret\r\n.\r\nQUIT\r\n");
    std::string replies = tls.readReplies(6);
    EXPECT_EQ(replies.find("STARTTLS"), std::string::npos) << replies;
    EXPECT_TRUE(replies.ends_with("250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n")) << replies;
  }
  // One message, the one sent inside TLS.
  auto files = listDir(dir_ / "mail" / "new");
  ASSERT_EQ(files.size(), 1U);
  std::string stored = readFile(files[0]);
  EXPECT_NE(stored.find("Return-Path: <a@x>"), std::string::npos) << stored;
  EXPECT_NE(stored.find("secret"), std::string::npos) << stored;
  sink.stop();
  Sink::Stats stats = sink.stats();
  EXPECT_EQ(stats.messages, 1U);
  EXPECT_EQ(stats.tls, 1U);
  EXPECT_EQ(stats.tlsFailed, 0U);
}

TEST_F(SinkTest, PlaintextAfterStartTlsIsAFailedHandshake) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  options.tls = true;
  options.threads = 1;
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  {
    Client client(sink.port());
    client.readReplies(1);
    client.send("EHLO c\r\nSTARTTLS\r\n");
    client.readReplies(2);
    client.send("MAIL FROM:<a@x>\r\n");  // not a ClientHello
    client.readToEof();                  // an alert, then the sink closes
  }
  sink.stop();
  EXPECT_EQ(sink.stats().tls, 0U);
  EXPECT_EQ(sink.stats().tlsFailed, 1U);
}

TEST_F(SinkTest, WithoutTlsStartTlsIsNotOffered) {
  Sink::Options options;
  options.listen = "127.0.0.1:0";
  Sink sink(options);
  std::string error;
  ASSERT_TRUE(sink.start(error)) << error;
  Client client(sink.port());
  client.readReplies(1);
  client.send("EHLO c\r\nSTARTTLS\r\n");
  EXPECT_EQ(client.readReplies(2),
            std::string(kEhloReply) + "502 5.5.1 command not implemented\r\n");
}

TEST_F(SinkTest, CommandRejectsUnusableTlsFilesWith78) {
  auto run = [this](const std::string& cert, const std::string& key) {
    Sink::Options options;
    options.listen = "127.0.0.1:0";
    options.tlsCert = cert;
    options.tlsKey = key;
    std::ostringstream out;
    std::ostringstream err;
    const int rc = runSinkCommand(options, "", out, err, nullptr);
    EXPECT_EQ(rc, 78);
    EXPECT_EQ(out.str(), "");
    return err.str();
  };
  const std::string missing = (dir_ / "missing.pem").string();
  EXPECT_EQ(run(missing, missing), "salvo sink: TLS certificate file " + missing +
                                       ": cannot read: No such file or directory\n");
  EXPECT_EQ(run(missing, ""), "salvo sink: --tls-cert needs --tls-key (the certificate's key)\n");
  const std::string junk = (dir_ / "junk.pem").string();
  std::ofstream(junk) << "junk\n";
  std::string message = run(junk, junk);
  EXPECT_EQ(
      message.rfind("salvo sink: TLS certificate file " + junk + ": not a PEM certificate", 0), 0U)
      << message;
}

}  // namespace
}  // namespace salvo::bench
