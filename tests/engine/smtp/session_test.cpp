#include "engine/smtp/session.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/smtp/body.h"

namespace salvo::smtp {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr std::string_view kGreeting = "220 mx.example ESMTP\r\n";
constexpr std::string_view kEhloPlain =
    "250-mx.example\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
constexpr std::string_view kEhloPipelining =
    "250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
constexpr std::string_view kGo = "354 End data with <CR><LF>.<CR><LF>\r\n";

// A SessionSink that records everything and checks nothing reaches it after finished().
class Recorder : public SessionSink {
 public:
  void send(std::string_view bytes) override {
    enter();
    sends.emplace_back(bytes);
    if (onSend) {
      onSend();
    }
  }
  void transactionDone(TransactionResult&& result) override {
    enter();
    results.push_back(std::move(result));
    if (onDone) {
      onDone(results.back());
    }
  }
  void ready() override {
    enter();
    ++readyCalls;
    if (onReady) {
      onReady();
    }
  }
  void startTls() override {
    enter();
    ++startTlsCalls;
    if (onStartTls) {
      onStartTls();
    }
  }
  void finished(const std::string& error, FailureScope scope) override {
    enter();
    ++finishedCalls;
    finishError = error;
    finishScope = scope;
    if (onFinished) {
      onFinished();
    }
  }
  void trace(std::string_view line) override {
    enter();
    traces.emplace_back(line);
  }
  bool tracing() const override { return tracingOn; }

  // Everything sent since the last call, concatenated.
  std::string takeSent() {
    std::string all;
    for (const std::string& s : sends) {
      all += s;
    }
    sends.clear();
    return all;
  }
  bool traced(std::string_view line) const {
    return std::find(traces.begin(), traces.end(), line) != traces.end();
  }

  std::vector<std::string> sends;
  std::vector<TransactionResult> results;
  std::vector<std::string> traces;
  bool tracingOn = true;
  int readyCalls = 0;
  int startTlsCalls = 0;
  int finishedCalls = 0;
  int callsAfterFinished = 0;
  std::string finishError;
  FailureScope finishScope = FailureScope::None;
  std::function<void()> onSend;
  std::function<void()> onReady;
  std::function<void()> onStartTls;
  std::function<void()> onFinished;
  std::function<void(const TransactionResult&)> onDone;

 private:
  void enter() {
    if (finishedCalls > 0) {
      ++callsAfterFinished;
    }
  }
};

// Appended piece by piece: GCC 12's -O3 reports a false -Wrestrict for "s" + to_string().
std::string sender(std::uint64_t tag) {
  std::string s = "s";
  s += std::to_string(tag);
  s += "@a.example";
  return s;
}
std::string recipient(std::uint64_t tag) {
  std::string s = "r";
  s += std::to_string(tag);
  s += "@b.example";
  return s;
}
std::string message(std::uint64_t tag) {
  return "message " + std::to_string(tag) + "\r\n";
}

std::string mailCmd(std::uint64_t tag) {
  return "MAIL FROM:<" + sender(tag) + ">\r\n";
}
std::string rcptCmd(std::uint64_t tag) {
  return "RCPT TO:<" + recipient(tag) + ">\r\n";
}
std::string dataOf(std::uint64_t tag) {
  return message(tag) + ".\r\n";
}
// MAIL, RCPT, DATA as one pipelined group.
std::string group(std::uint64_t tag) {
  return mailCmd(tag) + rcptCmd(tag) + "DATA\r\n";
}

Envelope makeEnvelope(std::uint64_t tag, std::string_view body) {
  Envelope e;
  e.tag = tag;
  e.mailFrom = sender(tag);
  e.rcptTo = recipient(tag);
  std::string error;
  EXPECT_TRUE(encodeBody(body, e.data, error)) << error;
  return e;
}

SessionConfig testConfig() {
  SessionConfig c;
  c.heloName = "client.example";
  c.maxQueued = 2;
  // Distinct values, so that a test can tell which one timeout() picked.
  c.timeouts.greeting = milliseconds{1001};
  c.timeouts.ehlo = milliseconds{1002};
  c.timeouts.mail = milliseconds{1003};
  c.timeouts.rcpt = milliseconds{1004};
  c.timeouts.data = milliseconds{1005};
  c.timeouts.dataBlock = milliseconds{1006};
  c.timeouts.dot = milliseconds{1007};
  c.timeouts.rset = milliseconds{1008};
  c.timeouts.quit = milliseconds{1009};
  c.timeouts.startTls = milliseconds{1010};
  return c;
}

enum class Feed { Whole, ByteAtATime };

// The scripted fake server: the test feeds replies (whole or one byte at a time, per the
// parameter: every test must pass both ways) and checks the exact bytes the session sent.
class SessionTest : public ::testing::TestWithParam<Feed> {
 protected:
  void SetUp() override { restart(testConfig()); }
  void TearDown() override { checkInvariants(); }

  void restart(SessionConfig config) {
    if (session) {
      checkInvariants();
    }
    session.reset();
    sink = Recorder{};
    tags.clear();
    session = std::make_unique<ClientSession>(std::move(config), sink);
  }

  // Every envelope is answered at most once, in submission order; all of them once
  // finished() came; nothing reaches the sink after finished().
  void checkInvariants() {
    EXPECT_EQ(sink.callsAfterFinished, 0);
    EXPECT_LE(sink.finishedCalls, 1);
    ASSERT_LE(sink.results.size(), tags.size());
    for (std::size_t i = 0; i < sink.results.size(); ++i) {
      EXPECT_EQ(sink.results[i].tag, tags[i]) << "result " << i;
    }
    if (sink.finishedCalls == 1) {
      EXPECT_EQ(sink.results.size(), tags.size())
          << "finished() before every envelope was answered";
    }
    if (session) {
      EXPECT_EQ(session->transactionsCompleted(), sink.results.size());
    }
  }

  void server(std::string_view bytes) {
    if (GetParam() == Feed::Whole) {
      session->onBytes(bytes);
      return;
    }
    for (std::size_t i = 0; i < bytes.size() && session; ++i) {
      session->onBytes(bytes.substr(i, 1));
    }
  }

  std::string sent() { return sink.takeSent(); }

  void submit(std::uint64_t tag) { submit(makeEnvelope(tag, message(tag))); }
  void submit(Envelope e) {
    tags.push_back(e.tag);
    session->submit(std::move(e));
  }

  void open(std::string_view ehloReply) {
    session->onConnected();
    EXPECT_EQ(session->state(), State::Greeting);
    EXPECT_EQ(session->timeout(), milliseconds{1001});
    server(kGreeting);
    EXPECT_EQ(sent(), "EHLO client.example\r\n");
    EXPECT_EQ(session->state(), State::Ehlo);
    server(ehloReply);
  }

  const TransactionResult& result(std::size_t i) {
    static const TransactionResult none;
    EXPECT_LT(i, sink.results.size());
    return i < sink.results.size() ? sink.results[i] : none;
  }

  void expectResult(std::size_t i, std::uint64_t tag, Disposition d, FailureScope scope, int code,
                    std::string_view detail) {
    const TransactionResult& r = result(i);
    EXPECT_EQ(r.tag, tag) << "result " << i;
    EXPECT_EQ(r.disposition, d) << "result " << i << ": " << dispositionName(r.disposition);
    EXPECT_EQ(r.scope, scope) << "result " << i << ": " << scopeName(r.scope);
    EXPECT_EQ(r.reply.code, code) << "result " << i;
    EXPECT_EQ(r.detail, detail) << "result " << i;
  }

