// The SMTP client session: a pure state machine (no I/O, no clock, no logging).
// Contract: it is fed events (connected, bytes, timeout, disconnect) and envelopes, and
// answers through SessionSink: bytes to send, one TransactionResult per envelope, and
// "close the connection". Pipelining (RFC 2920) uses two cursors: a send cursor (commands
// written) and a receive cursor (replies matched to them in order). On a warm pipelined
// connection the end of one message's data and the next message's MAIL/RCPT/DATA leave
// in one send() — one round trip per message.
// STARTTLS (RFC 3207): after EHLO, when the server offers it and the policy allows, the
// session sends STARTTLS, expects 220, then asks its sink to start TLS (startTls()) and
// ignores every byte until onTlsEstablished(): bytes a server sent after its 220 and
// before the handshake are never read as replies (the reply parser is reset). It then
// sends EHLO again and forgets the capabilities learnt in plaintext.
// AUTH (RFC 4954; PLAIN RFC 4616, else LOGIN): when the config holds credentials, after
// the last EHLO (the one over TLS when STARTTLS is used) and before any transaction. Only
// over TLS unless auth.allowPlaintext. Refusal, failure or no usable mechanism fails the
// session (Site scope). The password never reaches trace(): AUTH lines are masked.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/smtp/capabilities.h"
#include "engine/smtp/reply.h"

