#include "bench/sink_session.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace salvo::bench {

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits off the next space-separated word of `s`.
std::string_view nextWord(std::string_view& s) {
  s = trim(s);
  std::size_t sp = s.find(' ');
  std::string_view word = s.substr(0, sp);
  s = sp == std::string_view::npos ? std::string_view() : s.substr(sp + 1);
  return word;
}

// Parses "<path>" (RFC 5321 Reverse-path / Forward-path) at the start of `s`, dropping an
// obsolete source route ("<@a,@b:user@example.com>"). `rest` receives the parameters.
bool parsePath(std::string_view s, std::string_view& path, std::string_view& rest) {
  s = trim(s);
  if (s.empty() || s.front() != '<') {
    return false;
  }
  std::size_t close = s.find('>');
  if (close == std::string_view::npos) {
    return false;
  }
  path = s.substr(1, close - 1);
  rest = s.substr(close + 1);
  if (!rest.empty() && rest.front() != ' ') {
    return false;
  }
  if (!path.empty() && path.front() == '@') {
    std::size_t colon = path.find(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    path.remove_prefix(colon + 1);
  }
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= ' ' || u == 0x7f || c == '<') {
      return false;
    }
  }
  return true;
}

bool containsAny(std::string_view address, const std::vector<std::string>& needles) {
  for (const auto& needle : needles) {
    if (address.find(needle) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

// RFC 4648 base64; false on any character outside the alphabet or bad padding.
bool decodeBase64(std::string_view in, std::string& out) {
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    const char c = in[i];
    int v = -1;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else {
      return false;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  const std::size_t padding = in.size() - i;
  return in.find_first_not_of('=', i) == std::string_view::npos && padding <= 2 &&
         in.size() % 4 == 0;
}

constexpr const char* kStateNames[] = {"Greeting", "Idle",  "Mail",    "Data",
                                       "Closed",   "Chunk", "StartTls"};

// The SplitMix64 output function: spreads any 64-bit input over all 64 bits.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double unitInterval(std::uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;  // the top 53 bits
}

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

}  // namespace

double faultHash(std::uint64_t seed, std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return unitInterval(mix64(h ^ mix64(seed)));
}

const char* SinkSession::stateName(State state) {
  return kStateNames[static_cast<int>(state)];
}

SinkSession::SinkSession(const SinkRules& rules, SinkSessionEvents& events, std::uint64_t stream)
    : rules_(rules), events_(events), random_(mix64(rules.seed) ^ mix64(stream * kGolden + 1)) {
  ehloReply_ = "250-" + rules_.hostname + "\r\n";
  ehloReply_ += "250-PIPELINING\r\n";
  ehloReply_ += "250-SIZE " + std::to_string(rules_.maxMessageSize) + "\r\n";
  ehloReply_ += "250-8BITMIME\r\n";
  ehloReply_ += "250-ENHANCEDSTATUSCODES\r\n";
  if (!rules_.authUser.empty()) {
    ehloReply_ += "250-AUTH PLAIN LOGIN\r\n";
  }
  if (rules_.chunking) {
    ehloReply_ += "250-CHUNKING\r\n";
  }
  ehloReplyTls_ = ehloReply_ + "250 SMTPUTF8\r\n";
  if (rules_.startTls) {
    ehloReply_ += "250-STARTTLS\r\n";
  }
  ehloReply_ += "250 SMTPUTF8\r\n";
}

void SinkSession::greet() {
  out_ += "220 ";
  out_ += rules_.hostname;
  out_ += " ESMTP salvo-sink\r\n";
  flushReplies();
}

void SinkSession::reply(std::string_view text) {
  out_.append(text);
  out_ += "\r\n";
}

void SinkSession::flushReplies() {
  if (!out_.empty()) {
    events_.sendReply(out_);
    out_.clear();
  }
}

void SinkSession::feed(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size() && state_ != State::Closed && state_ != State::StartTls) {
    if (state_ == State::Data) {
      pos += consumeData(bytes.substr(pos));
      continue;
    }
    if (state_ == State::Chunk) {
      pos += consumeChunk(bytes.substr(pos));
      continue;
    }
    const char* start = bytes.data() + pos;
    std::size_t avail = bytes.size() - pos;
    const auto* nl = static_cast<const char*>(std::memchr(start, '\n', avail));
    if (discarding_) {
      if (nl == nullptr) {
        break;
      }
      pos += static_cast<std::size_t>(nl - start) + 1;
      discarding_ = false;
      continue;
    }
    if (nl == nullptr) {
      // Keep the partial line, but never more than one octet past the limit (plus CR).
      std::size_t room = kMaxCommandLine + 2 - line_.size();
      line_.append(start, std::min(avail, room));
      if (line_.size() > kMaxCommandLine + 1) {
        line_.clear();
        discarding_ = true;
        reply("500 5.5.2 line too long");
      }
      break;
    }
    auto len = static_cast<std::size_t>(nl - start);
    pos += len + 1;
    std::string_view line;
    if (line_.empty()) {
      line = std::string_view(start, len);
    } else {
      line_.append(start, len);
      line = line_;
    }
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.size() > kMaxCommandLine) {
      reply("500 5.5.2 line too long");
    } else {
      command(line);
    }
    line_.clear();
  }
  flushReplies();
  if (quit_) {
    quit_ = false;
    events_.onQuit();  // last: the session may be gone after this
  } else if (drop_) {
    drop_ = false;
    events_.onDrop();  // likewise
  } else if (startTls_) {
    startTls_ = false;
    events_.onStartTls();  // likewise
  }
}

