#include "bench/sink_session.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

// Counts heap allocations made while `gCounting` is set (the per-message allocation test).
// The replacements are kept out of line: inlined into this file, GCC -O2 would pair each
// new-expression with the free() inside and warn (-Wmismatched-new-delete).
namespace {
thread_local bool gCounting = false;
thread_local std::size_t gAllocations = 0;
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  if (gCounting) {
    ++gAllocations;
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  return operator new(n);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace salvo::bench {
namespace {

struct Message {
  std::string from;
  std::vector<std::string> recipients;
  std::string data;
  std::size_t size = 0;
};

class Recorder : public SinkSessionEvents {
 public:
  std::string replies;
  int sends = 0;
  std::vector<Message> messages;
  std::vector<std::pair<std::string, bool>> refused;
  int quits = 0;
  std::string failMessage;  // when set, onMessage refuses with it

  void sendReply(std::string_view bytes) override {
    replies.append(bytes);
    ++sends;
  }
  bool onMessage(const SinkMessage& m, std::string& error) override {
    if (!failMessage.empty()) {
      error = failMessage;
      return false;
    }
    Message copy;
    copy.from = std::string(m.from);
    for (const auto& r : m.recipients) {
      copy.recipients.push_back(r);
    }
    copy.data = std::string(m.data);
    copy.size = m.size;
    messages.push_back(std::move(copy));
    return true;
  }
  void onRecipientRefused(std::string_view address, bool permanent) override {
    refused.emplace_back(std::string(address), permanent);
  }
  void onQuit() override { ++quits; }
};

enum class Slicing { Whole, ByteAtATime, Chunks };

std::string sliceName(const testing::TestParamInfo<Slicing>& info) {
  switch (info.param) {
    case Slicing::Whole:
      return "Whole";
    case Slicing::ByteAtATime:
      return "ByteAtATime";
    case Slicing::Chunks:
      return "Chunks";
  }
  return "?";
}

class SinkSessionTest : public testing::TestWithParam<Slicing> {
 protected:
  SinkSessionTest() { rules_.capture = true; }

  // Greets, then feeds `input` sliced as the parameter says; returns the replies after
  // the greeting.
  std::string run(std::string_view input) {
    SinkSession session(rules_, events_);
    session.greet();
    greeting_ = events_.replies;
    events_.replies.clear();
    events_.sends = 0;
    switch (GetParam()) {
      case Slicing::Whole:
        session.feed(input);
        break;
      case Slicing::ByteAtATime:
        for (char c : input) {
          session.feed(std::string_view(&c, 1));
        }
        break;
      case Slicing::Chunks:
        // Uneven chunks, so that CRLF, "." and "\r\n.\r\n" fall across boundaries.
        for (std::size_t pos = 0, step = 1; pos < input.size(); pos += step, step = step % 7 + 1) {
          session.feed(input.substr(pos, step));
        }
        break;
    }
    lastState_ = session.state();
    return events_.replies;
  }

  SinkRules rules_;
  Recorder events_;
  std::string greeting_;
  SinkSession::State lastState_ = SinkSession::State::Greeting;
};

INSTANTIATE_TEST_SUITE_P(AllSlicings, SinkSessionTest,
                         testing::Values(Slicing::Whole, Slicing::ByteAtATime, Slicing::Chunks),
                         sliceName);

const char* kEhloReply =
    "250-salvo-sink\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 67108864\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250 SMTPUTF8\r\n";

TEST_P(SinkSessionTest, GreetsAndAdvertisesExtensions) {
  EXPECT_EQ(run("EHLO client.example\r\n"), kEhloReply);
  EXPECT_EQ(greeting_, "220 salvo-sink ESMTP salvo-sink\r\n");
  EXPECT_EQ(lastState_, SinkSession::State::Idle);
}

TEST_P(SinkSessionTest, HeloAndMissingArguments) {
  EXPECT_EQ(run("HELO\r\nEHLO \r\nHELO client\r\n"),
            "501 5.5.4 syntax: HELO domain\r\n"
            "501 5.5.4 syntax: EHLO domain\r\n"
            "250 salvo-sink\r\n");
}

TEST_P(SinkSessionTest, AnswersAPipelinedGroupInOrder) {
  std::string replies =
      run("EHLO c\r\n"
          "MAIL FROM:<alice@example.com> SIZE=30 BODY=8BITMIME SMTPUTF8\r\n"
          "RCPT TO:<bob@example.net>\r\n"
          "RCPT TO:<carol@example.net>\r\n"
          "DATA\r\n"
          "Subject: hi\r\n"
          "\r\n"
          "hello\r\n"
          ".\r\n"
          "QUIT\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n"
                         "250 2.1.5 Ok\r\n"
                         "250 2.1.5 Ok\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued\r\n"
                         "221 2.0.0 Bye\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  const Message& m = events_.messages[0];
  EXPECT_EQ(m.from, "alice@example.com");
  EXPECT_EQ(m.recipients, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(m.data, "Subject: hi\r\n\r\nhello\r\n");
  EXPECT_EQ(m.size, m.data.size());
  EXPECT_EQ(events_.quits, 1);
  EXPECT_EQ(lastState_, SinkSession::State::Closed);
  if (GetParam() == Slicing::Whole) {
    EXPECT_EQ(events_.sends, 1);  // the whole group answered in one go
  }
}

TEST_P(SinkSessionTest, WarmConnectionCarriesMessagesBackToBack) {
  // The final dot of one message and the next MAIL/RCPT/DATA arrive together.
  std::string replies =
      run("EHLO c\r\n"
          "MAIL FROM:<a@x>\r\nRCPT TO:<one@y>\r\nRCPT TO:<two@y>\r\nDATA\r\n"
          "first\r\n.\r\n"
          "MAIL FROM:<>\r\nRCPT TO:<three@y>\r\nDATA\r\n"
          "second\r\n.\r\n"
          "RSET\r\nNOOP\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued\r\n"
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued\r\n"
                         "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
  ASSERT_EQ(events_.messages.size(), 2U);
  EXPECT_EQ(events_.messages[0].data, "first\r\n");
  EXPECT_EQ(events_.messages[0].recipients, (std::vector<std::string>{"one@y", "two@y"}));
  EXPECT_EQ(events_.messages[1].from, "");
  EXPECT_EQ(events_.messages[1].recipients, std::vector<std::string>{"three@y"});
  EXPECT_EQ(events_.messages[1].data, "second\r\n");
  EXPECT_EQ(lastState_, SinkSession::State::Idle);
}

TEST_P(SinkSessionTest, UnstuffsDots) {
  run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
      "..leading dot\r\n"
      "...\r\n"
      ". \r\n"
      "a.b\r\n"
      ".\rx\r\n"  // a dot then a bare CR: not the end; the dot is removed
      "bare\n"    // a bare LF does not start a line...
      ".\r\n"     // ...so this dot is data, not the end
      "..\r\n"
      ".\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].data,
            ".leading dot\r\n"
            "..\r\n"
            " \r\n"
            "a.b\r\n"
            "\rx\r\n"
            "bare\n"
            ".\r\n"
            ".\r\n");
  EXPECT_EQ(events_.messages[0].size, events_.messages[0].data.size());
}

TEST_P(SinkSessionTest, EmptyMessage) {
  run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].data, "");
  EXPECT_EQ(events_.messages[0].size, 0U);
}

TEST_P(SinkSessionTest, RejectAndDeferRules) {
  rules_.rejectRcpt = {"nobody", "@bad.example"};
  rules_.deferRcpt = {"later"};
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\n"
          "RCPT TO:<nobody@example.com>\r\n"
          "RCPT TO:<ok@example.com>\r\n"
          "RCPT TO:<x@bad.example>\r\n"
          "RCPT TO:<try-later@example.com>\r\n"
          "DATA\r\nbody\r\n.\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n"
                         "550 5.1.1 <nobody@example.com>: mailbox unavailable\r\n"
                         "250 2.1.5 Ok\r\n"
                         "550 5.1.1 <x@bad.example>: mailbox unavailable\r\n"
                         "451 4.3.0 <try-later@example.com>: try again later\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].recipients, std::vector<std::string>{"ok@example.com"});
  EXPECT_EQ(events_.refused,
            (std::vector<std::pair<std::string, bool>>{{"nobody@example.com", true},
                                                       {"x@bad.example", true},
                                                       {"try-later@example.com", false}}));
}

TEST_P(SinkSessionTest, DataWithNoAcceptedRecipient) {
  rules_.rejectRcpt = {"nobody"};
  std::string replies = run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<nobody@y>\r\nDATA\r\nRSET\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n"
                         "550 5.1.1 <nobody@y>: mailbox unavailable\r\n"
                         "554 5.5.1 no valid recipients\r\n"
                         "250 2.0.0 Ok\r\n");
  EXPECT_TRUE(events_.messages.empty());
  EXPECT_EQ(lastState_, SinkSession::State::Idle);
}

TEST_P(SinkSessionTest, SequencingErrors) {
  std::string replies =
      run("MAIL FROM:<a@x>\r\n"
          "RCPT TO:<b@y>\r\n"
          "DATA\r\n"
          "EHLO c\r\n"
          "RCPT TO:<b@y>\r\n"
          "DATA\r\n"
          "MAIL FROM:<a@x>\r\n"
          "DATA\r\n"
          "MAIL FROM:<a@x>\r\n");
  EXPECT_EQ(replies,
            "503 5.5.1 send EHLO or HELO first\r\n"
            "503 5.5.1 send EHLO or HELO first\r\n"
            "503 5.5.1 send EHLO or HELO first\r\n" +
                std::string(kEhloReply) +
                "503 5.5.1 need MAIL before RCPT\r\n"
                "503 5.5.1 need MAIL before DATA\r\n"
                "250 2.1.0 Ok\r\n"
                "503 5.5.1 need RCPT before DATA\r\n"
                "503 5.5.1 nested MAIL command\r\n");
  EXPECT_EQ(lastState_, SinkSession::State::Mail);
}

TEST_P(SinkSessionTest, UnknownAndUnimplementedCommands) {
  EXPECT_EQ(run("HELLO x\r\n\r\nVRFY root\r\nSTARTTLS\r\nXYZZY\r\nNOOP anything\r\n"),
            "500 5.5.2 command not recognized\r\n"
            "500 5.5.2 command not recognized\r\n"
            "502 5.5.1 command not implemented\r\n"
            "502 5.5.1 command not implemented\r\n"
            "500 5.5.2 command not recognized\r\n"
            "250 2.0.0 Ok\r\n");
}

TEST_P(SinkSessionTest, CommandsAreCaseInsensitiveAndBareLfIsTolerated) {
  std::string replies = run("ehlo c\nmail from:<a@x>\r\nrcpt to:<b@y>\r\ndata\r\nx\r\n.\r\nquit\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
}

TEST_P(SinkSessionTest, CommandLineLengthLimit) {
  std::string atLimit = "NOOP " + std::string(SinkSession::kMaxCommandLine - 5, 'x');
  std::string overLimit = atLimit + "y";
  std::string farOver = "MAIL FROM:<" + std::string(10000, 'z') + ">";
  std::string replies = run(atLimit + "\r\n" + overLimit + "\r\n" + farOver + "\r\nNOOP\r\n");
  EXPECT_EQ(replies,
            "250 2.0.0 Ok\r\n"
            "500 5.5.2 line too long\r\n"
            "500 5.5.2 line too long\r\n"
            "250 2.0.0 Ok\r\n");
}

TEST_P(SinkSessionTest, EnvelopeSyntaxErrors) {
  std::string replies =
      run("EHLO c\r\n"
          "MAIL TO:<a@x>\r\n"
          "MAIL FROM:a@x\r\n"
          "MAIL FROM:<a@x\r\n"
          "MAIL FROM:<a b@x>\r\n"
          "MAIL FROM:<a@x> FOO=1\r\n"
          "MAIL FROM:<a@x> SIZE=12x\r\n"
          "MAIL FROM:<a@x> SIZE=999999999999\r\n"
          "MAIL FROM:<a@x> BODY=BINARYMIME\r\n"
          "MAIL FROM: <@relay.example:a@x>\r\n"
          "RCPT TO:<>\r\n"
          "RCPT FROM:<b@y>\r\n"
          "RCPT TO:<b@y> NOTIFY=NEVER\r\n"
          "RCPT TO:<b@y>\r\n"
          "DATA now\r\n"
          "RSET please\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "501 5.5.4 syntax: MAIL FROM:<address>\r\n"
                         "501 5.1.7 bad sender address syntax\r\n"
                         "501 5.1.7 bad sender address syntax\r\n"
                         "501 5.1.7 bad sender address syntax\r\n"
                         "555 5.5.4 unsupported MAIL parameter FOO=1\r\n"
                         "501 5.5.4 bad SIZE value\r\n"
                         "552 5.3.4 message size exceeds fixed limit\r\n"
                         "555 5.5.4 unsupported MAIL parameter BODY=BINARYMIME\r\n"
                         "250 2.1.0 Ok\r\n"
                         "501 5.1.3 bad recipient address syntax\r\n"
                         "501 5.5.4 syntax: RCPT TO:<address>\r\n"
                         "555 5.5.4 unsupported RCPT parameter NOTIFY=NEVER\r\n"
                         "250 2.1.5 Ok\r\n"
                         "501 5.5.4 syntax: DATA\r\n"
                         "501 5.5.4 syntax: RSET\r\n");
}

TEST_P(SinkSessionTest, SourceRouteIsDropped) {
  run("EHLO c\r\nMAIL FROM:<@relay.example:a@x>\r\nRCPT TO:<@r1,@r2:b@y>\r\nDATA\r\n.\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].from, "a@x");
  EXPECT_EQ(events_.messages[0].recipients, std::vector<std::string>{"b@y"});
}

TEST_P(SinkSessionTest, TooManyRecipients) {
  rules_.maxRecipients = 2;
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\nRCPT TO:<3@y>\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
                         "452 4.5.3 too many recipients\r\n");
}

TEST_P(SinkSessionTest, OversizeMessageIsRefusedAfterTheDot) {
  rules_.maxMessageSize = 10;
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
          "0123456789abcdef\r\n.\r\n"
          "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
          "01234567\r\n.\r\n");
  EXPECT_NE(replies.find("552 5.3.4 message exceeds the size limit of 10 octets\r\n"
                         "250 2.1.0 Ok\r\n"),
            std::string::npos)
      << replies;
  ASSERT_EQ(events_.messages.size(), 1U);  // the second one (exactly 10 octets) fits
  EXPECT_EQ(events_.messages[0].data, "01234567\r\n");
}

TEST_P(SinkSessionTest, RefusedDeliveryIsA451) {
  events_.failMessage = "cannot write /maildir/tmp/x: No space left on device";
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                         "354 End data with <CR><LF>.<CR><LF>\r\n"
                         "451 4.3.0 cannot write /maildir/tmp/x: No space left on device\r\n"
                         "250 2.0.0 Ok\r\n");
}

TEST_P(SinkSessionTest, InputAfterQuitIsIgnored) {
  EXPECT_EQ(run("QUIT\r\nNOOP\r\nQUIT\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(events_.quits, 1);
}

TEST_P(SinkSessionTest, WithoutCaptureOnlyTheSizeIsReported) {
  rules_.capture = false;
  run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n..abc\r\ndef\r\n.\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].data, "");
  EXPECT_EQ(events_.messages[0].size, 11U);  // ".abc\r\ndef\r\n"
}

TEST_P(SinkSessionTest, EhloResetsAnOpenTransaction) {
  std::string replies = run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nEHLO c\r\nDATA\r\n");
  EXPECT_EQ(replies, std::string(kEhloReply) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" + kEhloReply +
                         "503 5.5.1 need MAIL before DATA\r\n");
}

// A session that drops what it is sent: allocations made by the test harness must not
// count against the session.
// base64("\0user\0pw") and its LOGIN halves: "user" = dXNlcg==, "pw" = cHc=.
TEST_P(SinkSessionTest, AuthPlainAndLogin) {
  rules_.authUser = "user";
  rules_.authPassword = "pw";
  EXPECT_EQ(run("EHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN AHVzZXIAcHc=\r\n"
                "AUTH PLAIN AHVzZXIAcHc=\r\nMAIL FROM:<a@b.example>\r\n"),
            "250-salvo-sink\r\n250-PIPELINING\r\n250-SIZE 67108864\r\n250-8BITMIME\r\n"
            "250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n"
            "530 5.7.0 authentication required\r\n"
            "235 2.7.0 Authentication successful\r\n"
            "503 5.5.1 already authenticated\r\n"
            "250 2.1.0 Ok\r\n");
  EXPECT_EQ(run("EHLO c\r\nAUTH LOGIN\r\ndXNlcg==\r\ncHc=\r\nMAIL FROM:<>\r\n")
                .substr(std::string_view(kEhloReply).size() + 22),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
            "250 2.1.0 Ok\r\n");
  EXPECT_EQ(run("EHLO c\r\nAUTH PLAIN\r\nAHVzZXIAcHc=\r\n")
                .substr(std::string_view(kEhloReply).size() + 22),
            "334 \r\n235 2.7.0 Authentication successful\r\n");
}

TEST_P(SinkSessionTest, AuthFailures) {
  rules_.authUser = "user";
  rules_.authPassword = "pw";
  const std::size_t ehlo =
      std::string_view(kEhloReply).size() + 22;  // + "250-AUTH PLAIN LOGIN\r\n"
  // Wrong password (base64("\0user\0px")), bad base64, cancelled LOGIN, unknown mechanism.
  EXPECT_EQ(run("EHLO c\r\nAUTH PLAIN AHVzZXIAcHg=\r\nAUTH PLAIN !!!!\r\nAUTH LOGIN\r\n*\r\n"
                "AUTH CRAM-MD5\r\nAUTH PLAIN dXNlcg==\r\n")
                .substr(ehlo),
            "535 5.7.8 Authentication credentials invalid\r\n"
            "501 5.5.2 cannot decode the response (base64)\r\n"
            "334 VXNlcm5hbWU6\r\n"
            "501 5.7.0 authentication cancelled\r\n"
            "504 5.5.4 unrecognized authentication mechanism\r\n"
            "501 5.5.2 malformed PLAIN response\r\n");
  EXPECT_EQ(run("AUTH PLAIN AHVzZXIAcHc=\r\n"), "503 5.5.1 send EHLO first\r\n");
}

TEST_P(SinkSessionTest, AuthIsNotImplementedWithoutCredentials) {
  EXPECT_EQ(
      run("EHLO c\r\nAUTH PLAIN AHVzZXIAcHc=\r\n").substr(std::string_view(kEhloReply).size()),
      "502 5.5.1 command not implemented\r\n");
}

class CountingEvents : public SinkSessionEvents {
 public:
  std::size_t replyBytes = 0;
  std::size_t messages = 0;
  void sendReply(std::string_view bytes) override { replyBytes += bytes.size(); }
  bool onMessage(const SinkMessage&, std::string&) override {
    ++messages;
    return true;
  }
  void onRecipientRefused(std::string_view, bool) override {}
  void onQuit() override {}
};

TEST(SinkSessionCostTest, NoAllocationPerMessageOnceWarm) {
  SinkRules rules;  // capture off, as for a benchmark run without a maildir
  CountingEvents events;
  SinkSession session(rules, events);
  session.greet();
  session.feed("EHLO c\r\n");
  std::string body;
  for (int i = 0; i < 200; ++i) {
    body += "Line " + std::to_string(i) + " of a message body that is long enough\r\n";
  }
  std::string transaction =
      "MAIL FROM:<sender@example.com>\r\nRCPT TO:<one@example.net>\r\n"
      "RCPT TO:<two@example.net>\r\nDATA\r\n" +
      body + ".\r\n";
  // Warm up: buffers grow to their working size.
  session.feed(transaction);
  session.feed(transaction.substr(0, 100));
  session.feed(transaction.substr(100));

  // The counter itself works.
  gAllocations = 0;
  gCounting = true;
  auto probe = std::make_unique<std::string>(100, 'x');
  gCounting = false;
  ASSERT_GE(gAllocations, 1U);
  probe.reset();

  gAllocations = 0;
  gCounting = true;
  for (int i = 0; i < 50; ++i) {
    session.feed(transaction);
  }
  gCounting = false;
  EXPECT_EQ(gAllocations, 0U);
  EXPECT_EQ(events.messages, 52U);
}

}  // namespace
}  // namespace salvo::bench