namespace salvo::smtp {

// One transaction: one sender, one recipient (Salvo sends one personalised message per
// recipient), and the message already encoded for DATA by encodeBody() (CRLF, dot-stuffed,
// ending with ".\r\n").
struct Envelope {
  std::uint64_t tag = 0;  // opaque to the session; echoed in the result
  std::string mailFrom;   // bare address, "" for the null sender
  std::string rcptTo;     // bare address
  std::string data;
};

// Who a failure is about (Postfix smtp_trouble.c). Only Site failures may slow a
// destination down; a rejected recipient never does.
enum class FailureScope { None, Recipient, Message, Connection, Site };
const char* scopeName(FailureScope scope);

enum class Disposition { Delivered, Deferred, Bounced };
const char* dispositionName(Disposition d);

struct TransactionResult {
  std::uint64_t tag = 0;
  Disposition disposition = Disposition::Deferred;
  FailureScope scope = FailureScope::None;
  Reply reply;         // the reply that decided it; code 0 when none (e.g. connection lost)
  std::string detail;  // human text: "RCPT TO rejected", "timeout waiting for DATA reply"...
  bool tls = false;    // the transaction ran over TLS
  // A command of it went on the wire. False when the session failed before starting it:
  // the owner may retry it elsewhere at once (another MX host) with no risk of a duplicate.
  bool attempted = true;
};

// When the session uses STARTTLS. Certificate checks (Verify) are the connection's job:
// for the session Verify means the same as Required.
enum class TlsPolicy {
  Disabled,       // never send STARTTLS
  Opportunistic,  // STARTTLS when offered, plaintext otherwise
  Required,       // STARTTLS or nothing: a server that does not offer it fails (Site)
  Verify,         // Required, and the connection verifies the certificate chain and name
};
const char* tlsPolicyName(TlsPolicy policy);

enum class State {
  Connecting,  // waiting for onConnected()
  Greeting,    // waiting for 220
  Ehlo,
  Helo,
  StartTls,      // STARTTLS sent, awaiting 220
  TlsHandshake,  // the sink is running the TLS handshake; input is ignored
  Auth,          // AUTH exchange in progress
  Idle,          // no transaction open; may submit() or quit()
  Mail,          // awaiting replies to MAIL/RCPT/DATA (pipelined or one by one)
  Rcpt,
  Data,  // DATA sent, awaiting 354
  Dot,   // message sent, awaiting the final reply
  Rset,
  Quit,
  Closed,
};
const char* stateName(State s);

// Per-state reply timeouts; defaults from RFC 5321 §4.5.3.2.
struct SessionTimeouts {
  std::chrono::milliseconds greeting{300'000};
  std::chrono::milliseconds ehlo{300'000};
  std::chrono::milliseconds startTls{300'000};  // STARTTLS reply and the TLS handshake
  std::chrono::milliseconds auth{300'000};      // each reply of the AUTH exchange
  std::chrono::milliseconds mail{300'000};
  std::chrono::milliseconds rcpt{300'000};
  std::chrono::milliseconds data{120'000};       // DATA initiation (354)
  std::chrono::milliseconds dataBlock{180'000};  // sending the body
  std::chrono::milliseconds dot{600'000};        // final reply after "."
  std::chrono::milliseconds rset{120'000};
  std::chrono::milliseconds quit{120'000};
};

// SMTP AUTH with a smarthost account. Empty user: no AUTH.
struct AuthSettings {
  std::string user;
  std::string password;
  bool allowPlaintext = false;  // send the credentials over a connection without TLS
};

struct SessionConfig {
  std::string heloName = "localhost";
  bool allowPipelining = true;  // use PIPELINING when the server advertises it
  std::size_t maxQueued = 2;    // envelopes accepted ahead of the one in progress
  TlsPolicy tls = TlsPolicy::Opportunistic;
  AuthSettings auth;  // user empty: do not authenticate
  SessionTimeouts timeouts;
  ReplyLimits replyLimits;
};

class SessionSink {
 public:
  virtual ~SessionSink() = default;
  // Bytes for the socket, in order. Several calls within one event may be gathered.
  virtual void send(std::string_view bytes) = 0;
  // Exactly one per submitted envelope, in submission order.
  virtual void transactionDone(TransactionResult&& result) = 0;
  // The session can take another envelope (canAccept() is now true).
  virtual void ready() = 0;
  // The server answered 220 to STARTTLS: switch the byte stream to TLS (after sending
  // what send() gave), drop whatever the server sent before the handshake completes, and
  // call onTlsEstablished() or onTlsFailed().
  virtual void startTls() = 0;
  // The session is over: close the socket (after flushing what send() gave: a failure at
  // the site level sends QUIT just before this). `error` is empty after a clean QUIT.
  // Every envelope has been answered before this is called, it is called once, it is the
  // last call into the sink, and the owner may destroy the session from inside it.
  virtual void finished(const std::string& error, FailureScope scope) = 0;
  // One line per state transition, command, reply and result, for debugging. Must not call
  // back into the session.
  virtual void trace(std::string_view /*line*/) {}
  // Whether trace() wants its lines now; when false the session does not build them.
  virtual bool tracing() const { return true; }
};

// Reentrancy: the sink is called only at the end of an entry point, never from the middle
// of one. From send(), transactionDone(), ready() and finished() the owner may call
// submit() and quit(); from send() also onTimeout()/onDisconnected() (a write that failed
// synchronously); from startTls() also onTlsFailed() (TLS could not even start).
// onConnected(), onBytes() and onTlsEstablished() must not be called from a callback.
// Misuse (submit() when !canAccept(), Envelope.data not from encodeBody(), a reentrant
// onBytes()) is a broken invariant and aborts.
class ClientSession {
 public:
  ClientSession(SessionConfig config, SessionSink& sink);
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  void onConnected();
  void onBytes(std::string_view bytes);
  // The timer for timeout() expired: the connection is failed (Connection scope).
  void onTimeout();
  // The peer closed or the socket failed.
  void onDisconnected(const std::string& error);
  // The TLS handshake the sink started for startTls() completed: EHLO again.
  void onTlsEstablished();
  // Every byte send() has given so far has left (the transport's write queue drained).
  // While a message body is still being written the reply timeout is dataBlock; once it
  // has left, dot. The owner calls this when bodyPending() and its queue drains.
  void onWritten();
  // The TLS handshake failed (Connection scope: the owner decides whether to reconnect
  // without TLS). Every envelope is answered Deferred.
  void onTlsFailed(const std::string& error);

  // Queue a transaction. Only when canAccept(); transactions run in submission order.
  // Envelopes may be submitted before the session is ready; a session that fails answers
  // them all (Deferred). An envelope whose address holds a control octet, or whose
  // message exceeds the server's SIZE limit, or whose address is not ASCII when the server
  // lacks SMTPUTF8, is answered Bounced (Message) unsent. MAIL carries SIZE=, BODY=8BITMIME
  // (8-bit data, server offers 8BITMIME) and SMTPUTF8 (non-ASCII address) as they apply.
  void submit(Envelope envelope);
  // Send QUIT once the queued transactions are done, then finished("").
  void quit();

  // Not closed, quit() not called, fewer than max(maxQueued, 1) envelopes not yet started.
  bool canAccept() const;
  State state() const { return state_; }
  // The reply timeout for the current state; the owner restarts its timer after each call
  // into the session. 0 when no reply is awaited (Connecting, Idle, Closed): the owner's
  // connect and idle timers apply there.
  std::chrono::milliseconds timeout() const;
  const Capabilities& capabilities() const { return caps_; }
  // A message body went to send() and onWritten() has not been called since.
  bool bodyPending() const;
  // The byte stream is encrypted (STARTTLS done).
  bool tlsActive() const;
  std::size_t transactionsCompleted() const { return completed_; }

 private:
  struct Impl;
  SessionConfig config_;
  SessionSink& sink_;
  State state_ = State::Connecting;
  Capabilities caps_;
  std::size_t completed_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace salvo::smtp