  Recorder sink;
  std::unique_ptr<ClientSession> session;
  std::vector<std::uint64_t> tags;  // submitted, in order
};

TEST_P(SessionTest, NonPipelinedHappyPath) {
  open(kEhloPlain);
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_TRUE(session->capabilities().esmtp);
  EXPECT_FALSE(session->capabilities().pipelining);
  EXPECT_EQ(sink.readyCalls, 1);
  EXPECT_EQ(session->timeout(), milliseconds{0});

  submit(1);
  EXPECT_EQ(sent(), mailCmd(1));
  EXPECT_EQ(session->state(), State::Mail);
  EXPECT_EQ(session->timeout(), milliseconds{1003});

  server("250 2.1.0 ok\r\n");
  EXPECT_EQ(sent(), rcptCmd(1));
  EXPECT_EQ(session->state(), State::Rcpt);
  EXPECT_EQ(session->timeout(), milliseconds{1004});

  server("250 2.1.5 ok\r\n");
  EXPECT_EQ(sent(), "DATA\r\n");
  EXPECT_EQ(session->state(), State::Data);
  EXPECT_EQ(session->timeout(), milliseconds{1005});

  server(kGo);
  EXPECT_EQ(sent(), dataOf(1));
  EXPECT_EQ(session->state(), State::Dot);
  EXPECT_TRUE(session->bodyPending());
  EXPECT_EQ(session->timeout(), milliseconds{1006});  // data block: the body is going out
  session->onWritten();
  EXPECT_FALSE(session->bodyPending());
  EXPECT_EQ(session->timeout(), milliseconds{1007});  // it left: waiting for the reply
  EXPECT_EQ(sent(), "");
  EXPECT_TRUE(sink.results.empty());

  server("250 2.0.0 Ok: queued as 12345\r\n");
  ASSERT_EQ(sink.results.size(), 1u);
  expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  EXPECT_EQ(result(0).reply.enhanced.str(), "2.0.0");
  EXPECT_EQ(result(0).reply.summary(), "250 2.0.0 Ok: queued as 12345");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sent(), "");  // no RSET after a successful end of data
  EXPECT_EQ(session->transactionsCompleted(), 1u);

  // The next message on the warm connection needs no RSET either.
  submit(2);
  EXPECT_EQ(sent(), mailCmd(2));
  server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(sent(), rcptCmd(2) + "DATA\r\n");
  server(kGo);
  EXPECT_EQ(sent(), dataOf(2));
  server("250 ok\r\n");
  expectResult(1, 2, Disposition::Delivered, FailureScope::None, 250, "message accepted");

