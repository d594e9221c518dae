#include "engine/smtp/session.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <utility>

#include <fmt/format.h>

namespace salvo::smtp {
namespace {

constexpr const char* kStateNames[] = {"Connecting",   "Greeting", "Ehlo", "Helo", "StartTls",
                                       "TlsHandshake", "Auth",     "Idle", "Mail", "Rcpt",
                                       "Data",         "Dot",      "Rset", "Quit", "Closed"};
static_assert(std::size(kStateNames) == static_cast<std::size_t>(State::Closed) + 1);

constexpr const char* kScopeNames[] = {"none", "recipient", "message", "connection", "site"};
static_assert(std::size(kScopeNames) == static_cast<std::size_t>(FailureScope::Site) + 1);

constexpr const char* kDispositionNames[] = {"delivered", "deferred", "bounced"};
static_assert(std::size(kDispositionNames) == static_cast<std::size_t>(Disposition::Bounced) + 1);

constexpr const char* kTlsPolicyNames[] = {"none", "opportunistic", "required", "verify"};
static_assert(std::size(kTlsPolicyNames) == static_cast<std::size_t>(TlsPolicy::Verify) + 1);

// The reply timeout of each state (nullptr: no reply is awaited, the owner's own timers
// apply: connect timeout, idle timeout).
using TimeoutField = std::chrono::milliseconds SessionTimeouts::*;
constexpr TimeoutField kStateTimeouts[] = {
    nullptr,                     // Connecting
    &SessionTimeouts::greeting,  // Greeting
    &SessionTimeouts::ehlo,      // Ehlo
    &SessionTimeouts::ehlo,      // Helo
    &SessionTimeouts::startTls,  // StartTls
    &SessionTimeouts::startTls,  // TlsHandshake
    &SessionTimeouts::auth,      // Auth
    nullptr,                     // Idle
    &SessionTimeouts::mail,      // Mail
    &SessionTimeouts::rcpt,      // Rcpt
    &SessionTimeouts::data,      // Data: waiting for 354
    &SessionTimeouts::dot,   // Dot: the final reply (dataBlock while the body is still going out)
    &SessionTimeouts::rset,  // Rset
    &SessionTimeouts::quit,  // Quit
    nullptr,                 // Closed
};
static_assert(std::size(kStateTimeouts) == std::size(kStateNames));

// The send buffer keeps up to this much capacity between sends; beyond it (a large body
// just went out) it is released, so that thousands of idle connections stay small.
constexpr std::size_t kRetainedOutput = 64 * 1024;

// What the reply at the receive cursor answers: one entry per command sent.
enum class Expect : std::uint8_t {
  Greeting,
  Ehlo,
  Helo,
  StartTls,
  AuthPlain,      // AUTH PLAIN <initial response>: awaiting 235
  AuthLoginUser,  // AUTH LOGIN: awaiting 334 (the username prompt)
  AuthLoginPass,  // the username sent: awaiting 334 (the password prompt)
  AuthDone,       // the password sent: awaiting 235
  Mail,
  Rcpt,
  Data,
  Dot,
  LoneDot,  // the "." ending an empty DATA a broken server opened after a failed RCPT
  Rset,
  Quit,
};

struct ExpectInfo {
  State state;
  const char* waitingFor;
};
constexpr ExpectInfo kExpectInfo[] = {
    {State::Greeting, "waiting for the greeting"},
    {State::Ehlo, "waiting for reply to EHLO"},
    {State::Helo, "waiting for reply to HELO"},
    {State::StartTls, "waiting for reply to STARTTLS"},
    {State::Auth, "waiting for reply to AUTH PLAIN"},
    {State::Auth, "waiting for reply to AUTH LOGIN"},
    {State::Auth, "waiting for reply to the AUTH LOGIN username"},
    {State::Auth, "waiting for reply to the AUTH LOGIN password"},
    {State::Mail, "waiting for reply to MAIL FROM"},
    {State::Rcpt, "waiting for reply to RCPT TO"},
    {State::Data, "waiting for reply to DATA"},
    {State::Dot, "waiting for reply to end of data"},
    {State::Dot, "waiting for reply to end of data"},
    {State::Rset, "waiting for reply to RSET"},
    {State::Quit, "waiting for reply to QUIT"},
};
static_assert(std::size(kExpectInfo) == static_cast<std::size_t>(Expect::Quit) + 1);

const ExpectInfo& info(Expect e) {
  return kExpectInfo[static_cast<std::size_t>(e)];
}

[[noreturn]] void invariantBroken(const char* what) {
  std::fprintf(stderr, "salvo::smtp::ClientSession: %s\n", what);
  std::abort();
}

Disposition failureDisposition(const Reply& r) {
  return r.permanent() ? Disposition::Bounced : Disposition::Deferred;
}

bool hasControlOctet(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Runs over every message body (BODY=8BITMIME): an OR over the whole range, which the
// compiler vectorizes, instead of a byte-at-a-time search with an early exit (that search
// was the delivery loop's largest user-space cost in `perf`, docs/performance.md).
bool hasNonAscii(std::string_view s) {
  unsigned char any = 0;
  for (const char c : s) {
    any |= static_cast<unsigned char>(c);
  }
  return (any & 0x80) != 0;
}

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = static_cast<unsigned char>(in[i]) << 16 |
                            static_cast<unsigned char>(in[i + 1]) << 8 |
                            static_cast<unsigned char>(in[i + 2]);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    std::uint32_t v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) {
      v |= static_cast<unsigned char>(in[i + 1]) << 8;
    }
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < in.size() ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

bool offers(const Capabilities& caps, std::string_view mechanism) {
  return std::find(caps.authMechanisms.begin(), caps.authMechanisms.end(), mechanism) !=
         caps.authMechanisms.end();
}

// encodeBody() output ends with ".\r\n", preceded by a CRLF unless the message was empty.
bool looksEncoded(const std::string& data) {
  const std::size_t n = data.size();
  return n >= 3 && data.compare(n - 3, 3, ".\r\n") == 0 &&
         (n == 3 || (n >= 5 && data[n - 5] == '\r' && data[n - 4] == '\n'));
}

// RFC 1870 size: the message without the final ".\r\n". Dot-stuffing octets are counted,
// so this overstates by one octet per line starting with '.' (harmless for SIZE).
std::uint64_t messageSize(const Envelope& e) {
  return e.data.size() - 3;
}

}  // namespace

const char* stateName(State s) {
  const auto i = static_cast<std::size_t>(s);
  return i < std::size(kStateNames) ? kStateNames[i] : "?";
}

const char* scopeName(FailureScope scope) {
  const auto i = static_cast<std::size_t>(scope);
  return i < std::size(kScopeNames) ? kScopeNames[i] : "?";
}

const char* dispositionName(Disposition d) {
  const auto i = static_cast<std::size_t>(d);
  return i < std::size(kDispositionNames) ? kDispositionNames[i] : "?";
}

const char* tlsPolicyName(TlsPolicy policy) {
  const auto i = static_cast<std::size_t>(policy);
  return i < std::size(kTlsPolicyNames) ? kTlsPolicyNames[i] : "?";
}

// Two cursors (Postfix smtp_proto.c: one loop for sending, one for receiving):
//  - the send cursor stands at waiting.front(): envelopes before it have had their
//    commands written (they are in inFlight), envelopes from it on have not;
//  - the receive cursor is expected.front(): the command whose reply comes next.
// Replies are matched strictly in order. A transaction's reply-kinds are always
// MAIL, RCPT, DATA, then "." (or a lone "."), so the reply at the receive cursor for a
// transaction command always belongs to inFlight.front().
//
// Reentrancy: the sink is called only from drain(), at the end of the outermost entry
// point, and finished() is the very last thing drain() does. Sink callbacks may call
// submit() and quit() (they only queue), and onTimeout()/onDisconnected() (from inside
// send(), when a write fails synchronously); the session picks the work up in drain().
struct ClientSession::Impl {
  struct Transaction {
    Envelope envelope;
    // Its TransactionResult is out (MAIL or RCPT failed); its remaining replies only move
    // the receive cursor. A transaction not answered at its 354 has had MAIL and RCPT
    // accepted, since their replies come first.
    bool answered = false;
  };

