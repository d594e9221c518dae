#include "bench/sink_session.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <utility>
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
  MailAdmission onMail() override {
    ++mails;
    return mails > admitMails ? overAdmission : MailAdmission::Accept;
  }
  void onDrop() override { ++drops; }
  void onFault(SinkFault fault) override { faults.push_back(fault); }
  void onStartTls() override { ++startTls; }

  int mails = 0;
  int admitMails = 1 << 30;  // onMail() accepts this many, then answers overAdmission
  MailAdmission overAdmission = MailAdmission::Accept;
  int drops = 0;
  int startTls = 0;
  std::vector<SinkFault> faults;
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
    feed(session, input);
    lastState_ = session.state();
    return events_.replies;
  }

  // Feeds `input` to `session` sliced as the parameter says.
  void feed(SinkSession& session, std::string_view input) {
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
  }

  // The replies to `input` on `session`, then forgotten.
  std::string take(SinkSession& session, std::string_view input) {
    feed(session, input);
    return std::exchange(events_.replies, {});
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

// --- fault injection ---

// MAIL, then one RCPT per address, as one pipelined group.
std::string rcptGroup(const std::vector<std::string>& addresses) {
  std::string in = "EHLO c\r\nMAIL FROM:<s@origin.example>\r\n";
  for (const auto& a : addresses) {
    in += "RCPT TO:<" + a + ">\r\n";
  }
  return in;
}

std::vector<std::string> addresses(const std::string& domain, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back("user" + std::to_string(i) + "@" + domain);
  }
  return out;
}