  session->quit();
  EXPECT_EQ(sent(), "QUIT\r\n");
  EXPECT_EQ(session->state(), State::Quit);
  EXPECT_EQ(session->timeout(), milliseconds{1009});
  server("221 2.0.0 Bye\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
  EXPECT_EQ(sink.finishScope, FailureScope::None);
  EXPECT_EQ(session->state(), State::Closed);
  EXPECT_EQ(session->timeout(), milliseconds{0});
  EXPECT_FALSE(session->canAccept());

  EXPECT_TRUE(sink.traced("state Connecting -> Greeting"));
  EXPECT_TRUE(sink.traced("state Idle -> Mail"));
  EXPECT_TRUE(sink.traced("state Mail -> Rcpt"));
  EXPECT_TRUE(sink.traced("state Rcpt -> Data"));
  EXPECT_TRUE(sink.traced("state Data -> Dot"));
  EXPECT_TRUE(sink.traced("state Quit -> Closed"));
  EXPECT_TRUE(sink.traced("S: 250 2.1.0 ok"));
  EXPECT_TRUE(sink.traced("S: 250 mx.example (+2 lines)"));
  EXPECT_TRUE(sink.traced("C: MAIL FROM:<s1@a.example>"));
  EXPECT_TRUE(sink.traced("C: <message data, 14 octets>"));
}

TEST_P(SessionTest, PipelinedTwoMessagesShareOneRoundTrip) {
  open(kEhloPipelining);
  EXPECT_TRUE(session->capabilities().pipelining);
  submit(1);
  submit(2);
  ASSERT_EQ(sink.sends.size(), 1u);
  EXPECT_EQ(sink.sends[0], group(1));  // MAIL, RCPT, DATA in one send
  EXPECT_EQ(session->state(), State::Mail);
  sink.sends.clear();

  server("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n");
  // The data, its final dot and the next message's MAIL/RCPT/DATA leave in ONE send().
  ASSERT_EQ(sink.sends.size(), 1u);
  EXPECT_EQ(sink.sends[0], dataOf(1) + group(2));
  EXPECT_THAT(sink.sends[0], HasSubstr(".\r\nMAIL FROM:<s2@a.example>\r\nRCPT TO:<r2@b.example>"
                                       "\r\nDATA\r\n"));
  EXPECT_EQ(session->state(), State::Dot);
  EXPECT_EQ(session->timeout(), milliseconds{1006});
  session->onWritten();
  EXPECT_EQ(session->timeout(), milliseconds{1007});
  sink.sends.clear();

  server("250 2.0.0 queued as A\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n");
  ASSERT_EQ(sink.results.size(), 1u);
  expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  EXPECT_EQ(result(0).reply.summary(), "250 2.0.0 queued as A");
  ASSERT_EQ(sink.sends.size(), 1u);
  EXPECT_EQ(sink.sends[0], dataOf(2));
  sink.sends.clear();

  server("250 2.0.0 queued as B\r\n");
  ASSERT_EQ(sink.results.size(), 2u);
  expectResult(1, 2, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sent(), "");

  session->quit();
  EXPECT_EQ(sent(), "QUIT\r\n");
  server("221 bye\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
}

TEST_P(SessionTest, PipeliningDisabledByConfig) {
  SessionConfig config = testConfig();
  config.allowPipelining = false;
  restart(config);
  open(kEhloPipelining);
  EXPECT_TRUE(session->capabilities().pipelining);
  submit(1);
  EXPECT_EQ(sent(), mailCmd(1));
  server("250 ok\r\n");
  EXPECT_EQ(sent(), rcptCmd(1));
}

TEST_P(SessionTest, EhloRejectedFallsBackToHelo) {
  for (const char* reply : {"500 5.5.1 command unrecognized\r\n", "502 5.5.2 not implemented\r\n",
                            "504 5.5.4 not implemented\r\n", "550 5.7.1 no EHLO here\r\n"}) {
    SCOPED_TRACE(reply);
    restart(testConfig());
    session->onConnected();
    server(kGreeting);
    EXPECT_EQ(sent(), "EHLO client.example\r\n");
    server(reply);
    EXPECT_EQ(sent(), "HELO client.example\r\n");
    EXPECT_EQ(session->state(), State::Helo);
    EXPECT_EQ(session->timeout(), milliseconds{1002});
    EXPECT_EQ(sink.readyCalls, 0);
    server("250 mx.example\r\n");
    EXPECT_EQ(session->state(), State::Idle);
    EXPECT_EQ(sink.readyCalls, 1);
    EXPECT_FALSE(session->capabilities().esmtp);
    EXPECT_FALSE(session->capabilities().pipelining);

    submit(1);
    EXPECT_EQ(sent(), mailCmd(1));  // one command at a time, no SIZE
    server("250 ok\r\n");
    EXPECT_EQ(sent(), rcptCmd(1));
    server("250 ok\r\n");
    EXPECT_EQ(sent(), "DATA\r\n");
    server("354 go\r\n");
    EXPECT_EQ(sent(), dataOf(1));
    server("250 ok\r\n");
    expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  }
}

TEST_P(SessionTest, EhloTransientFailureIsASiteFailure) {
  submit(1);
  session->onConnected();
  server(kGreeting);
  EXPECT_EQ(sent(), "EHLO client.example\r\n");
  server("451 4.3.0 try again later\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 451, "EHLO rejected");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "EHLO rejected: 451 4.3.0 try again later");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
  EXPECT_EQ(session->state(), State::Closed);
}

TEST_P(SessionTest, HeloRejectedIsASiteFailure) {
  submit(1);
  session->onConnected();
  server(kGreeting);
  server("502 5.5.2 no\r\n");
  EXPECT_EQ(sent(), "EHLO client.example\r\nHELO client.example\r\n");
  server("554 5.7.1 go away\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  // The site refused us, not the recipient: Deferred even for a 5xx.
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 554, "HELO rejected");
  EXPECT_EQ(sink.finishError, "HELO rejected: 554 5.7.1 go away");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
}

TEST_P(SessionTest, GreetingRefused) {
  for (std::string_view greeting :
       {"554 5.7.1 no service for you\r\n", "421 4.3.2 too busy, try later\r\n"}) {
    SCOPED_TRACE(greeting);
    restart(testConfig());
    submit(1);
    submit(2);
    EXPECT_FALSE(session->canAccept());
    EXPECT_EQ(session->state(), State::Connecting);
    EXPECT_EQ(sent(), "");
    session->onConnected();
    server(greeting);
    EXPECT_EQ(sent(), "QUIT\r\n");
    const int code = greeting[0] == '5' ? 554 : 421;
    ASSERT_EQ(sink.results.size(), 2u);
    expectResult(0, 1, Disposition::Deferred, FailureScope::Site, code, "greeting refused");
    expectResult(1, 2, Disposition::Deferred, FailureScope::Site, code, "greeting refused");
    EXPECT_EQ(sink.finishedCalls, 1);
    EXPECT_EQ(sink.finishScope, FailureScope::Site);
    EXPECT_EQ(sink.finishError,
              "greeting refused: " + std::string(greeting.substr(0, greeting.size() - 2)));
    EXPECT_EQ(sink.readyCalls, 0);
  }
}

TEST_P(SessionTest, RcptRejectedPipelinedBouncesAndResetsBeforeTheNext) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  server(
      "250 2.1.0 ok\r\n550-5.1.1 no such user\r\n550 5.1.1 see the manual\r\n"
      "554 5.5.1 no valid recipients\r\n");
  ASSERT_EQ(sink.results.size(), 1u);
  expectResult(0, 1, Disposition::Bounced, FailureScope::Recipient, 550, "RCPT TO rejected");
  EXPECT_EQ(result(0).reply.enhanced.str(), "5.1.1");
  EXPECT_EQ(result(0).reply.summary(), "550 5.1.1 no such user");
  // The failed transaction is reset before the next MAIL, in the same group.
  EXPECT_EQ(sent(), "RSET\r\n" + group(2));
  EXPECT_EQ(session->state(), State::Rset);
  EXPECT_EQ(session->timeout(), milliseconds{1008});
  server("250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n");
  EXPECT_EQ(sent(), "");
  server(kGo);
  EXPECT_EQ(sent(), dataOf(2));
  server("250 ok\r\n");
  expectResult(1, 2, Disposition::Delivered, FailureScope::None, 250, "message accepted");
}

TEST_P(SessionTest, RcptRejectedNonPipelined) {
  open(kEhloPlain);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), mailCmd(1));
  server("250 ok\r\n");
  EXPECT_EQ(sent(), rcptCmd(1));
  server("550 5.1.1 no such user\r\n");
  expectResult(0, 1, Disposition::Bounced, FailureScope::Recipient, 550, "RCPT TO rejected");
  EXPECT_EQ(sent(), "RSET\r\n");  // not DATA, and one command at a time
  EXPECT_EQ(session->state(), State::Rset);
  server("250 ok\r\n");
  EXPECT_EQ(sent(), mailCmd(2));
}

TEST_P(SessionTest, RcptTemporaryFailureDefers) {
  open(kEhloPipelining);
  submit(1);
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n451 4.7.1 greylisted, try again in 5 minutes\r\n503 5.5.1 no recipients\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Recipient, 451, "RCPT TO rejected");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sent(), "");  // the RSET waits for the next MAIL
  submit(2);
  EXPECT_EQ(sent(), "RSET\r\n" + group(2));
}

TEST_P(SessionTest, MailRejectedPipelined) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  server("550 5.7.1 sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n");
  ASSERT_EQ(sink.results.size(), 1u);
  expectResult(0, 1, Disposition::Bounced, FailureScope::Message, 550, "MAIL FROM rejected");
  EXPECT_EQ(sent(), "RSET\r\n" + group(2));
}

TEST_P(SessionTest, MailDeferredNonPipelined) {
  open(kEhloPlain);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), mailCmd(1));
  server("451 4.3.0 local problem\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Message, 451, "MAIL FROM rejected");
  EXPECT_EQ(sent(), "RSET\r\n");
  server("250 ok\r\n");
  EXPECT_EQ(sent(), mailCmd(2));
}

TEST_P(SessionTest, BrokenServerOpensDataAfterTheRecipientWasRefused) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n550 5.1.1 no such user\r\n354 go ahead anyway\r\n");
  expectResult(0, 1, Disposition::Bounced, FailureScope::Recipient, 550, "RCPT TO rejected");
  // No body: just the end of an empty message. Nothing of the next message yet.
  EXPECT_EQ(sent(), ".\r\n");
  EXPECT_EQ(session->state(), State::Dot);
  // Whatever the server says to that dot (even 250) is not a result.
  server("250 2.0.0 accepted an empty message\r\n");
  EXPECT_EQ(sink.results.size(), 1u);
  EXPECT_EQ(sent(), "RSET\r\n" + group(2));
  server("250 ok\r\n250 ok\r\n250 ok\r\n");
  server(kGo);
  EXPECT_EQ(sent(), dataOf(2));
  server("250 ok\r\n");
  expectResult(1, 2, Disposition::Delivered, FailureScope::None, 250, "message accepted");
}

TEST_P(SessionTest, DataRejected) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n250 ok\r\n554 5.5.1 no DATA for you\r\n");
  expectResult(0, 1, Disposition::Bounced, FailureScope::Message, 554, "DATA rejected");
  EXPECT_EQ(sent(), "RSET\r\n" + group(2));
  server("250 ok\r\n250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n");
  expectResult(1, 2, Disposition::Deferred, FailureScope::Message, 451, "DATA rejected");
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(session->state(), State::Idle);
}