  explicit Impl(ClientSession& s) : self(s), parser(s.config_.replyLimits) {}

  // ---- tracing ----

  // Trace lines are built only when the sink takes them (tracing()): formatting one per
  // command, reply, result and state change cost more than parsing the replies.
  template <typename... Args>
  void trace(fmt::format_string<Args...> format, Args&&... args) {
    if (!self.sink_.tracing()) {
      return;
    }
    line.clear();
    fmt::format_to(std::back_inserter(line), format, std::forward<Args>(args)...);
    self.sink_.trace(line);
  }

  void traceCommand(std::size_t start) {
    if (!self.sink_.tracing()) {
      return;
    }
    line.assign("C: ");
    line.append(out, start, out.size() - start - 2);  // without the CRLF
    self.sink_.trace(line);
  }

  void traceReply(const Reply& r) {
    if (!self.sink_.tracing()) {
      return;
    }
    line.assign("S: ");
    r.appendSummary(line);
    if (r.lines.size() > 1) {
      fmt::format_to(std::back_inserter(line), " (+{} lines)", r.lines.size() - 1);
    }
    self.sink_.trace(line);
  }

  void setState(State next) {
    if (next != self.state_) {
      trace("state {} -> {}", stateName(self.state_), stateName(next));
      self.state_ = next;
    }
  }

