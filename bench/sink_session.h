// The server side of an SMTP session for `salvo sink`: a pure state machine (no I/O, no
// clock). Contract: it is fed the bytes a client sent and answers through
// SinkSessionEvents: reply bytes, each accepted message, each refused recipient and the
// end of the session. It processes every complete command of the input in order
// (pipelining, RFC 2920) and hands the replies to one feed() over in one sendReply().
// Fault injection is per recipient: a RCPT whose address contains a `rejectRcpt`
// substring gets 550, one containing a `deferRcpt` substring gets 451.
// AUTH (RFC 4954, PLAIN and LOGIN) when `authUser` is set: it is advertised, MAIL needs it
// first (530), and credentials other than the configured ones get 535.
// It is a benchmark target: no allocation per line or per message once its buffers have
// grown (recipient strings and the data buffer keep their capacity), and the data phase
// scans with memchr instead of byte by byte.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::bench {

struct SinkRules {
  std::string hostname = "salvo-sink";
  std::vector<std::string> rejectRcpt;  // substrings -> "550 5.1.1 <addr>: mailbox unavailable"
  std::vector<std::string> deferRcpt;   // substrings -> "451 4.3.0 <addr>: try again later"
  std::size_t maxMessageSize = 64 * 1024 * 1024;  // octets, advertised as SIZE
  std::size_t maxRecipients = 1000;               // per message; more get 452
  bool capture = false;  // keep the message data for onMessage (a maildir needs it)
  // Fault: after this many accepted messages on a connection, answer the next MAIL with
  // "421 4.7.0" and close (a provider's per-connection limit); 0 = never.
  std::size_t reply421Every = 0;
  std::string authUser;  // "" = no AUTH
  std::string authPassword;
};

struct SinkMessage {
  std::string_view from;                    // "" for the null sender
  std::span<const std::string> recipients;  // the accepted ones, in order
  std::string_view data;  // dot-unstuffed, as received (CRLF); empty unless capturing
  std::size_t size = 0;   // octets of the unstuffed data, counted even when not capturing
};

class SinkSessionEvents {
 public:
  virtual ~SinkSessionEvents() = default;
  // Reply bytes to send, in order (one or more complete replies).
  virtual void sendReply(std::string_view bytes) = 0;
  // A message passed the final dot. Return false and set `error` to refuse it with
  // "451 4.3.0 <error>" (e.g. the maildir write failed); the 250 is sent only after this
  // returns true.
  virtual bool onMessage(const SinkMessage& message, std::string& error) = 0;
  // A RCPT refused by a fault rule: permanent (550) or not (451).
  virtual void onRecipientRefused(std::string_view address, bool permanent) = 0;
  // The client sent QUIT; the 221 reply has been handed to sendReply(). The last call
  // of a feed(): the session may be destroyed inside it.
  virtual void onQuit() = 0;
};

class SinkSession {
 public:
  enum class State {
    Greeting,  // before EHLO/HELO
    Idle,      // no transaction
    Mail,      // MAIL accepted, collecting RCPTs
    Data,      // receiving message data
    Closed,    // after QUIT: input is ignored
  };
  static const char* stateName(State state);

  static constexpr std::size_t kMaxCommandLine = 2048;  // octets, excluding CRLF

  // `rules` and `events` must outlive the session. Events must not destroy the session
  // except inside onQuit().
  SinkSession(const SinkRules& rules, SinkSessionEvents& events);

  // Sends the 220 greeting.
  void greet();
  // Consumes all of `bytes` (any slicing gives the same replies and messages).
  void feed(std::string_view bytes);

  State state() const { return state_; }

 private:
  enum class DataState { LineStart, Dot, DotCr, Middle };

  std::size_t consumeData(std::string_view in);
  void appendData(const char* p, std::size_t n);
  void finishMessage();
  void command(std::string_view line);
  void ehlo(std::string_view args, bool extended);
  void mail(std::string_view args);
  void rcpt(std::string_view args);
  void data(std::string_view args);
  void auth(std::string_view args);
  void authResponse(std::string_view line);  // a line of an AUTH exchange
  void checkCredentials(std::string_view user, std::string_view password);
  void resetTransaction();
  void reply(std::string_view text);  // appends text + CRLF
  void flushReplies();

  const SinkRules& rules_;
  SinkSessionEvents& events_;
  std::string ehloReply_;

  State state_ = State::Greeting;
  std::string line_;         // a command line split across feeds
  bool discarding_ = false;  // skipping the rest of an over-long command line
  std::string out_;          // replies of this feed()
  bool quit_ = false;

  std::size_t accepted_ = 0;  // messages accepted on this connection

  // AUTH.
  enum class AuthStep { None, Plain, LoginUser, LoginPassword };
  AuthStep authStep_ = AuthStep::None;
  bool authenticated_ = false;
  std::string authUser_;  // LOGIN: the user name, between the two prompts

  // The transaction.
  std::string from_;
  std::vector<std::string> rcpts_;  // the first rcptCount_ are in use; the rest keep capacity
  std::size_t rcptCount_ = 0;
  bool rcptAttempted_ = false;
  std::string data_;
  std::size_t size_ = 0;
  bool oversize_ = false;
  DataState dataState_ = DataState::LineStart;
  bool prevCr_ = false;  // in Middle: the last data octet was CR
};

}  // namespace salvo::bench