void SinkSession::tlsEstablished() {
  // RFC 3207 §4.2: discard any knowledge obtained from the client before the handshake.
  resetTransaction();
  authenticated_ = false;
  authStep_ = AuthStep::None;
  authUser_.clear();
  line_.clear();
  discarding_ = false;
  tls_ = true;
  state_ = State::Greeting;
}

void SinkSession::startTls(std::string_view args) {
  if (!args.empty()) {
    reply("501 5.5.4 syntax: STARTTLS");
    return;
  }
  if (tls_) {
    reply("503 5.5.1 TLS already active");
    return;
  }
  if (state_ == State::Greeting) {
    reply("503 5.5.1 send EHLO first");
    return;
  }
  if (state_ != State::Idle) {
    reply("503 5.5.1 STARTTLS not permitted during a mail transaction");
    return;
  }
  reply("220 2.0.0 ready to start TLS");
  state_ = State::StartTls;  // the rest of this input is dropped, unread
  startTls_ = true;
}

double SinkSession::nextRandom() {
  random_ += kGolden;
  return unitInterval(mix64(random_));
}

const DomainFaults* SinkSession::faultsFor(std::string_view address) const {
  std::size_t at = address.rfind('@');
  std::string_view domain = at == std::string_view::npos ? address : address.substr(at + 1);
  for (const auto& entry : rules_.faults) {
    if (entry.domains.empty()) {
      return &entry;
    }
    for (const auto& pattern : entry.domains) {
      if (domain.find(pattern) != std::string_view::npos) {
        return &entry;
      }
    }
  }
  return nullptr;
}