  // The state follows the receive cursor.
  void syncState() {
    if (self.state_ == State::Closed) {
      return;
    }
    if (!expected.empty()) {
      setState(info(expected.front()).state);
    } else if (handshaking) {
      setState(State::TlsHandshake);
    } else {
      setState(connected ? State::Idle : State::Connecting);
    }
  }

  // ---- the send side ----

  void sendCommand(std::string_view verb, std::string_view argument, Expect expect) {
    const std::size_t start = out.size();
    out += verb;
    if (!argument.empty()) {
      out += ' ';
      out += argument;
    }
    out += "\r\n";
    traceCommand(start);
    expected.push_back(expect);
  }

  void sendMail(const Envelope& e) {
    const std::size_t start = out.size();
    out += "MAIL FROM:<";
    out += e.mailFrom;
    out += '>';
    if (self.caps_.size) {
      char digits[24];
      const auto end = std::to_chars(digits, digits + sizeof digits, messageSize(e)).ptr;
      out += " SIZE=";
      out.append(digits, end);
    }
    // RFC 6152: declare 8-bit content when the server takes it. A server without
    // 8BITMIME gets the message as it is (no MIME downgrade here), as Postfix does by
    // default.
    if (self.caps_.eightBitMime && hasNonAscii(e.data)) {
      out += " BODY=8BITMIME";
    }
    // RFC 6531: internationalised addresses need SMTPUTF8 (refusal() has made sure the
    // server offers it).
    if (hasNonAscii(e.mailFrom) || hasNonAscii(e.rcptTo)) {
      out += " SMTPUTF8";
    }
    out += "\r\n";
    traceCommand(start);
    expected.push_back(Expect::Mail);
  }

  void sendRcpt(const Envelope& e) {
    const std::size_t start = out.size();
    out += "RCPT TO:<";
    out += e.rcptTo;
    out += ">\r\n";
    traceCommand(start);
    expected.push_back(Expect::Rcpt);
  }

  void sendBody(Transaction& t) {
    const std::size_t size = t.envelope.data.size();
    if (out.empty()) {
      // The usual case (the 354 ends what was read): the body becomes the output as it is,
      // one copy of the message less.
      out.swap(t.envelope.data);
    } else {
      out += t.envelope.data;
    }
    trace("C: <message data, {} octets>", size);
    // The body is no longer needed: give its memory back now rather than after the final
    // reply, which may take minutes.
    std::string().swap(t.envelope.data);
    expected.push_back(Expect::Dot);
    bodyPending = true;
  }

  void sendQuit() {
    sendCommand("QUIT", {}, Expect::Quit);
    quitSent = true;
  }

  // Why this envelope must not go on the wire at all ("" when it may).
  std::string refusal(const Envelope& e) const {
    if (hasControlOctet(e.mailFrom)) {
      return "sender address contains a control octet (CR, LF, NUL...)";
    }
    if (hasControlOctet(e.rcptTo)) {
      return "recipient address contains a control octet (CR, LF, NUL...)";
    }
    if (!self.caps_.smtpUtf8 && (hasNonAscii(e.mailFrom) || hasNonAscii(e.rcptTo))) {
      return "the address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531)";
    }
    const std::uint64_t limit = self.caps_.maxSize;
    if (limit != 0 && messageSize(e) > limit) {
      return fmt::format("message size {} exceeds the server's SIZE limit {}", messageSize(e),
                         limit);
    }
    return {};
  }

