// The server side of an SMTP session for `salvo sink`: a pure state machine (no I/O, no
// clock). Contract: it is fed the bytes a client sent and answers through
// SinkSessionEvents: reply bytes, each accepted message, each refused recipient and the
// end of the session. It processes every complete command of the input in order
// (pipelining, RFC 2920) and hands the replies to one feed() over in one sendReply().
// Fault injection is per recipient: a RCPT whose address contains a `rejectRcpt`
// substring gets 550, one containing a `deferRcpt` substring gets 451; then, by the
// `faults` table (first entry matching the recipient's domain), a fraction gets
// "550 5.1.1" (decided by a hash of the seed and the address: a missing mailbox stays
// missing, so a retry is refused again) and a fraction gets "451 4.7.1" (decided by a
// PRNG seeded with the seed and the session's stream number: a retry may pass).
// Per connection: after `dropAfter` messages the next MAIL gets no reply and the session
// ends (onDrop); SinkSessionEvents::onMail() may refuse a MAIL with a 421 rate limit.
// CHUNKING (RFC 3030) when `chunking` is set: BDAT chunks of raw octets (no dot-stuffing).
// AUTH (RFC 4954, PLAIN and LOGIN) when `authUser` is set: it is advertised, MAIL needs it
// first (530), and credentials other than the configured ones get 535.
// STARTTLS (RFC 3207) when `startTls` is set: after "220 2.0.0 ready to start TLS" the
// session ignores the rest of the input (plaintext pipelined after STARTTLS must not be
// acted on: CVE-2011-0411) and asks its owner to run the handshake (onStartTls); once
// the owner calls tlsEstablished() it forgets the EHLO, any AUTH and the transaction, and
// needs EHLO again. The session never sees ciphertext.
// It is a benchmark target: no allocation per line or per message once its buffers have
// grown (recipient strings and the data buffer keep their capacity), and the data phase
// scans with memchr instead of byte by byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::bench {

// Fault fractions for recipients whose domain contains one of `domains` (an empty list
// matches every domain).
struct DomainFaults {
  std::vector<std::string> domains;
  double deferFraction = 0;   // of RCPTs answered "451 4.7.1"
  double rejectFraction = 0;  // of RCPTs answered "550 5.1.1"
};

// Faults the session injected (reported through SinkSessionEvents::onFault).
enum class SinkFault {
  Deferred4xx,      // a RCPT answered 451 4.7.1 by the defer fraction
  Rejected5xx,      // a RCPT answered 550 5.1.1 by the reject fraction
  ConnectionLimit,  // a MAIL answered 421 by reply421Every
  Dropped,          // the connection closed without a reply by dropAfter
};

// What the owner of a session says about a MAIL command (onMail).
enum class MailAdmission {
  Accept,
  RateLimited,  // "421 4.7.0 rate limited, slow down", then the session ends (onQuit)
  Drop,         // no reply; the session ends (onDrop)
};

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
  // Fault: the first entry matching a recipient's domain decides its fractions.
  std::vector<DomainFaults> faults;
  std::uint64_t seed = 1;  // of the fault decisions
  // Fault: after this many accepted messages on a connection, close without replying to
  // the next MAIL (0 = never).
  std::size_t dropAfter = 0;
  // Offer CHUNKING (RFC 3030): BDAT chunks instead of DATA; off, BDAT gets 502.
  bool chunking = false;
  // Offer STARTTLS (RFC 3207); off, STARTTLS gets 502.
  bool startTls = false;
};

// A number in [0, 1) from a hash of `seed` and `text` (FNV-1a, then the SplitMix64
// finalizer): the same inputs always give the same number.
double faultHash(std::uint64_t seed, std::string_view text);

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
  // A well-formed MAIL in a state that allows it: the owner may refuse it (rate limits,
  // dropped connections decided with a clock).
  virtual MailAdmission onMail() { return MailAdmission::Accept; }
  // The session decided to close without a reply (dropAfter, or onMail() said Drop);
  // replies to earlier commands have been handed to sendReply(). The last call of a
  // feed(), like onQuit().
  virtual void onDrop() {}
  virtual void onFault(SinkFault) {}
  // STARTTLS was accepted: the 220 has been handed to sendReply() (in plaintext), and
  // input is ignored until tlsEstablished(). The owner starts the server handshake; every
  // later sendReply() belongs inside TLS. The last call of a feed().
  virtual void onStartTls() {}
};

class SinkSession {
 public:
  enum class State {
    Greeting,  // before EHLO/HELO
    Idle,      // no transaction
    Mail,      // MAIL accepted, collecting RCPTs
    Data,      // receiving message data
    Closed,    // after QUIT: input is ignored
    Chunk,     // reading the octets of a BDAT chunk (CHUNKING, RFC 3030)
    StartTls,  // after "220 ready to start TLS", until tlsEstablished(): input is ignored
  };
  static const char* stateName(State state);

  static constexpr std::size_t kMaxCommandLine = 2048;  // octets, excluding CRLF

  // `rules` and `events` must outlive the session. Events must not destroy the session
  // except inside onQuit() and onDrop(). `stream` picks the session's own sequence of
  // 4xx decisions (the sink passes the connection's number).
  SinkSession(const SinkRules& rules, SinkSessionEvents& events, std::uint64_t stream = 0);

  // Sends the 220 greeting.
  void greet();
  // Consumes all of `bytes` (any slicing gives the same replies and messages).
  void feed(std::string_view bytes);
  // The owner's TLS handshake completed (in state StartTls): back to Greeting, EHLO
  // needed again, STARTTLS no longer offered.
  void tlsEstablished();
  bool tls() const { return tls_; }

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
  void bdat(std::string_view args);
  std::size_t consumeChunk(std::string_view in);
  void finishChunk();
  void auth(std::string_view args);
  void startTls(std::string_view args);
  void authResponse(std::string_view line);  // a line of an AUTH exchange
  void checkCredentials(std::string_view user, std::string_view password);
  void resetTransaction();
  // The fault entry for a recipient's domain, or nullptr.
  const DomainFaults* faultsFor(std::string_view address) const;
  double nextRandom();                // [0, 1), the session's PRNG (SplitMix64)
  void reply(std::string_view text);  // appends text + CRLF
  void flushReplies();

  const SinkRules& rules_;
  SinkSessionEvents& events_;
  std::string ehloReply_;
  std::string ehloReplyTls_;  // inside TLS: without STARTTLS

  State state_ = State::Greeting;
  std::string line_;         // a command line split across feeds
  bool discarding_ = false;  // skipping the rest of an over-long command line
  std::string out_;          // replies of this feed()
  bool quit_ = false;
  bool drop_ = false;
  bool startTls_ = false;     // onStartTls() due at the end of this feed()
  bool tls_ = false;          // the handshake completed
  std::uint64_t random_ = 0;  // PRNG state

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

  // CHUNKING. A chunk's octets are always read, even when the BDAT fails (RFC 3030 §3):
  // then they are discarded and `chunkError_` is the reply.
  std::size_t chunkLeft_ = 0;
  std::size_t chunkSize_ = 0;
  bool chunkLast_ = false;
  std::string chunkError_;
  State chunkReturn_ = State::Idle;  // the state after a failed chunk
  bool bdatUsed_ = false;            // this transaction has had a BDAT (no DATA then)
};

}  // namespace salvo::bench