// The data phase, streamed: no line is buffered. Only CRLF "." CRLF ends the data (a bare
// LF neither ends a line nor the message: SMTP smuggling); a line's leading dot is
// removed (RFC 5321 §4.5.2).
std::size_t SinkSession::consumeData(std::string_view in) {
  const char* begin = in.data();
  const char* end = begin + in.size();
  const char* cur = begin;
  while (cur < end) {
    switch (dataState_) {
      case DataState::LineStart:
        if (*cur == '.') {
          dataState_ = DataState::Dot;
          ++cur;
          continue;
        }
        dataState_ = DataState::Middle;
        prevCr_ = false;
        break;
      case DataState::Dot:
        if (*cur == '\r') {
          dataState_ = DataState::DotCr;
          ++cur;
          continue;
        }
        dataState_ = DataState::Middle;  // the stuffed dot is dropped
        prevCr_ = false;
        break;
      case DataState::DotCr:
        if (*cur == '\n') {
          ++cur;
          finishMessage();
          return static_cast<std::size_t>(cur - begin);
        }
        appendData("\r", 1);
        dataState_ = DataState::Middle;
        prevCr_ = true;
        break;
      case DataState::Middle: {
        const auto* nl = static_cast<const char*>(std::memchr(cur, '\n', end - cur));
        if (nl == nullptr) {
          appendData(cur, static_cast<std::size_t>(end - cur));
          prevCr_ = end[-1] == '\r';
          cur = end;
          break;
        }
        bool crlf = nl > cur ? nl[-1] == '\r' : prevCr_;
        appendData(cur, static_cast<std::size_t>(nl + 1 - cur));
        cur = nl + 1;
        prevCr_ = false;
        if (crlf) {
          dataState_ = DataState::LineStart;
        }
        break;
      }
    }
  }
  return in.size();
}

void SinkSession::appendData(const char* p, std::size_t n) {
  size_ += n;
  if (size_ > rules_.maxMessageSize) {
    if (!oversize_) {
      oversize_ = true;
      data_.clear();
    }
    return;
  }
  if (rules_.capture) {
    data_.append(p, n);
  }
}

void SinkSession::finishMessage() {
  state_ = State::Idle;
  if (oversize_) {
    reply("552 5.3.4 message exceeds the size limit of " + std::to_string(rules_.maxMessageSize) +
          " octets");
  } else {
    SinkMessage message;
    message.from = from_;
    message.recipients = std::span<const std::string>(rcpts_.data(), rcptCount_);
    message.data = rules_.capture ? std::string_view(data_) : std::string_view();
    message.size = size_;
    std::string error;
    if (events_.onMessage(message, error)) {
      ++accepted_;
      reply("250 2.0.0 Ok: queued");
    } else {
      reply("451 4.3.0 " + error);
    }
  }
  resetTransaction();
}

void SinkSession::bdat(std::string_view args) {
  std::string_view sizeText = nextWord(args);
  std::string_view last = nextWord(args);
  const bool sizeOk = !sizeText.empty() && sizeText.size() <= 18 &&
                      sizeText.find_first_not_of("0123456789") == std::string_view::npos;
  if (!sizeOk || !(last.empty() || iequals(last, "LAST")) || !trim(args).empty()) {
    // Without a size the chunk cannot be skipped: the octets that follow will be read as
    // commands, as any server must.
    reply("501 5.5.4 syntax: BDAT chunk-size [LAST]");
    return;
  }
  std::size_t size = 0;
  for (char c : sizeText) {
    size = size * 10 + static_cast<std::size_t>(c - '0');
  }
  chunkSize_ = size;
  chunkLeft_ = size;
  chunkLast_ = !last.empty();
  chunkReturn_ = state_;
  chunkError_.clear();
  if (state_ != State::Mail) {
    chunkError_ = state_ == State::Greeting ? "503 5.5.1 send EHLO or HELO first"
                                            : "503 5.5.1 need MAIL before BDAT";
  } else if (rcptCount_ == 0) {
    chunkError_ =
        rcptAttempted_ ? "554 5.5.1 no valid recipients" : "503 5.5.1 need RCPT before BDAT";
  } else if (!bdatUsed_) {
    bdatUsed_ = true;
    data_.clear();
    size_ = 0;
    oversize_ = false;
  }
  state_ = State::Chunk;
  if (chunkLeft_ == 0) {
    finishChunk();
  }
}