  // Moves the send cursor over the next envelope: MAIL, and with pipelining RCPT and DATA
  // in the same send().
  void startTransaction() {
    inFlight.push_back(Transaction{std::move(waiting.front())});
    waiting.pop_front();
    readyOwed = true;
    const Envelope& e = inFlight.back().envelope;
    sendMail(e);
    if (pipelining) {
      sendRcpt(e);
      sendCommand("DATA", {}, Expect::Data);
    }
  }

  // Starts work when nothing is outstanding: refused envelopes are answered, RSET goes out
  // if the last transaction failed before its end of data, then the next transaction; or
  // QUIT when asked for and nothing is left.
  void pump() {
    if (self.state_ == State::Closed || !established || !expected.empty()) {
      return;
    }
    while (!waiting.empty()) {
      std::string why = refusal(waiting.front());
      if (why.empty()) {
        break;
      }
      answer(waiting.front().tag, Disposition::Bounced, FailureScope::Message, Reply{}, why);
      waiting.pop_front();
      readyOwed = true;
    }
    if (!waiting.empty()) {
      if (rsetNeeded) {
        rsetNeeded = false;
        sendCommand("RSET", {}, Expect::Rset);
        if (!pipelining) {
          return;
        }
      }
      startTransaction();
    } else if (quitRequested && !quitSent) {
      sendQuit();
    }
  }

  // ---- results ----

  void answer(std::uint64_t tag, Disposition d, FailureScope scope, Reply&& reply,
              std::string_view detail) {
    trace("result {}: {} ({}) {}", tag, dispositionName(d), scopeName(scope), detail);
    results.push_back(
        TransactionResult{tag, d, scope, std::move(reply), std::string(detail), tlsActive});
  }

  void decide(Transaction& t, Disposition d, FailureScope scope, Reply&& reply,
              std::string_view detail) {
    t.answered = true;
    answer(t.envelope.tag, d, scope, std::move(reply), detail);
  }

  // The transaction at the receive cursor has had its last reply. If it ended before its
  // end of data the server may still hold MAIL state: RSET before the next MAIL.
  void endTransaction(bool needsRset) {
    inFlight.pop_front();
    rsetNeeded = rsetNeeded || needsRset;
  }

  // ---- ending the session ----

  void close(std::string error, FailureScope scope) {
    if (!error.empty()) {
      trace("session over ({}): {}", scopeName(scope), error);
    }
    closeError = std::move(error);
    closeScope = scope;
    expected.clear();
    setState(State::Closed);
  }

  // Defers every unanswered envelope and ends the session.
  void fail(std::string error, FailureScope scope, std::string_view detail, const Reply* reply,
            bool sendQuitFirst) {
    for (Transaction& t : inFlight) {
      if (!t.answered) {
        answer(t.envelope.tag, Disposition::Deferred, scope, reply ? Reply(*reply) : Reply{},
               detail);
      }
    }
    for (const Envelope& e : waiting) {
      answer(e.tag, Disposition::Deferred, scope, reply ? Reply(*reply) : Reply{}, detail);
      results.back().attempted = false;
    }
    inFlight.clear();
    waiting.clear();
    if (sendQuitFirst) {
      sendCommand("QUIT", {}, Expect::Quit);
    }
    close(std::move(error), scope);
  }

  // The site refused us or is going away: nothing here is about the recipients.
  void siteFailure(const Reply& r, std::string_view what) {
    fail(fmt::format("{}: {}", what, r.summary()), FailureScope::Site, what, &r, true);
  }

  std::string_view activity() const {
    if (!expected.empty()) {
      return info(expected.front()).waitingFor;
    }
    if (handshaking) {
      return "in the TLS handshake";
    }
    return connected ? "idle" : "connecting";
  }

  void connectionFailure(std::string detail) {
    fail(detail, FailureScope::Connection, detail, nullptr, false);
  }

  // ---- the receive side ----