TEST_P(SessionTest, EndOfDataFailuresNeedNoReset) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(sent(), dataOf(1) + group(2));
  server("451 4.3.0 queue full\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Message, 451,
               "message rejected after end of data");
  EXPECT_EQ(sent(), dataOf(2));
  submit(3);
  EXPECT_EQ(sent(), "");  // waits for the current transaction
  server("550 5.7.1 spam\r\n");
  expectResult(1, 2, Disposition::Bounced, FailureScope::Message, 550,
               "message rejected after end of data");
  EXPECT_EQ(sent(), group(3));  // no RSET: the final reply ends the transaction
}

TEST_P(SessionTest, Server421MidTransactionDefersEverything) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  submit(3);
  EXPECT_FALSE(session->canAccept());
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n421 4.4.2 closing connection\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  ASSERT_EQ(sink.results.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    expectResult(i, i + 1, Disposition::Deferred, FailureScope::Site, 421,
                 "server closing connection");
  }
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
  EXPECT_EQ(sink.finishError, "server closing connection: 421 4.4.2 closing connection");
  // Anything after that is ignored.
  server("250 ok\r\n");
  session->onTimeout();
  session->onDisconnected("reset");
  session->quit();
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(sink.results.size(), 3u);
}

TEST_P(SessionTest, Server421AfterEndOfDataWithTheNextPipelined) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(sent(), group(1) + dataOf(1) + group(2));
  server("421 4.3.0 shutting down\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 421, "server closing connection");
  expectResult(1, 2, Disposition::Deferred, FailureScope::Site, 421, "server closing connection");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
}

TEST_P(SessionTest, UnsolicitedRepliesWhenIdle) {
  open(kEhloPlain);
  sent();
  server("421 4.3.2 idle too long\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
  EXPECT_EQ(sink.finishError, "server closing connection: 421 4.3.2 idle too long");

  restart(testConfig());
  open(kEhloPlain);
  server("250 surprise\r\n");
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);
  EXPECT_EQ(sink.finishError, "unexpected reply while idle: 250 surprise");
}

TEST_P(SessionTest, TimeoutInEachWaitingState) {
  struct Case {
    const char* name;
    std::function<void()> drive;
    State state;
    milliseconds timeout;
    const char* detail;
  };
  const auto toGreeting = [&] {
    submit(1);
    session->onConnected();
  };
  const auto toEhlo = [&] {
    toGreeting();
    server(kGreeting);
  };
  const auto toMail = [&] {
    toEhlo();
    server(kEhloPlain);
  };
  const auto toRcpt = [&] {
    toMail();
    server("250 ok\r\n");
  };
  const auto toData = [&] {
    toRcpt();
    server("250 ok\r\n");
  };
  const Case cases[] = {
      {"greeting", toGreeting, State::Greeting, milliseconds{1001},
       "timeout waiting for the greeting"},
      {"ehlo", toEhlo, State::Ehlo, milliseconds{1002}, "timeout waiting for reply to EHLO"},
      {"helo",
       [&] {
         toEhlo();
         server("502 5.5.2 no\r\n");
       },
       State::Helo, milliseconds{1002}, "timeout waiting for reply to HELO"},
      {"mail", toMail, State::Mail, milliseconds{1003}, "timeout waiting for reply to MAIL FROM"},
      {"rcpt", toRcpt, State::Rcpt, milliseconds{1004}, "timeout waiting for reply to RCPT TO"},
      {"data", toData, State::Data, milliseconds{1005}, "timeout waiting for reply to DATA"},
      {"data block",
       [&] {
         toData();
         server(kGo);
       },
       State::Dot, milliseconds{1006}, "timeout while sending the message body"},
      {"dot",
       [&] {
         toData();
         server(kGo);
         session->onWritten();
       },
       State::Dot, milliseconds{1007}, "timeout waiting for reply to end of data"},
      {"rset",
       [&] {
         submit(1);
         submit(2);
         session->onConnected();
         server(kGreeting);
         server(kEhloPlain);
         server("250 ok\r\n550 5.1.1 no\r\n");
       },
       State::Rset, milliseconds{1008}, "timeout waiting for reply to RSET"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    restart(testConfig());
    c.drive();
    ASSERT_EQ(session->state(), c.state);
    EXPECT_EQ(session->timeout(), c.timeout);
    sent();
    session->onTimeout();
    EXPECT_EQ(sent(), "");
    EXPECT_EQ(session->state(), State::Closed);
    EXPECT_EQ(sink.finishedCalls, 1);
    EXPECT_EQ(sink.finishScope, FailureScope::Connection);
    EXPECT_EQ(sink.finishError, c.detail);
    ASSERT_EQ(sink.results.size(), tags.size());
    const TransactionResult& last = sink.results.back();
    EXPECT_EQ(last.disposition, Disposition::Deferred);
    EXPECT_EQ(last.scope, FailureScope::Connection);
    EXPECT_EQ(last.reply.code, 0);
    EXPECT_EQ(last.detail, c.detail);
    session->onTimeout();  // after finished(): ignored
  }

  // Waiting for the reply to QUIT: all work is done, the session just ends.
  restart(testConfig());
  open(kEhloPlain);
  session->quit();
  EXPECT_EQ(sent(), "QUIT\r\n");
  EXPECT_EQ(session->timeout(), milliseconds{1009});
  session->onTimeout();
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
  EXPECT_EQ(sink.finishScope, FailureScope::None);
}

TEST_P(SessionTest, DisconnectMidData) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(session->state(), State::Data);
  session->onDisconnected("connection reset by peer");
  const std::string detail =
      "connection lost while waiting for reply to DATA: connection reset by peer";
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0, detail);
  expectResult(1, 2, Disposition::Deferred, FailureScope::Connection, 0, detail);
  EXPECT_TRUE(result(0).attempted);   // its MAIL/RCPT/DATA went out
  EXPECT_FALSE(result(1).attempted);  // never started: safe to retry elsewhere
  EXPECT_EQ(sink.finishError, detail);
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);

  // After the body went out: waiting for the final reply.
  restart(testConfig());
  open(kEhloPipelining);
  submit(1);
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(session->state(), State::Dot);
  session->onDisconnected("");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0,
               "connection lost while waiting for reply to end of data");
}

TEST_P(SessionTest, DisconnectWhileIdleOrQuitting) {
  open(kEhloPlain);
  session->onDisconnected("connection closed by peer");
  EXPECT_EQ(sink.finishError, "connection lost while idle: connection closed by peer");
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);

  restart(testConfig());
  open(kEhloPlain);
  session->quit();
  session->onDisconnected("connection closed by peer");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
  EXPECT_EQ(sink.finishScope, FailureScope::None);
}

TEST_P(SessionTest, GarbledReplyEndsTheConnection) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  sent();
  server("250 ok\r\nhello there\r\n354 go\r\n");
  EXPECT_EQ(sent(), "");  // nothing more goes out
  const std::string parserError = "malformed reply line \"hello there\"";
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0,
               "garbled reply while waiting for reply to RCPT TO: " + parserError);
  expectResult(1, 2, Disposition::Deferred, FailureScope::Connection, 0,
               "garbled reply while waiting for reply to RCPT TO: " + parserError);
  EXPECT_EQ(sink.finishError, parserError);
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);
  EXPECT_EQ(session->state(), State::Closed);
}