std::size_t SinkSession::consumeChunk(std::string_view in) {
  const std::size_t n = std::min(chunkLeft_, in.size());
  if (chunkError_.empty()) {
    appendData(in.data(), n);
  }
  chunkLeft_ -= n;
  if (chunkLeft_ == 0) {
    finishChunk();
  }
  return n;
}

void SinkSession::finishChunk() {
  if (!chunkError_.empty()) {
    state_ = chunkReturn_;
    reply(chunkError_);
    return;
  }
  if (chunkLast_) {
    finishMessage();  // the reply to BDAT LAST is the message's: 250, 552 or 451
    return;
  }
  state_ = State::Mail;
  reply("250 2.0.0 " + std::to_string(chunkSize_) + " octets received");
}

void SinkSession::resetTransaction() {
  bdatUsed_ = false;
  from_.clear();
  rcptCount_ = 0;
  rcptAttempted_ = false;
  data_.clear();
  size_ = 0;
  oversize_ = false;
}

void SinkSession::command(std::string_view line) {
  if (authStep_ != AuthStep::None) {
    authResponse(line);
    return;
  }
  std::size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  std::string_view args = sp == std::string_view::npos ? std::string_view() : trim(line.substr(sp));
  if (iequals(verb, "EHLO")) {
    ehlo(args, true);
  } else if (iequals(verb, "HELO")) {
    ehlo(args, false);
  } else if (iequals(verb, "MAIL")) {
    mail(args);
  } else if (iequals(verb, "RCPT")) {
    rcpt(args);
  } else if (iequals(verb, "DATA")) {
    data(args);
  } else if (iequals(verb, "BDAT") && rules_.chunking) {
    bdat(args);
  } else if (iequals(verb, "RSET")) {
    if (!args.empty()) {
      reply("501 5.5.4 syntax: RSET");
      return;
    }
    resetTransaction();
    if (state_ == State::Mail) {
      state_ = State::Idle;
    }
    reply("250 2.0.0 Ok");
  } else if (iequals(verb, "AUTH") && !rules_.authUser.empty()) {
    auth(args);
  } else if (iequals(verb, "STARTTLS") && rules_.startTls) {
    startTls(args);
  } else if (iequals(verb, "NOOP")) {
    reply("250 2.0.0 Ok");
  } else if (iequals(verb, "QUIT")) {
    reply("221 2.0.0 Bye");
    state_ = State::Closed;
    quit_ = true;
  } else if (iequals(verb, "VRFY") || iequals(verb, "EXPN") || iequals(verb, "HELP") ||
             iequals(verb, "ETRN") || iequals(verb, "BDAT") || iequals(verb, "AUTH") ||
             iequals(verb, "STARTTLS")) {
    reply("502 5.5.1 command not implemented");
  } else {
    reply("500 5.5.2 command not recognized");
  }
}

void SinkSession::auth(std::string_view args) {
  if (state_ == State::Greeting) {
    reply("503 5.5.1 send EHLO first");
    return;
  }
  if (authenticated_) {
    reply("503 5.5.1 already authenticated");
    return;
  }
  if (state_ != State::Idle) {
    reply("503 5.5.1 AUTH not permitted during a mail transaction");
    return;
  }
  const std::string_view mechanism = nextWord(args);
  const std::string_view initial = trim(args);
  if (iequals(mechanism, "PLAIN")) {
    if (initial.empty()) {
      authStep_ = AuthStep::Plain;
      reply("334 ");
    } else {
      authStep_ = AuthStep::Plain;
      authResponse(initial);
    }
  } else if (iequals(mechanism, "LOGIN")) {
    authStep_ = AuthStep::LoginUser;
    if (initial.empty()) {
      reply("334 VXNlcm5hbWU6");  // "Username:"
    } else {
      authResponse(initial);
    }
  } else {
    reply("504 5.5.4 unrecognized authentication mechanism");
  }
}