std::size_t countOf(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t p = text.find(needle); p != std::string_view::npos;
       p = text.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

TEST(FaultHashTest, IsDeterministicAndInTheUnitInterval) {
  EXPECT_EQ(faultHash(1, "a@b.example"), faultHash(1, "a@b.example"));
  EXPECT_NE(faultHash(1, "a@b.example"), faultHash(2, "a@b.example"));
  EXPECT_NE(faultHash(1, "a@b.example"), faultHash(1, "c@b.example"));
  double sum = 0;
  for (int i = 0; i < 1000; ++i) {
    double u = faultHash(7, "r" + std::to_string(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 1000, 0.5, 0.05);  // spread, not stuck at one end
}

TEST_P(SinkSessionTest, RejectFractionFollowsTheAddressHash) {
  rules_.faults = {DomainFaults{{}, 0, 0.3}};
  rules_.seed = 42;
  const auto rcpts = addresses("d.example", 200);
  std::string expected = std::string(kEhloReply) + "250 2.1.0 Ok\r\n";
  std::size_t rejected = 0;
  for (const auto& a : rcpts) {
    if (faultHash(42, a) < 0.3) {
      expected += "550 5.1.1 <" + a + ">: recipient address rejected: user unknown\r\n";
      ++rejected;
    } else {
      expected += "250 2.1.5 Ok\r\n";
    }
  }
  EXPECT_EQ(run(rcptGroup(rcpts)), expected);
  EXPECT_GT(rejected, 30U);  // the seed gives 0.3 of 200, give or take
  EXPECT_LT(rejected, 90U);
  EXPECT_EQ(events_.faults, std::vector<SinkFault>(rejected, SinkFault::Rejected5xx));
  EXPECT_TRUE(events_.refused.empty());  // the substring rules' counter is not touched
}

TEST_P(SinkSessionTest, DeferFractionIsReproducibleForASeed) {
  rules_.faults = {DomainFaults{{}, 0.5, 0}};
  rules_.seed = 9;
  const auto rcpts = addresses("d.example", 100);
  std::string first = run(rcptGroup(rcpts));
  std::size_t deferred = countOf(first, "451 4.7.1 <");
  EXPECT_EQ(deferred + countOf(first, "250 2.1.5 Ok"), 100U);
  EXPECT_GT(deferred, 20U);
  EXPECT_LT(deferred, 80U);
  EXPECT_NE(first.find("451 4.7.1 <user"), std::string::npos);
  EXPECT_NE(first.find(">: temporarily deferred, try again later\r\n"), std::string::npos);
  EXPECT_EQ(events_.faults.size(), deferred);

  events_ = Recorder{};
  EXPECT_EQ(run(rcptGroup(rcpts)), first);  // same seed, same answers, any slicing
  events_ = Recorder{};
  rules_.seed = 10;
  EXPECT_NE(run(rcptGroup(rcpts)), first);
}

TEST_P(SinkSessionTest, FaultTableIsPerDomainFirstMatchWins) {
  rules_.faults = {DomainFaults{{"gmail", "googlemail"}, 0, 1.0}, DomainFaults{{}, 1.0, 0}};
  std::string replies =
      run(rcptGroup({"a@gmail.com", "b@googlemail.com", "c@other.example", "d@mx.gmail.example"}));
  EXPECT_EQ(replies, std::string(kEhloReply) +
                         "250 2.1.0 Ok\r\n"
                         "550 5.1.1 <a@gmail.com>: recipient address rejected: user unknown\r\n"
                         "550 5.1.1 <b@googlemail.com>: recipient address rejected: user "
                         "unknown\r\n"
                         "451 4.7.1 <c@other.example>: temporarily deferred, try again later\r\n"
                         "550 5.1.1 <d@mx.gmail.example>: recipient address rejected: user "
                         "unknown\r\n");
  EXPECT_EQ(events_.faults,
            (std::vector<SinkFault>{SinkFault::Rejected5xx, SinkFault::Rejected5xx,
                                    SinkFault::Deferred4xx, SinkFault::Rejected5xx}));
}

TEST_P(SinkSessionTest, DomainWithoutAnEntryGetsNoFaults) {
  rules_.faults = {DomainFaults{{"yahoo"}, 1.0, 0}};
  EXPECT_EQ(run(rcptGroup({"a@other.example"})),
            std::string(kEhloReply) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_TRUE(events_.faults.empty());
}

const char* kTwoMessages =
    "EHLO c\r\n"
    "MAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\none\r\n.\r\n"
    "MAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\ntwo\r\n.\r\n"
    "QUIT\r\n";

TEST_P(SinkSessionTest, DropAfterClosesWithoutAnsweringTheNextMail) {
  rules_.dropAfter = 1;
  // The first message is answered (its 250 goes out); the second MAIL gets nothing.
  EXPECT_EQ(run(kTwoMessages), std::string(kEhloReply) +
                                   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                   "354 End data with <CR><LF>.<CR><LF>\r\n"
                                   "250 2.0.0 Ok: queued\r\n");
  EXPECT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.drops, 1);
  EXPECT_EQ(events_.quits, 0);
  EXPECT_EQ(events_.faults, std::vector<SinkFault>{SinkFault::Dropped});
  EXPECT_EQ(lastState_, SinkSession::State::Closed);
}

TEST_P(SinkSessionTest, RateLimitedMailGets421AndTheSessionEnds) {
  events_.admitMails = 1;
  events_.overAdmission = MailAdmission::RateLimited;
  EXPECT_EQ(run(kTwoMessages), std::string(kEhloReply) +
                                   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                   "354 End data with <CR><LF>.<CR><LF>\r\n"
                                   "250 2.0.0 Ok: queued\r\n"
                                   "421 4.7.0 rate limited, slow down\r\n");
  EXPECT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.quits, 1);
  EXPECT_EQ(events_.mails, 2);
  EXPECT_EQ(lastState_, SinkSession::State::Closed);
}

TEST_P(SinkSessionTest, OwnerMayDropAtMail) {
  events_.admitMails = 0;
  events_.overAdmission = MailAdmission::Drop;
  EXPECT_EQ(run(kTwoMessages), kEhloReply);
  EXPECT_EQ(events_.drops, 1);
  EXPECT_TRUE(events_.messages.empty());
}

TEST_P(SinkSessionTest, OnMailIsAskedOnlyForAWellFormedMail) {
  run("MAIL FROM:<a@x>\r\nEHLO c\r\nMAIL FROM:bad\r\nMAIL FROM:<a@x> FOO=1\r\n");
  EXPECT_EQ(events_.mails, 0);
}

TEST_P(SinkSessionTest, ConnectionLimit421IsCountedAsAFault) {
  rules_.reply421Every = 1;
  EXPECT_EQ(run(kTwoMessages), std::string(kEhloReply) +
                                   "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                                   "354 End data with <CR><LF>.<CR><LF>\r\n"
                                   "250 2.0.0 Ok: queued\r\n"
                                   "421 4.7.0 too many messages on this connection, closing\r\n");
  EXPECT_EQ(events_.faults, std::vector<SinkFault>{SinkFault::ConnectionLimit});
  EXPECT_EQ(events_.quits, 1);
}

// --- CHUNKING (BDAT) ---

const char* kEhloChunking =
    "250-salvo-sink\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 67108864\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n";

TEST_P(SinkSessionTest, BdatIsRefusedUnlessChunkingIsOn) {
  EXPECT_EQ(run("EHLO c\r\nBDAT 0 LAST\r\n"),
            std::string(kEhloReply) + "502 5.5.1 command not implemented\r\n");
}

TEST_P(SinkSessionTest, BdatChunksMakeOneMessage) {
  rules_.chunking = true;
  // Chunks are raw octets: a line with a lone dot and a CRLF.CRLF are data, not an end.
  const std::string first = "Subject: x\r\n\r\n.\r\n";
  const std::string second = "..two\r\n.\r\n";
  std::string replies = run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " +
                            std::to_string(first.size()) + "\r\n" + first + "BDAT " +
                            std::to_string(second.size()) + " LAST\r\n" + second + "QUIT\r\n");
  EXPECT_EQ(replies, std::string(kEhloChunking) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n" +
                         "250 2.0.0 " + std::to_string(first.size()) + " octets received\r\n" +
                         "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].data, first + second);
  EXPECT_EQ(events_.messages[0].size, first.size() + second.size());
}

TEST_P(SinkSessionTest, BdatZeroLastEndsTheMessage) {
  rules_.chunking = true;
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n");
  EXPECT_EQ(replies, std::string(kEhloChunking) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 3 octets received\r\n"
                         "250 2.0.0 Ok: queued\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].data, "abc");
  EXPECT_EQ(lastState_, SinkSession::State::Idle);
}

TEST_P(SinkSessionTest, FailedBdatStillConsumesItsChunk) {
  rules_.chunking = true;
  rules_.rejectRcpt = {"bad"};
  // Out of sequence, and with no valid recipient: the chunk's octets ("RSET\r\n",
  // "QUIT\r\n") must not be taken for commands.
  std::string replies =
      run("EHLO c\r\nBDAT 6\r\nRSET\r\n"
          "MAIL FROM:<a@x>\r\nRCPT TO:<bad@y>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n");
  EXPECT_EQ(replies, std::string(kEhloChunking) +
                         "503 5.5.1 need MAIL before BDAT\r\n"
                         "250 2.1.0 Ok\r\n"
                         "550 5.1.1 <bad@y>: mailbox unavailable\r\n"
                         "554 5.5.1 no valid recipients\r\n"
                         "250 2.0.0 Ok\r\n");
  EXPECT_TRUE(events_.messages.empty());
  EXPECT_EQ(lastState_, SinkSession::State::Mail);
}

TEST_P(SinkSessionTest, BdatSyntaxAndMixingWithData) {
  rules_.chunking = true;
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"
          "BDAT\r\nBDAT x\r\nBDAT 1 FIRST\r\n"
          "BDAT 1\r\nzDATA\r\nRSET\r\n");
  EXPECT_EQ(replies, std::string(kEhloChunking) +
                         "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                         "501 5.5.4 syntax: BDAT chunk-size [LAST]\r\n"
                         "501 5.5.4 syntax: BDAT chunk-size [LAST]\r\n"
                         "501 5.5.4 syntax: BDAT chunk-size [LAST]\r\n"
                         "250 2.0.0 1 octets received\r\n"
                         "503 5.5.1 DATA not permitted after BDAT\r\n"
                         "250 2.0.0 Ok\r\n");
}

TEST_P(SinkSessionTest, OversizedBdatMessageIsRefusedAtLast) {
  rules_.chunking = true;
  rules_.maxMessageSize = 4;
  std::string replies =
      run("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 3\r\nabcBDAT 3 LAST\r\ndef"
          "NOOP\r\n");
  EXPECT_NE(replies.find("250 2.0.0 3 octets received\r\n"
                         "552 5.3.4 message exceeds the size limit of 4 octets\r\n"
                         "250 2.0.0 Ok\r\n"),
            std::string::npos)
      << replies;
  EXPECT_TRUE(events_.messages.empty());
}

// --- STARTTLS (RFC 3207) ---

const char* kEhloReplyWithStartTls =
    "250-salvo-sink\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 67108864\r\n"
    "250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-STARTTLS\r\n"
    "250 SMTPUTF8\r\n";

TEST_P(SinkSessionTest, StartTlsDropsPipelinedPlaintextAndNeedsEhloAgain) {
  rules_.startTls = true;
  SinkSession session(rules_, events_);
  session.greet();
  events_.replies.clear();
  // CVE-2011-0411: commands pipelined after STARTTLS, before the handshake, are injected
  // by whoever sits on the path; none of them may be acted on, even if split over reads.
  EXPECT_EQ(
      take(session, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\n"),
      std::string(kEhloReplyWithStartTls) + "220 2.0.0 ready to start TLS\r\n");
  EXPECT_EQ(session.state(), SinkSession::State::StartTls);
  EXPECT_EQ(events_.startTls, 1);
  EXPECT_EQ(events_.mails, 0);
  EXPECT_EQ(take(session, "QUIT\r\n"), "");  // still before the handshake: ignored
  EXPECT_EQ(events_.quits, 0);

  session.tlsEstablished();
  EXPECT_TRUE(session.tls());
  EXPECT_EQ(session.state(), SinkSession::State::Greeting);
  EXPECT_EQ(take(session, "MAIL FROM:<a@x>\r\nEHLO c\r\nSTARTTLS\r\n"),
            std::string("503 5.5.1 send EHLO or HELO first\r\n") + kEhloReply +
                "503 5.5.1 TLS already active\r\n");
  EXPECT_EQ(take(session, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
  ASSERT_EQ(events_.messages.size(), 1U);
  EXPECT_EQ(events_.messages[0].from, "a@x");
  EXPECT_EQ(events_.startTls, 1);
}

TEST_P(SinkSessionTest, StartTlsSequencingAndSyntax) {
  rules_.startTls = true;
  EXPECT_EQ(run("STARTTLS\r\nEHLO c\r\nSTARTTLS now\r\nMAIL FROM:<a@x>\r\nSTARTTLS\r\n"),
            std::string("503 5.5.1 send EHLO first\r\n") + kEhloReplyWithStartTls +
                "501 5.5.4 syntax: STARTTLS\r\n"
                "250 2.1.0 Ok\r\n"
                "503 5.5.1 STARTTLS not permitted during a mail transaction\r\n");
  EXPECT_EQ(events_.startTls, 0);
  EXPECT_EQ(lastState_, SinkSession::State::Mail);
}

TEST_P(SinkSessionTest, AuthenticationIsForgottenAfterTheHandshake) {
  rules_.startTls = true;
  rules_.authUser = "u";
  rules_.authPassword = "p";
  SinkSession session(rules_, events_);
  session.greet();
  events_.replies.clear();
  // "\0u\0p" in base64.
  std::string replies = take(session, "EHLO c\r\nAUTH PLAIN AHUAcA==\r\nSTARTTLS\r\n");
  EXPECT_TRUE(
      replies.ends_with("235 2.7.0 Authentication successful\r\n"
                        "220 2.0.0 ready to start TLS\r\n"))
      << replies;
  session.tlsEstablished();
  replies = take(session, "EHLO c\r\nMAIL FROM:<a@x>\r\n");
  EXPECT_TRUE(replies.ends_with("530 5.7.0 authentication required\r\n")) << replies;
  EXPECT_EQ(replies.find("STARTTLS"), std::string::npos) << replies;
}

}  // namespace
}  // namespace salvo::bench