TEST_P(SessionTest, OverlongReplyLineEndsTheConnection) {
  open(kEhloPlain);
  submit(1);
  server("250 " + std::string(5000, 'x'));
  EXPECT_EQ(sink.finishError, "reply line longer than 2048 octets");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0,
               "garbled reply while waiting for reply to MAIL FROM: reply line longer than "
               "2048 octets");
}

TEST_P(SessionTest, SizeLimitExceeded) {
  open("250-mx.example\r\n250-PIPELINING\r\n250 SIZE 40\r\n");
  EXPECT_TRUE(session->capabilities().size);
  EXPECT_EQ(session->capabilities().maxSize, 40u);
  const std::string big(50, 'b');  // 52 octets with its CRLF
  submit(makeEnvelope(1, big));
  EXPECT_EQ(sent(), "");
  expectResult(0, 1, Disposition::Bounced, FailureScope::Message, 0,
               "message size 52 exceeds the server's SIZE limit 40");
  EXPECT_EQ(session->state(), State::Idle);

  // A fitting message announces its size. "message 2\r\n" is 11 octets.
  submit(2);
  EXPECT_EQ(sent(), "MAIL FROM:<s2@a.example> SIZE=11\r\n" + rcptCmd(2) + "DATA\r\n");
  // An oversized message queued behind it is not pipelined, and is answered in order.
  submit(makeEnvelope(3, big));
  submit(4);
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(sent(), dataOf(2));
  server("250 ok\r\n");
  ASSERT_EQ(sink.results.size(), 3u);
  expectResult(1, 2, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  expectResult(2, 3, Disposition::Bounced, FailureScope::Message, 0,
               "message size 52 exceeds the server's SIZE limit 40");
  EXPECT_EQ(sent(), "MAIL FROM:<s4@a.example> SIZE=11\r\n" + rcptCmd(4) + "DATA\r\n");
}

TEST_P(SessionTest, SizeWithoutALimitStillAnnouncesTheSize) {
  open("250-mx.example\r\n250 SIZE\r\n");
  std::string body;
  for (int i = 0; i < 50; ++i) {
    body += std::string(98, 'z') + "\r\n";
  }
  submit(makeEnvelope(1, body));
  EXPECT_EQ(sent(), "MAIL FROM:<s1@a.example> SIZE=5000\r\n");
}

TEST_P(SessionTest, AddressWithAControlOctetIsRefusedUnsent) {
  open(kEhloPipelining);
  Envelope bad = makeEnvelope(1, "hi\r\n");
  bad.rcptTo = "victim@b.example>\r\nRCPT TO:<other@b.example";
  submit(std::move(bad));
  EXPECT_EQ(sent(), "");
  expectResult(0, 1, Disposition::Bounced, FailureScope::Message, 0,
               "recipient address contains a control octet (CR, LF, NUL...)");
  Envelope badSender = makeEnvelope(2, "hi\r\n");
  badSender.mailFrom = std::string("a\0b@a.example", 13);
  submit(std::move(badSender));
  expectResult(1, 2, Disposition::Bounced, FailureScope::Message, 0,
               "sender address contains a control octet (CR, LF, NUL...)");
  submit(3);
  EXPECT_EQ(sent(), group(3));
}

TEST_P(SessionTest, NullSender) {
  open(kEhloPlain);
  Envelope e = makeEnvelope(1, "bounce\r\n");
  e.mailFrom = "";
  submit(std::move(e));
  EXPECT_EQ(sent(), "MAIL FROM:<>\r\n");
}

TEST_P(SessionTest, QuitWithPendingWork) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  session->quit();
  EXPECT_FALSE(session->canAccept());
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(sent(), dataOf(1) + group(2));
  server("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(sent(), dataOf(2));
  EXPECT_EQ(sink.finishedCalls, 0);
  server("250 ok\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");  // only once the work is done
  ASSERT_EQ(sink.results.size(), 2u);
  EXPECT_EQ(session->state(), State::Quit);
  server("221 2.0.0 bye\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
  EXPECT_EQ(sink.finishScope, FailureScope::None);
  session->quit();  // idempotent
  EXPECT_EQ(sink.finishedCalls, 1);
}

TEST_P(SessionTest, QuitBeforeConnectingOrDuringTheGreeting) {
  session->quit();
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
  EXPECT_EQ(session->state(), State::Closed);
  session->onConnected();  // too late: ignored
  EXPECT_EQ(sent(), "");

  restart(testConfig());
  session->onConnected();
  session->quit();
  EXPECT_EQ(sent(), "");
  server(kGreeting);
  EXPECT_EQ(sent(), "QUIT\r\n");  // no EHLO needed to say goodbye
  server("221 bye\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");

  // Queued work still goes out when quit() came before the connection did.
  restart(testConfig());
  submit(1);
  session->quit();
  EXPECT_EQ(sink.finishedCalls, 0);
  open(kEhloPlain);
  EXPECT_EQ(sent(), mailCmd(1));
}

TEST_P(SessionTest, AnyReplyToQuitEndsCleanly) {
  open(kEhloPlain);
  session->quit();
  server("500 5.5.1 what?\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");

  restart(testConfig());
  open(kEhloPlain);
  session->quit();
  server("\x01\x02garbage\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishError, "");
}

TEST_P(SessionTest, RsetRejectedEndsTheConnection) {
  open(kEhloPlain);
  submit(1);
  submit(2);
  server("250 ok\r\n550 5.1.1 no\r\n");
  EXPECT_EQ(sent(), mailCmd(1) + rcptCmd(1) + "RSET\r\n");
  server("502 5.5.2 RSET not implemented\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(1, 2, Disposition::Deferred, FailureScope::Connection, 502, "RSET rejected");
  EXPECT_EQ(sink.finishError, "RSET rejected: 502 5.5.2 RSET not implemented");
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);
}

TEST_P(SessionTest, CanAcceptAndReady) {
  EXPECT_TRUE(session->canAccept());  // envelopes may wait for the connection
  submit(1);
  EXPECT_TRUE(session->canAccept());
  submit(2);
  EXPECT_FALSE(session->canAccept());  // maxQueued = 2 not started
  open(kEhloPipelining);
  // 1 started: a slot is free again.
  EXPECT_EQ(sent(), group(1));
  EXPECT_TRUE(session->canAccept());
  EXPECT_EQ(sink.readyCalls, 1);
  submit(3);
  EXPECT_FALSE(session->canAccept());
  server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_TRUE(session->canAccept());  // 2 started after 1's data
  EXPECT_EQ(sink.readyCalls, 2);
}

TEST_P(SessionTest, SubmitFromReadyKeepsThePipelineFull) {
  constexpr std::uint64_t kMessages = 6;
  std::uint64_t next = 1;
  sink.onReady = [&] {
    while (session->canAccept() && next <= kMessages) {
      submit(next++);
    }
  };
  open(kEhloPipelining);
  EXPECT_EQ(sent(), group(1));
  for (std::uint64_t tag = 1; tag <= kMessages; ++tag) {
    SCOPED_TRACE(tag);
    if (tag == 1) {
      server("250 ok\r\n250 ok\r\n354 go\r\n");
    } else {
      // The previous message's final reply and this one's MAIL/RCPT/DATA replies.
      server("250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
      expectResult(tag - 2, tag - 1, Disposition::Delivered, FailureScope::None, 250,
                   "message accepted");
    }
    ASSERT_EQ(sink.sends.size(), 1u);
    EXPECT_EQ(sink.sends[0], tag < kMessages ? dataOf(tag) + group(tag + 1) : dataOf(tag));
    sink.sends.clear();
  }
  server("250 queued\r\n");
  EXPECT_EQ(sink.results.size(), kMessages);
  EXPECT_EQ(session->state(), State::Idle);
}

TEST_P(SessionTest, SubmitAndQuitFromTransactionDone) {
  sink.onDone = [&](const TransactionResult& r) {
    if (r.tag == 1) {
      submit(2);
    } else {
      session->quit();
    }
  };
  open(kEhloPlain);
  submit(1);
  server("250 ok\r\n250 ok\r\n");
  server(kGo);
  EXPECT_EQ(sent(), mailCmd(1) + rcptCmd(1) + "DATA\r\n" + dataOf(1));
  server("250 ok\r\n");
  EXPECT_EQ(sent(), mailCmd(2));
  server("250 ok\r\n250 ok\r\n");
  server(kGo);
  server("550 5.7.1 no\r\n");
  EXPECT_EQ(sent(), rcptCmd(2) + "DATA\r\n" + dataOf(2) + "QUIT\r\n");
  server("221 bye\r\n");
  EXPECT_EQ(sink.finishedCalls, 1);
}

TEST_P(SessionTest, SinkMayDisconnectFromSend) {
  // A synchronous write failure reported from inside send().
  open(kEhloPipelining);
  sink.onSend = [&] { session->onDisconnected("broken pipe"); };
  submit(1);
  EXPECT_EQ(sink.finishedCalls, 1);
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0,
               "connection lost while waiting for reply to MAIL FROM: broken pipe");
}

TEST_P(SessionTest, SessionMayBeDestroyedInFinished) {
  sink.onFinished = [&] { session.reset(); };
  open(kEhloPlain);
  submit(1);
  server("421 4.3.2 bye\r\n");
  EXPECT_EQ(session, nullptr);
  EXPECT_EQ(sink.finishedCalls, 1);
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 421, "server closing connection");
}

TEST(SessionNamesTest, Tables) {
  EXPECT_STREQ(stateName(State::Connecting), "Connecting");
  EXPECT_STREQ(stateName(State::Mail), "Mail");
  EXPECT_STREQ(stateName(State::Dot), "Dot");
  EXPECT_STREQ(stateName(State::Closed), "Closed");
  EXPECT_STREQ(scopeName(FailureScope::None), "none");
  EXPECT_STREQ(scopeName(FailureScope::Recipient), "recipient");
  EXPECT_STREQ(scopeName(FailureScope::Site), "site");
  EXPECT_STREQ(dispositionName(Disposition::Delivered), "delivered");
  EXPECT_STREQ(dispositionName(Disposition::Deferred), "deferred");
  EXPECT_STREQ(dispositionName(Disposition::Bounced), "bounced");
}

// One long conversation with every kind of outcome, fed whole and one byte at a time:
// the transcripts (bytes sent, results, end) must be identical.
std::string transcript(Feed feed) {
  Recorder sink;
  SessionConfig config = testConfig();
  config.maxQueued = 3;
  ClientSession session(config, sink);
  auto server = [&](std::string_view bytes) {
    if (feed == Feed::Whole) {
      session.onBytes(bytes);
    } else {
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        session.onBytes(bytes.substr(i, 1));
      }
    }
  };
  for (std::uint64_t tag = 1; tag <= 3; ++tag) {
    session.submit(makeEnvelope(tag, message(tag)));
  }
  session.onConnected();
  server(kGreeting);
  server(kEhloPipelining);
  server("250 ok\r\n250 ok\r\n354 go\r\n");  // 1 data, 2 sent
  server("250 ok\r\n250 ok\r\n550-5.1.1 no\r\n550 5.1.1 user\r\n554 no rcpt\r\n");  // 1 ok, 2 bad
  server("250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");                            // 3 data
  session.submit(makeEnvelope(4, message(4)));
  server("451 4.3.0 later\r\n");  // 3 deferred; 4 sent
  session.quit();
  server("250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n");

  std::string t = sink.takeSent();
  for (const TransactionResult& r : sink.results) {
    t += fmt::format("|{} {} {} {} {}", r.tag, dispositionName(r.disposition), scopeName(r.scope),
                     r.reply.summary(), r.detail);
  }
  t += fmt::format("|finished {} '{}' {}", sink.finishedCalls, sink.finishError,
                   scopeName(sink.finishScope));
  return t;
}

TEST(SessionTranscriptTest, WholeAndByteAtATimeAgree) {
  const std::string whole = transcript(Feed::Whole);
  EXPECT_EQ(whole, transcript(Feed::ByteAtATime));
  EXPECT_THAT(whole, HasSubstr("|1 delivered none 250 ok message accepted"));
  EXPECT_THAT(whole, HasSubstr("|2 bounced recipient 550 5.1.1 no RCPT TO rejected"));
  EXPECT_THAT(whole, HasSubstr("|3 deferred message 451 4.3.0 later"));
  EXPECT_THAT(whole, HasSubstr("|4 delivered none"));
  EXPECT_THAT(whole, HasSubstr("|finished 1 '' none"));
  EXPECT_THAT(whole, HasSubstr("RSET\r\nMAIL FROM:<s3@a.example>"));
  EXPECT_THAT(whole, HasSubstr("message 4\r\n.\r\nQUIT\r\n"));
}

// ---- STARTTLS ----

constexpr std::string_view kEhloTls =
    "250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n";
constexpr std::string_view kEhloAfterTls = "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

SessionConfig tlsConfig(TlsPolicy policy) {
  SessionConfig c = testConfig();
  c.tls = policy;
  return c;
}

TEST_P(SessionTest, StartTlsWhenOfferedThenEhloAgain) {
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  EXPECT_EQ(session->state(), State::StartTls);
  EXPECT_EQ(session->timeout(), milliseconds{1010});
  EXPECT_EQ(sink.readyCalls, 0);  // no mail before TLS is settled
  submit(1);
  EXPECT_EQ(sent(), "");

  server("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(sink.startTlsCalls, 1);
  EXPECT_EQ(session->state(), State::TlsHandshake);
  EXPECT_EQ(session->timeout(), milliseconds{1010});
  EXPECT_FALSE(session->tlsActive());

  session->onTlsEstablished();
  EXPECT_TRUE(session->tlsActive());
  EXPECT_FALSE(session->capabilities().startTls);  // plaintext capabilities are forgotten
  EXPECT_EQ(sent(), "EHLO client.example\r\n");
  EXPECT_EQ(session->state(), State::Ehlo);

  server(kEhloAfterTls);
  EXPECT_TRUE(session->capabilities().pipelining);
  EXPECT_EQ(sent(), group(1));  // no second STARTTLS
  server("250 ok\r\n250 ok\r\n");
  server(kGo);
  EXPECT_EQ(sent(), dataOf(1));
  server("250 2.0.0 queued\r\n");
  expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  EXPECT_TRUE(result(0).tls);
  EXPECT_EQ(sink.startTlsCalls, 1);
}

// A server (or a man in the middle) that sends more after "220" must not have it read as
// replies: not in the same read, not byte by byte, and not as the start of a later reply.
TEST_P(SessionTest, BytesAfterStartTls220AreNotReplies) {
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("220 Ready\r\n250-injected\r\n250 PIPELINING\r\n554 5.0.0 injected\r\n250 inj");
  EXPECT_EQ(sink.startTlsCalls, 1);
  EXPECT_EQ(sink.finishedCalls, 0);
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(session->state(), State::TlsHandshake);
  session->onTlsEstablished();
  EXPECT_EQ(sent(), "EHLO client.example\r\n");
  server(kEhloAfterTls);  // would be garbled if "250 inj" were still buffered
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sink.readyCalls, 1);
  EXPECT_EQ(sink.finishedCalls, 0);
}

TEST_P(SessionTest, OpportunisticWithoutStartTlsStaysPlaintext) {
  open(kEhloPipelining);
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sink.startTlsCalls, 0);
  submit(1);
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n250 ok\r\n");
  server(kGo);
  server("250 ok\r\n");
  EXPECT_EQ(sent(), dataOf(1));
  EXPECT_FALSE(result(0).tls);
}