  void handleReply(Reply& r) {
    traceReply(r);
    if (expected.empty()) {
      if (r.code == 421) {
        siteFailure(r, "server closing connection");
      } else {
        fail(fmt::format("unexpected reply while idle: {}", r.summary()), FailureScope::Connection,
             "unexpected reply while idle", &r, false);
      }
      return;
    }
    const Expect kind = expected.front();
    expected.pop_front();
    if (kind == Expect::Quit) {
      close({}, FailureScope::None);  // any answer to QUIT will do
      return;
    }
    if (r.code == 421 && kind != Expect::Greeting) {
      siteFailure(r, "server closing connection");
      return;
    }
    switch (kind) {
      case Expect::Greeting:
        onGreeting(r);
        break;
      case Expect::Ehlo:
        onEhlo(r);
        break;
      case Expect::Helo:
        onHelo(r);
        break;
      case Expect::StartTls:
        onStartTls(r);
        break;
      case Expect::AuthPlain:
      case Expect::AuthLoginUser:
      case Expect::AuthLoginPass:
      case Expect::AuthDone:
        onAuth(kind, r);
        break;
      case Expect::Mail:
        onMail(r);
        break;
      case Expect::Rcpt:
        onRcpt(r);
        break;
      case Expect::Data:
        onData(r);
        break;
      case Expect::Dot:
        onDot(r);
        break;
      case Expect::LoneDot:
        endTransaction(true);  // already answered by its RCPT (or MAIL) reply
        break;
      case Expect::Rset:
        onRset(r);
        break;
      case Expect::Quit:
        break;  // handled above
    }
    // Queue what this reply made possible before reading the next one, so that the
    // session acts the same whether replies come in one read or one byte at a time.
    pump();
    syncState();
  }

  void onGreeting(const Reply& r) {
    if (r.klass() != 2) {
      siteFailure(r, "greeting refused");
    } else if (quitRequested && waiting.empty()) {
      sendQuit();
    } else {
      sendCommand("EHLO", self.config_.heloName, Expect::Ehlo);
    }
  }

  void onEhlo(const Reply& r) {
    if (r.klass() == 2) {
      self.caps_ = Capabilities::fromEhlo(r);
      afterHello();
    } else if (r.permanent() && !tlsActive) {
      sendCommand("HELO", self.config_.heloName, Expect::Helo);  // not an ESMTP server
    } else {
      siteFailure(r, "EHLO rejected");
    }
  }

  void onHelo(const Reply& r) {
    if (r.klass() == 2) {
      self.caps_ = Capabilities{};
      afterHello();
    } else {
      siteFailure(r, "HELO rejected");
    }
  }

  bool tlsRequired() const {
    return self.config_.tls == TlsPolicy::Required || self.config_.tls == TlsPolicy::Verify;
  }

  // EHLO (or HELO) was accepted: upgrade to TLS first when the policy says so.
  void afterHello() {
    if (!tlsActive && self.config_.tls != TlsPolicy::Disabled) {
      if (self.caps_.startTls) {
        sendCommand("STARTTLS", {}, Expect::StartTls);
        return;
      }
      if (tlsRequired()) {
        // Nothing about the recipients: this site cannot take mail under our policy.
        // QUIT politely; the jobs are deferred.
        fail(fmt::format("TLS is required (policy {}) but the server does not offer STARTTLS",
                         tlsPolicyName(self.config_.tls)),
             FailureScope::Site, "TLS required but STARTTLS not offered", nullptr, true);
        return;
      }
    }
    authenticateOrEstablish();
  }

  void onStartTls(const Reply& r) {
    if (r.code == 220) {
      // Whatever follows the 220 in the plaintext stream was not asked for (a server or a
      // man in the middle injecting replies: the client-side twin of CVE-2011-0411): drop it.
      parser.reset();
      handshaking = true;
      tlsStartOwed = true;
      return;
    }
    if (tlsRequired()) {
      fail(fmt::format("TLS is required (policy {}) but STARTTLS was refused: {}",
                       tlsPolicyName(self.config_.tls), r.summary()),
           FailureScope::Site, "STARTTLS refused", &r, true);
      return;
    }
    trace("STARTTLS refused ({}); continuing without TLS", r.summary());
    authenticateOrEstablish();
  }

  // ---- AUTH (RFC 4954) ----

  // Writes a command carrying credentials; the trace shows `shown` instead of the line.
  void sendSecret(std::string_view line, std::string_view shown, Expect expect) {
    out += line;
    out += "\r\n";
    trace("C: {}", shown);
    expected.push_back(expect);
  }

  // Nothing about the recipients: this site cannot take our mail as configured.
  void authFailure(std::string error, std::string_view detail, const Reply* reply) {
    fail(std::move(error), FailureScope::Site, detail, reply, true);
  }