void SinkSession::authResponse(std::string_view line) {
  const AuthStep step = authStep_;
  authStep_ = AuthStep::None;
  if (line == "*") {
    reply("501 5.7.0 authentication cancelled");
    return;
  }
  std::string decoded;
  if (!decodeBase64(line, decoded)) {
    reply("501 5.5.2 cannot decode the response (base64)");
    return;
  }
  switch (step) {
    case AuthStep::Plain: {
      // RFC 4616: authzid NUL authcid NUL passwd.
      const std::size_t first = decoded.find('\0');
      const std::size_t second =
          first == std::string::npos ? std::string::npos : decoded.find('\0', first + 1);
      if (second == std::string::npos) {
        reply("501 5.5.2 malformed PLAIN response");
        return;
      }
      const std::string_view view = decoded;
      checkCredentials(view.substr(first + 1, second - first - 1), view.substr(second + 1));
      break;
    }
    case AuthStep::LoginUser:
      authUser_ = decoded;
      authStep_ = AuthStep::LoginPassword;
      reply("334 UGFzc3dvcmQ6");  // "Password:"
      break;
    case AuthStep::LoginPassword:
      checkCredentials(authUser_, decoded);
      authUser_.clear();
      break;
    case AuthStep::None:
      break;
  }
}

void SinkSession::checkCredentials(std::string_view user, std::string_view password) {
  if (user == rules_.authUser && password == rules_.authPassword) {
    authenticated_ = true;
    reply("235 2.7.0 Authentication successful");
  } else {
    reply("535 5.7.8 Authentication credentials invalid");
  }
}

void SinkSession::ehlo(std::string_view args, bool extended) {
  if (args.empty()) {
    reply(extended ? "501 5.5.4 syntax: EHLO domain" : "501 5.5.4 syntax: HELO domain");
    return;
  }
  resetTransaction();
  state_ = State::Idle;
  if (extended) {
    out_ += tls_ ? ehloReplyTls_ : ehloReply_;
  } else {
    out_ += "250 ";
    reply(rules_.hostname);
  }
}

void SinkSession::mail(std::string_view args) {
  if (state_ == State::Greeting) {
    reply("503 5.5.1 send EHLO or HELO first");
    return;
  }
  if (state_ == State::Mail) {
    reply("503 5.5.1 nested MAIL command");
    return;
  }
  if (!rules_.authUser.empty() && !authenticated_) {
    reply("530 5.7.0 authentication required");
    return;
  }
  if (rules_.reply421Every > 0 && accepted_ >= rules_.reply421Every) {
    reply("421 4.7.0 too many messages on this connection, closing");
    state_ = State::Closed;
    quit_ = true;  // closes the connection once this reply is out
    events_.onFault(SinkFault::ConnectionLimit);
    return;
  }
  if (rules_.dropAfter > 0 && accepted_ >= rules_.dropAfter) {
    state_ = State::Closed;
    drop_ = true;
    events_.onFault(SinkFault::Dropped);
    return;
  }
  std::string_view path;
  std::string_view rest;
  if (!istartsWith(args, "FROM:")) {
    reply("501 5.5.4 syntax: MAIL FROM:<address>");
    return;
  }
  if (!parsePath(args.substr(5), path, rest)) {
    reply("501 5.1.7 bad sender address syntax");
    return;
  }
  for (std::string_view param = nextWord(rest); !param.empty(); param = nextWord(rest)) {
    std::size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (iequals(key, "SIZE") && !value.empty()) {
      std::size_t size = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || value.size() > 18) {
          reply("501 5.5.4 bad SIZE value");
          return;
        }
        size = size * 10 + static_cast<std::size_t>(c - '0');
      }
      if (size > rules_.maxMessageSize) {
        reply("552 5.3.4 message size exceeds fixed limit");
        return;
      }
    } else if (iequals(key, "BODY") && (iequals(value, "7BIT") || iequals(value, "8BITMIME"))) {
      continue;
    } else if (iequals(key, "SMTPUTF8") && eq == std::string_view::npos) {
      continue;
    } else {
      out_ += "555 5.5.4 unsupported MAIL parameter ";
      reply(param);
      return;
    }
  }
  switch (events_.onMail()) {
    case MailAdmission::Accept:
      break;
    case MailAdmission::RateLimited:
      reply("421 4.7.0 rate limited, slow down");
      state_ = State::Closed;
      quit_ = true;
      return;
    case MailAdmission::Drop:
      state_ = State::Closed;
      drop_ = true;
      return;
  }
  from_.assign(path);
  rcptCount_ = 0;
  rcptAttempted_ = false;
  state_ = State::Mail;
  reply("250 2.1.0 Ok");
}