TEST_P(SessionTest, DisabledNeverSendsStartTls) {
  restart(tlsConfig(TlsPolicy::Disabled));
  open(kEhloTls);
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sink.startTlsCalls, 0);
}

TEST_P(SessionTest, RequiredDefersWhenStartTlsIsNotOffered) {
  for (TlsPolicy policy : {TlsPolicy::Required, TlsPolicy::Verify}) {
    restart(tlsConfig(policy));
    submit(7);
    open(kEhloPipelining);
    EXPECT_EQ(sent(), "QUIT\r\n");
    expectResult(0, 7, Disposition::Deferred, FailureScope::Site, 0,
                 "TLS required but STARTTLS not offered");
    EXPECT_EQ(sink.finishedCalls, 1);
    EXPECT_EQ(sink.finishScope, FailureScope::Site);
    EXPECT_THAT(sink.finishError, HasSubstr("does not offer STARTTLS"));
    EXPECT_THAT(sink.finishError, HasSubstr(tlsPolicyName(policy)));
  }
}

TEST_P(SessionTest, StartTlsRefused) {
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("454 4.7.0 TLS not available\r\n");
  EXPECT_EQ(session->state(), State::Idle);  // opportunistic: carry on in plaintext
  EXPECT_EQ(sink.readyCalls, 1);

  restart(tlsConfig(TlsPolicy::Required));
  submit(3);
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("454 4.7.0 TLS not available\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 3, Disposition::Deferred, FailureScope::Site, 454, "STARTTLS refused");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
}

TEST_P(SessionTest, FailedHandshakeDefersEverything) {
  submit(1);
  submit(2);
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("220 go ahead\r\n");
  session->onTlsFailed("certificate verify failed");
  EXPECT_EQ(sent(), "");  // no QUIT in the clear after a failed handshake
  const std::string detail = "TLS handshake failed: certificate verify failed";
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0, detail);
  expectResult(1, 2, Disposition::Deferred, FailureScope::Connection, 0, detail);
  EXPECT_FALSE(result(0).attempted);  // nothing of them went out: safe to retry elsewhere
  EXPECT_FALSE(result(1).attempted);
  EXPECT_EQ(sink.finishError, detail);
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);
}