  // The last EHLO is done (and TLS when it applies): authenticate when configured.
  void authenticateOrEstablish() {
    const AuthSettings& auth = self.config_.auth;
    if (auth.user.empty()) {
      establish();
      return;
    }
    if (!tlsActive && !auth.allowPlaintext) {
      authFailure(fmt::format("refusing to send credentials without TLS ({}; set "
                              "allow_plaintext_auth: true on the route to allow it)",
                              self.config_.tls == TlsPolicy::Disabled
                                  ? "TLS is disabled for this route"
                                  : "the server does not offer STARTTLS"),
                  "refusing to send credentials without TLS", nullptr);
      return;
    }
    if (offers(self.caps_, "PLAIN")) {
      // RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
      std::string message;
      message += '\0';
      message += auth.user;
      message += '\0';
      message += auth.password;
      sendSecret("AUTH PLAIN " + base64(message), "AUTH PLAIN <credentials hidden>",
                 Expect::AuthPlain);
    } else if (offers(self.caps_, "LOGIN")) {
      sendCommand("AUTH", "LOGIN", Expect::AuthLoginUser);
    } else {
      std::string offered;
      for (const std::string& m : self.caps_.authMechanisms) {
        offered += offered.empty() ? "" : " ";
        offered += m;
      }
      authFailure(fmt::format("authentication required but the server offers no supported "
                              "mechanism (PLAIN, LOGIN); it offers: {}",
                              offered.empty() ? "no AUTH" : offered),
                  "no supported AUTH mechanism", nullptr);
    }
  }

  void onAuth(Expect kind, const Reply& r) {
    const bool prompt = kind == Expect::AuthLoginUser || kind == Expect::AuthLoginPass;
    if (prompt && r.code == 334) {
      const AuthSettings& auth = self.config_.auth;
      if (kind == Expect::AuthLoginUser) {
        sendSecret(base64(auth.user), "<username hidden>", Expect::AuthLoginPass);
      } else {
        sendSecret(base64(auth.password), "<password hidden>", Expect::AuthDone);
      }
      return;
    }
    if (!prompt && r.code == 235) {
      trace("authenticated as {}", self.config_.auth.user);
      establish();
      return;
    }
    authFailure(fmt::format("authentication failed: {}", r.summary()), "authentication failed", &r);
  }

  void establish() {
    const Capabilities& caps = self.caps_;
    established = true;
    pipelining = caps.pipelining && self.config_.allowPipelining;
    readyOwed = true;
    trace("server: {}{}{}{}", caps.esmtp ? "ESMTP" : "SMTP", pipelining ? ", pipelining" : "",
          caps.size ? fmt::format(", SIZE {}", caps.maxSize) : std::string(),
          tlsActive ? ", TLS" : "");
  }

  void onMail(Reply& r) {
    Transaction& t = inFlight.front();
    if (r.klass() == 2) {
      if (!pipelining) {
        sendRcpt(t.envelope);
      }
      return;
    }
    const Disposition d = failureDisposition(r);
    decide(t, d, FailureScope::Message, std::move(r), "MAIL FROM rejected");
    if (!pipelining) {
      endTransaction(true);
    }
  }

  void onRcpt(Reply& r) {
    Transaction& t = inFlight.front();
    if (r.klass() == 2) {
      if (!pipelining) {
        sendCommand("DATA", {}, Expect::Data);
      }
      return;
    }
    if (!t.answered) {
      const Disposition d = failureDisposition(r);
      decide(t, d, FailureScope::Recipient, std::move(r), "RCPT TO rejected");
    }
    if (!pipelining) {
      endTransaction(true);
    }
  }

  void onData(Reply& r) {
    Transaction& t = inFlight.front();
    if (r.klass() == 3) {
      if (t.answered) {
        // A broken server opened DATA although the recipient (or sender) was refused.
        // Send no body: end the empty message and ignore what the server says to it.
        const std::size_t start = out.size();
        out += ".\r\n";
        traceCommand(start);
        expected.push_back(Expect::LoneDot);
        return;
      }
      sendBody(t);
      // RFC 2920: message content may open a command group, so the next transaction's
      // MAIL/RCPT/DATA can follow the "." in the same send(). Only from a transaction that
      // reached 354: earlier failures would need an RSET first.
      if (pipelining && !rsetNeeded && !waiting.empty() && refusal(waiting.front()).empty()) {
        startTransaction();
      }
      return;
    }
    if (!t.answered) {
      const Disposition d = failureDisposition(r);
      decide(t, d, FailureScope::Message, std::move(r), "DATA rejected");
    }
    endTransaction(true);
  }