void SinkSession::rcpt(std::string_view args) {
  if (state_ != State::Mail) {
    reply(state_ == State::Greeting ? "503 5.5.1 send EHLO or HELO first"
                                    : "503 5.5.1 need MAIL before RCPT");
    return;
  }
  std::string_view path;
  std::string_view rest;
  if (!istartsWith(args, "TO:")) {
    reply("501 5.5.4 syntax: RCPT TO:<address>");
    return;
  }
  if (!parsePath(args.substr(3), path, rest) || path.empty()) {
    reply("501 5.1.3 bad recipient address syntax");
    return;
  }
  std::string_view param = nextWord(rest);
  if (!param.empty()) {
    out_ += "555 5.5.4 unsupported RCPT parameter ";
    reply(param);
    return;
  }
  rcptAttempted_ = true;
  if (rcptCount_ >= rules_.maxRecipients) {
    reply("452 4.5.3 too many recipients");
    return;
  }
  if (containsAny(path, rules_.rejectRcpt)) {
    out_ += "550 5.1.1 <";
    out_.append(path);
    reply(">: mailbox unavailable");
    events_.onRecipientRefused(path, true);
    return;
  }
  if (containsAny(path, rules_.deferRcpt)) {
    out_ += "451 4.3.0 <";
    out_.append(path);
    reply(">: try again later");
    events_.onRecipientRefused(path, false);
    return;
  }
  if (const DomainFaults* faults = faultsFor(path); faults != nullptr) {
    if (faults->rejectFraction > 0 && faultHash(rules_.seed, path) < faults->rejectFraction) {
      out_ += "550 5.1.1 <";
      out_.append(path);
      reply(">: recipient address rejected: user unknown");
      events_.onFault(SinkFault::Rejected5xx);
      return;
    }
    if (faults->deferFraction > 0 && nextRandom() < faults->deferFraction) {
      out_ += "451 4.7.1 <";
      out_.append(path);
      reply(">: temporarily deferred, try again later");
      events_.onFault(SinkFault::Deferred4xx);
      return;
    }
  }
  if (rcpts_.size() <= rcptCount_) {
    rcpts_.emplace_back();
  }
  rcpts_[rcptCount_++].assign(path);
  reply("250 2.1.5 Ok");
}

void SinkSession::data(std::string_view args) {
  if (!args.empty()) {
    reply("501 5.5.4 syntax: DATA");
    return;
  }
  if (state_ != State::Mail) {
    reply(state_ == State::Greeting ? "503 5.5.1 send EHLO or HELO first"
                                    : "503 5.5.1 need MAIL before DATA");
    return;
  }
  if (rcptCount_ == 0) {
    reply(rcptAttempted_ ? "554 5.5.1 no valid recipients" : "503 5.5.1 need RCPT before DATA");
    return;
  }
  if (bdatUsed_) {
    reply("503 5.5.1 DATA not permitted after BDAT");
    return;
  }
  state_ = State::Data;
  dataState_ = DataState::LineStart;
  prevCr_ = false;
  data_.clear();
  size_ = 0;
  oversize_ = false;
  reply("354 End data with <CR><LF>.<CR><LF>");
}

}  // namespace salvo::bench