TEST_P(SessionTest, FailedHandshakeReportedFromStartTlsCallback) {
  submit(1);
  sink.onStartTls = [this] { session->onTlsFailed("no TLS context"); };
  open(kEhloTls);
  server("220 go ahead\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Connection, 0,
               "TLS handshake failed: no TLS context");
  EXPECT_EQ(sink.finishedCalls, 1);
}

TEST_P(SessionTest, OnlyEnvelopesNeverStartedAreUnattempted) {
  open(kEhloPipelining);
  submit(1);
  submit(2);
  EXPECT_EQ(sent(), group(1));
  session->onDisconnected("reset by peer");
  ASSERT_EQ(sink.results.size(), 2u);
  EXPECT_TRUE(result(0).attempted);
  EXPECT_FALSE(result(1).attempted);
}

TEST_P(SessionTest, EightBitBodyDeclaredWhenTheServerTakesIt) {
  open(kEhloPlain);  // 8BITMIME, no pipelining
  submit(makeEnvelope(1, "Caf\xc3\xa9 au lait\r\n"));
  EXPECT_EQ(sent(), "MAIL FROM:<" + sender(1) + "> BODY=8BITMIME\r\n");

  restart(testConfig());
  open("250-mx.example\r\n250 PIPELINING\r\n");  // no 8BITMIME: sent as it is
  submit(makeEnvelope(1, "Caf\xc3\xa9\r\n"));
  EXPECT_EQ(sent(), group(1));
}

TEST_P(SessionTest, EightBitOctetFoundAnywhereInALongBody) {
  // A 6 KiB ASCII body with one 8-bit octet in its last line, then the same body without it.
  std::string body;
  for (int i = 0; i < 80; ++i) {
    body += std::string(74, 'a' + i % 26) + "\r\n";
  }
  open(kEhloPlain);  // 8BITMIME, no pipelining
  submit(makeEnvelope(1, body + "last line \x80\r\n"));
  EXPECT_EQ(sent(), "MAIL FROM:<" + sender(1) + "> BODY=8BITMIME\r\n");

  restart(testConfig());
  open(kEhloPlain);
  submit(makeEnvelope(1, body + "last line\r\n"));
  EXPECT_EQ(sent(), mailCmd(1));
}

TEST_P(SessionTest, NoTraceLinesWhenTheSinkDoesNotTrace) {
  // The same conversation with and without tracing: identical bytes and results, and no
  // trace() call at all when tracing() is false.
  std::vector<std::string> wire[2];
  for (const bool tracingOn : {true, false}) {
    restart(testConfig());
    sink.tracingOn = tracingOn;
    open(kEhloPipelining);
    submit(1);
    wire[tracingOn].push_back(sent());
    server("250 ok\r\n250 ok\r\n354 go\r\n");
    wire[tracingOn].push_back(sent());
    server("250 queued\r\n");
    session->quit();
    wire[tracingOn].push_back(sent());
    server("221 bye\r\n");
    expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
    EXPECT_EQ(sink.finishedCalls, 1);
    EXPECT_EQ(sink.traces.empty(), !tracingOn);
  }
  EXPECT_EQ(wire[0], wire[1]);
  EXPECT_EQ(wire[1], (std::vector<std::string>{group(1), dataOf(1), "QUIT\r\n"}));
}