  void onDot(Reply& r) {
    Transaction& t = inFlight.front();
    if (r.klass() == 2) {
      decide(t, Disposition::Delivered, FailureScope::None, std::move(r), "message accepted");
    } else {
      const Disposition d = failureDisposition(r);
      decide(t, d, FailureScope::Message, std::move(r), "message rejected after end of data");
    }
    endTransaction(false);  // the final reply ends the transaction either way
  }

  void onRset(const Reply& r) {
    if (r.klass() != 2) {
      // The server's state is unknown: this connection cannot be trusted with more mail.
      fail(fmt::format("RSET rejected: {}", r.summary()), FailureScope::Connection, "RSET rejected",
           &r, true);
    }
  }

  void onParserError() {
    if (!expected.empty() && expected.front() == Expect::Quit) {
      close({}, FailureScope::None);
      return;
    }
    fail(parser.error(), FailureScope::Connection,
         fmt::format("garbled reply while {}: {}", activity(), parser.error()), nullptr, false);
  }

  // ---- leaving an entry point ----

  // Runs at the end of the outermost entry point: starts pending work, hands the sink the
  // bytes, results and ready() it is owed, and calls finished() as the very last thing.
  void drain() {
    for (;;) {
      pump();
      syncState();
      if (!out.empty()) {
        self.sink_.send(out);
        if (out.capacity() > kRetainedOutput) {
          std::string().swap(out);  // a big body passed through: do not keep its buffer
        } else {
          out.clear();
        }
        continue;
      }
      if (resultsDone < results.size()) {
        TransactionResult r = std::move(results[resultsDone++]);
        ++self.completed_;
        self.sink_.transactionDone(std::move(r));
        continue;
      }
      results.clear();
      resultsDone = 0;
      if (tlsStartOwed && self.state_ != State::Closed) {
        tlsStartOwed = false;
        self.sink_.startTls();
        continue;
      }
      if (readyOwed && self.state_ != State::Closed) {
        readyOwed = false;
        if (self.canAccept()) {
          self.sink_.ready();
          continue;
        }
      }
      break;
    }
    depth = 0;
    if (self.state_ == State::Closed) {
      // Nothing of *this is touched after finished(): the owner may destroy the session.
      const std::string error = std::move(closeError);
      SessionSink& sink = self.sink_;
      sink.finished(error, closeScope);
    }
  }

  // Runs an entry point that the owner may also call from inside a SessionSink callback
  // (e.g. onDisconnected() from send()): only the outermost call drains to the sink.
  template <typename Body>
  void reentrant(Body&& body) {
    const bool outer = depth == 0;
    if (outer) {
      depth = 1;
    }
    body();
    if (outer) {
      drain();
    }
  }