TEST_P(SessionTest, NonAsciiAddressNeedsSmtpUtf8) {
  Envelope e = makeEnvelope(1, "hi\r\n");
  e.rcptTo = "j\xc3\xb6rg@b.example";
  open("250-mx.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
  submit(e);
  EXPECT_EQ(sent(), mailCmd(1).substr(0, mailCmd(1).size() - 2) +
                        " SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@b.example>\r\nDATA\r\n");

  restart(testConfig());
  open(kEhloPipelining);  // no SMTPUTF8: refused, permanently, nothing sent
  submit(e);
  submit(2);
  EXPECT_EQ(sent(), group(2));
  expectResult(0, 1, Disposition::Bounced, FailureScope::Message, 0,
               "the address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531)");
}

TEST_P(SessionTest, HandshakeTimeout) {
  open(kEhloTls);
  server("220 go ahead\r\n");
  session->onTimeout();
  EXPECT_EQ(sink.finishError, "timeout while in the TLS handshake");
  EXPECT_EQ(sink.finishScope, FailureScope::Connection);
}

// ---- AUTH ----

constexpr std::string_view kEhloAuth =
    "250-mx.example\r\n250-PIPELINING\r\n250-AUTH LOGIN PLAIN CRAM-MD5\r\n250 8BITMIME\r\n";
constexpr std::string_view kEhloAuthLogin =
    "250-mx.example\r\n250-AUTH=LOGIN\r\n250 AUTH LOGIN CRAM-MD5\r\n";

SessionConfig authConfig(bool allowPlaintext) {
  SessionConfig c = tlsConfig(TlsPolicy::Opportunistic);
  c.auth = AuthSettings{"user@example", "s3cret", allowPlaintext};
  c.timeouts.auth = milliseconds{1011};
  return c;
}

// No line of the trace may carry the password or its base64 forms.
void expectNoSecretTraced(const Recorder& sink) {
  for (const std::string& line : sink.traces) {
    EXPECT_THAT(line, ::testing::Not(HasSubstr("s3cret"))) << line;
    EXPECT_THAT(line, ::testing::Not(HasSubstr("czNjcmV0"))) << line;
    EXPECT_THAT(line, ::testing::Not(HasSubstr("AHVzZXJAZXhhbXBsZQBzM2NyZXQ="))) << line;
  }
}

TEST_P(SessionTest, AuthPlainAfterStartTls) {
  restart(authConfig(false));
  submit(1);
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("220 go ahead\r\n");
  session->onTlsEstablished();
  EXPECT_EQ(sent(), "EHLO client.example\r\n");
  server(kEhloAuth);
  // RFC 4616: base64("\0user@example\0s3cret"), as the initial response (RFC 4954 §4).
  EXPECT_EQ(sent(), "AUTH PLAIN AHVzZXJAZXhhbXBsZQBzM2NyZXQ=\r\n");
  EXPECT_EQ(session->state(), State::Auth);
  EXPECT_EQ(session->timeout(), milliseconds{1011});
  EXPECT_EQ(sink.readyCalls, 0);  // no mail before AUTH is settled
  server("235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(sent(), group(1));
  server("250 ok\r\n250 ok\r\n");
  server(kGo);
  EXPECT_EQ(sent(), dataOf(1));
  server("250 2.0.0 queued\r\n");
  expectResult(0, 1, Disposition::Delivered, FailureScope::None, 250, "message accepted");
  EXPECT_TRUE(sink.traced("C: AUTH PLAIN <credentials hidden>"));
  expectNoSecretTraced(sink);
}

TEST_P(SessionTest, AuthLoginWhenPlainIsNotOffered) {
  restart(authConfig(true));
  open(kEhloAuthLogin);
  EXPECT_EQ(sent(), "AUTH LOGIN\r\n");
  EXPECT_EQ(session->state(), State::Auth);
  server("334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(sent(), "dXNlckBleGFtcGxl\r\n");
  server("334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(sent(), "czNjcmV0\r\n");
  EXPECT_EQ(sink.readyCalls, 0);
  server("235 2.7.0 ok\r\n");
  EXPECT_EQ(session->state(), State::Idle);
  EXPECT_EQ(sink.readyCalls, 1);
  submit(1);
  EXPECT_EQ(sent(), mailCmd(1));
  EXPECT_TRUE(sink.traced("C: <password hidden>"));
  expectNoSecretTraced(sink);
}

TEST_P(SessionTest, AuthFailureDefersWithSiteScope) {
  restart(authConfig(true));
  submit(1);
  submit(2);
  open(kEhloAuth);
  EXPECT_EQ(sent(), "AUTH PLAIN AHVzZXJAZXhhbXBsZQBzM2NyZXQ=\r\n");
  server("535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 535, "authentication failed");
  expectResult(1, 2, Disposition::Deferred, FailureScope::Site, 535, "authentication failed");
  EXPECT_FALSE(result(0).attempted);
  EXPECT_EQ(sink.finishedCalls, 1);
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
  EXPECT_EQ(sink.finishError,
            "authentication failed: 535 5.7.8 Authentication credentials invalid");
  expectNoSecretTraced(sink);
}

TEST_P(SessionTest, AuthLoginRejectedAfterPassword) {
  restart(authConfig(true));
  submit(1);
  open(kEhloAuthLogin);
  EXPECT_EQ(sent(), "AUTH LOGIN\r\n");
  server("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(sent(), "dXNlckBleGFtcGxl\r\nczNjcmV0\r\n");
  server("535 5.7.8 no\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 535, "authentication failed");
  EXPECT_EQ(sink.finishError, "authentication failed: 535 5.7.8 no");
}

TEST_P(SessionTest, AuthWithoutSupportedMechanismDefers) {
  for (std::string_view ehlo :
       {kEhloPipelining, std::string_view("250-mx.example\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n")}) {
    restart(authConfig(true));
    submit(1);
    open(ehlo);
    EXPECT_EQ(sent(), "QUIT\r\n");
    expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 0, "no supported AUTH mechanism");
    EXPECT_EQ(sink.finishScope, FailureScope::Site);
    EXPECT_THAT(sink.finishError, HasSubstr("offers no supported mechanism (PLAIN, LOGIN)"));
  }
  EXPECT_THAT(sink.finishError, HasSubstr("it offers: CRAM-MD5 XOAUTH2"));
}

TEST_P(SessionTest, AuthRefusedWithoutTls) {
  // The server offers no STARTTLS, and plaintext AUTH is not allowed.
  restart(authConfig(false));
  submit(1);
  open(kEhloAuth);
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 1, Disposition::Deferred, FailureScope::Site, 0,
               "refusing to send credentials without TLS");
  EXPECT_EQ(sink.finishScope, FailureScope::Site);
  EXPECT_THAT(sink.finishError, HasSubstr("the server does not offer STARTTLS"));
  EXPECT_THAT(sink.finishError, HasSubstr("allow_plaintext_auth"));

  // STARTTLS refused by an opportunistic session: still no credentials in plaintext.
  restart(authConfig(false));
  submit(2);
  open(kEhloTls);
  EXPECT_EQ(sent(), "STARTTLS\r\n");
  server("454 4.7.0 TLS not available\r\n");
  EXPECT_EQ(sent(), "QUIT\r\n");
  expectResult(0, 2, Disposition::Deferred, FailureScope::Site, 0,
               "refusing to send credentials without TLS");
}

TEST_P(SessionTest, NoCredentialsNoAuth) {
  open(kEhloAuth);
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(session->state(), State::Idle);
}

INSTANTIATE_TEST_SUITE_P(Feeding, SessionTest, ::testing::Values(Feed::Whole, Feed::ByteAtATime),
                         [](const ::testing::TestParamInfo<Feed>& info) {
                           return info.param == Feed::Whole ? "Whole" : "ByteAtATime";
                         });

}  // namespace
}  // namespace salvo::smtp