  ClientSession& self;
  ReplyParser parser;
  std::vector<Reply> replies;        // reused by onBytes()
  std::deque<Envelope> waiting;      // submitted, nothing sent yet
  std::deque<Transaction> inFlight;  // commands sent, replies outstanding
  std::deque<Expect> expected;       // the receive cursor
  std::string out;                   // bytes for the next send()
  std::string line;                  // trace line
  std::vector<TransactionResult> results;
  std::size_t resultsDone = 0;
  std::string closeError;
  FailureScope closeScope = FailureScope::None;
  int depth = 0;  // > 0 while an entry point runs; the sink is called only at depth 1
  bool connected = false;
  bool established = false;  // EHLO or HELO accepted
  bool pipelining = false;
  bool rsetNeeded = false;
  bool quitRequested = false;
  bool quitSent = false;
  bool readyOwed = false;
  bool handshaking = false;   // 220 to STARTTLS received, handshake not yet done
  bool tlsStartOwed = false;  // startTls() is to be called at the end of this entry point
  bool tlsActive = false;
  bool bodyPending = false;  // a body went to send(); onWritten() not called since
};

ClientSession::ClientSession(SessionConfig config, SessionSink& sink)
    : config_(std::move(config)), sink_(sink), impl_(std::make_unique<Impl>(*this)) {}

ClientSession::~ClientSession() = default;

void ClientSession::onConnected() {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  if (m.depth > 0) {
    invariantBroken("onConnected() called from a SessionSink callback");
  }
  if (state_ != State::Connecting) {
    invariantBroken("onConnected() called twice");
  }
  m.depth = 1;
  m.connected = true;
  m.expected.push_back(Expect::Greeting);
  m.drain();
}

void ClientSession::onBytes(std::string_view bytes) {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  if (m.depth > 0) {
    invariantBroken("onBytes() called from a SessionSink callback");
  }
  if (state_ == State::Connecting) {
    invariantBroken("onBytes() called before onConnected()");
  }
  if (m.handshaking) {
    return;  // plaintext after "220" to STARTTLS: never a reply (see onStartTls)
  }
  m.depth = 1;
  m.replies.clear();
  const bool ok = m.parser.feed(bytes, m.replies);
  for (Reply& r : m.replies) {
    if (state_ == State::Closed || m.handshaking) {
      // The session ended on an earlier reply, or TLS starts: the rest is not ours to judge.
      break;
    }
    m.handleReply(r);
  }
  if (!ok && state_ != State::Closed && !m.handshaking) {
    m.onParserError();  // a garbled reply ends the connection; nothing more is sent
  }
  m.drain();
}

void ClientSession::onTimeout() {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  m.reentrant([&] {
    if (state_ == State::Quit) {
      m.close({}, FailureScope::None);  // all work was done before QUIT
    } else if (state_ == State::Dot && m.bodyPending) {
      m.connectionFailure("timeout while sending the message body");
    } else {
      const std::string_view activity = m.activity();
      m.connectionFailure(m.expected.empty() ? fmt::format("timeout while {}", activity)
                                             : fmt::format("timeout {}", activity));
    }
  });
}

void ClientSession::onDisconnected(const std::string& error) {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  m.reentrant([&] {
    if (state_ == State::Quit) {
      m.close({}, FailureScope::None);
    } else {
      std::string detail = fmt::format("connection lost while {}", m.activity());
      if (!error.empty()) {
        detail += ": ";
        detail += error;
      }
      m.connectionFailure(std::move(detail));
    }
  });
}

void ClientSession::onTlsEstablished() {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  if (m.depth > 0) {
    invariantBroken("onTlsEstablished() called from a SessionSink callback");
  }
  if (!m.handshaking) {
    invariantBroken("onTlsEstablished() without a TLS handshake in progress");
  }
  m.depth = 1;
  m.handshaking = false;
  m.tlsActive = true;
  m.parser.reset();
  // RFC 3207 §4.2: forget what the server said in plaintext and ask again.
  caps_ = Capabilities{};
  m.trace("TLS established");
  m.sendCommand("EHLO", config_.heloName, Expect::Ehlo);
  m.syncState();
  m.drain();
}

void ClientSession::onTlsFailed(const std::string& error) {
  Impl& m = *impl_;
  if (state_ == State::Closed) {
    return;
  }
  m.reentrant([&] {
    m.handshaking = false;
    m.connectionFailure(fmt::format("TLS handshake failed: {}", error));
  });
}

void ClientSession::onWritten() {
  impl_->bodyPending = false;  // only the timeout changes: nothing to drain
}

bool ClientSession::bodyPending() const {
  return impl_->bodyPending && state_ != State::Closed;
}

bool ClientSession::tlsActive() const {
  return impl_->tlsActive;
}

void ClientSession::submit(Envelope envelope) {
  Impl& m = *impl_;
  if (!canAccept()) {
    invariantBroken("submit() called while canAccept() is false");
  }
  if (!looksEncoded(envelope.data)) {
    invariantBroken("Envelope.data is not encodeBody() output (must end with CRLF.CRLF)");
  }
  m.waiting.push_back(std::move(envelope));
  if (m.depth == 0) {
    m.depth = 1;
    m.drain();
  }
}

void ClientSession::quit() {
  Impl& m = *impl_;
  if (state_ == State::Closed || m.quitRequested) {
    return;
  }
  m.quitRequested = true;
  if (!m.connected && m.waiting.empty()) {
    m.close({}, FailureScope::None);  // never connected, nothing to do: no QUIT needed
  }
  if (m.depth == 0) {
    m.depth = 1;
    m.drain();
  }
}

bool ClientSession::canAccept() const {
  const Impl& m = *impl_;
  return state_ != State::Closed && !m.quitRequested &&
         m.waiting.size() < std::max<std::size_t>(config_.maxQueued, 1);
}

std::chrono::milliseconds ClientSession::timeout() const {
  if (state_ == State::Dot && impl_->bodyPending) {
    return config_.timeouts.dataBlock;  // RFC 5321 §4.5.3.2.5: the data block is going out
  }
  const TimeoutField field = kStateTimeouts[static_cast<std::size_t>(state_)];
  return field != nullptr ? config_.timeouts.*field : std::chrono::milliseconds{0};
}

}  // namespace salvo::smtp
