#include "engine/smtp_connection.h"

#include <atomic>
#include <chrono>

#include <fmt/format.h>

#include "engine/log.h"
#include "engine/render_pool.h"
#include "engine/smtp/body.h"

namespace salvo::engine {

namespace {

constexpr std::size_t kEncodingRoom = 2048;

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Renders one job's message and encodes it for the wire (CRLF, dot-stuffed) into `data`;
// false and `error` when it must not go out. `scratch` is reused between messages.
bool renderMessage(const campaigns::Campaign& campaign, const campaigns::JobIdentity& identity,
                   const queue::JobRecord& record, std::string& scratch, std::string& data,
                   std::string& error) {
  scratch.clear();
  campaign.render(identity, record.recipient, record.values, wallClockMs(), scratch);
  // The session sends the encoded body from this buffer as it is and appends the next
  // transaction's MAIL/RCPT/DATA to it: room for those (and for dot-stuffing) spares a
  // reallocation and a copy of the whole message.
  data.reserve(scratch.size() + kEncodingRoom);
  return smtp::encodeBody(scratch, data, error);
}

}  // namespace

// A job's message rendering on the pool. The pool thread reads the inputs (copies: the
// job itself stays with the connection, which may give it back meanwhile) and writes the
// outputs; `back` is the loop thread's. `connection` is written and followed on the loop
// thread only; the pool thread reads it to skip a job given back before its turn.
struct SmtpConnection::Rendering {
  std::shared_ptr<const campaigns::Campaign> campaign;
  campaigns::JobIdentity identity;
  queue::JobRecord record;
  bool ok = false;
  std::string data;
  std::string error;
  std::atomic<SmtpConnection*> connection{nullptr};  // null once given back
  bool back = false;                                 // the outputs are ready
};

SmtpConnection::SmtpConnection(net::EventLoop& loop, const net::Endpoint& endpoint,
                               std::string hostName, smtp::TlsPolicy tls,
                               const smtp::AuthSettings& auth, const DeliverySettings& settings,
                               ConnectionOwner& owner)
    : loop_(loop),
      endpoint_(endpoint),
      hostName_(std::move(hostName)),
      tlsPolicy_(tls),
      settings_(settings),
      owner_(owner),
      session_(sessionConfig(tls, auth), *this),
      timer_(loop) {}

smtp::SessionConfig SmtpConnection::sessionConfig(smtp::TlsPolicy tls,
                                                  const smtp::AuthSettings& auth) const {
  smtp::SessionConfig config = settings_.session;
  config.tls = tls;
  config.auth = auth;
  if (tls == smtp::TlsPolicy::Opportunistic && !settings_.tlsContext) {
    config.tls = smtp::TlsPolicy::Disabled;  // no context: plaintext is all we can do
  }
  return config;
}

SmtpConnection::~SmtpConnection() {
  // Destroyed with its destination at shutdown: jobs still rendering stay leased in the
  // store and return to the queue on restart, like the destination's pending jobs.
  for (Held& h : rendering_) {
    h.rendering->connection = nullptr;
  }
}

void SmtpConnection::start() {
  tcp_ = net::TcpConnection::connect(loop_, endpoint_, *this, settings_.connectTimeoutMs);
}

bool SmtpConnection::canAccept() const {
  // Renderings count against what the session can take: they go to it as they come back.
  return !finished_ && session_.canAccept() && rendering_.size() <= settings_.session.maxQueued &&
         submitted_ < static_cast<std::size_t>(settings_.messagesPerConnection);
}

bool SmtpConnection::idle() const {
  return !finished_ && rendering_.empty() && jobs_.empty() && session_.state() == smtp::State::Idle;
}

void SmtpConnection::submit(DeliveryJob&& job) {
  campaigns::JobIdentity identity{job.id.campaign, job.id.seq};
  ++submitted_;
  if (settings_.renderPool != nullptr && job.campaign->signs()) {
    auto r = std::make_shared<Rendering>();
    r->campaign = job.campaign;
    r->identity = identity;
    r->record = job.record;
    r->connection = this;
    rendering_.push_back(Held{r, std::move(job)});
    settings_.renderPool->post([r, loop = &loop_] {
      if (r->connection.load(std::memory_order_relaxed) == nullptr) {
        return;  // given back while queued: no signature for nothing
      }
      thread_local std::string scratch;
      r->ok = renderMessage(*r->campaign, r->identity, r->record, scratch, r->data, r->error);
      loop->post([r] {
        if (SmtpConnection* c = r->connection.load(std::memory_order_relaxed)) {
          r->back = true;
          c->renderingBack();
        }
      });
    });
    armTimer();
    return;
  }
  std::string data;
  std::string error;
  if (!renderMessage(*job.campaign, identity, job.record, rendered_, data, error)) {
    refuse(std::move(job), error);
    return;
  }
  startTransaction(std::move(job), std::move(data));
}

void SmtpConnection::renderingBack() {
  if (sendRendered() && !finished_) {
    armTimer();
    owner_.connectionReady(*this);  // room for more
  }
}

bool SmtpConnection::sendRendered() {
  if (sending_) {
    return false;  // the session's ready() from inside startTransaction(): the loop goes on
  }
  sending_ = true;
  bool sent = false;
  // The session can take what came back unless it is closing (finished() gives the jobs
  // back) or quitting (neither idle nor spent while jobs render, so never asked to).
  while (!finished_ && !rendering_.empty() && rendering_.front().rendering->back &&
         session_.canAccept()) {
    Held h = std::move(rendering_.front());
    rendering_.pop_front();
    h.rendering->connection = nullptr;
    if (h.rendering->ok) {
      startTransaction(std::move(h.job), std::move(h.rendering->data));
    } else {
      refuse(std::move(h.job), h.rendering->error);
    }
    sent = true;
  }
  sending_ = false;
  return sent;
}

void SmtpConnection::giveBackRenderings() {
  // Back to the front of the owner's queue in their order: the last one first.
  while (!rendering_.empty()) {
    Held h = std::move(rendering_.back());
    rendering_.pop_back();
    h.rendering->connection = nullptr;
    --submitted_;
    owner_.jobReturned(std::move(h.job));
  }
}

void SmtpConnection::refuse(DeliveryJob&& job, const std::string& error) {
  // A message we must not put on the wire is a permanent, message-scope failure.
  --submitted_;
  DeliveryResult result{std::move(job), smtp::Disposition::Bounced, smtp::FailureScope::Message,
                        "message refused before sending: " + error};
  owner_.jobDone(std::move(result));
}

void SmtpConnection::startTransaction(DeliveryJob&& job, std::string&& data) {
  smtp::Envelope envelope;
  envelope.tag = nextTag_++;
  envelope.mailFrom = job.campaign->envelopeFrom({job.id.campaign, job.id.seq});
  envelope.rcptTo = job.record.recipient;
  envelope.data = std::move(data);
  job.submittedUs = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
  jobs_.push_back(std::move(job));
  session_.submit(std::move(envelope));
  armTimer();
}

void SmtpConnection::quit() {
  if (!finished_) {
    session_.quit();
    armTimer();
  }
}

void SmtpConnection::armTimer() {
  if (finished_ || session_.state() == smtp::State::Closed) {
    timer_.stop();
    return;
  }
  if (session_.state() == smtp::State::Idle && jobs_.empty()) {
    if (!rendering_.empty()) {
      timer_.stop();  // nothing is awaited from the server while the next jobs render
      return;
    }
    if (submitted_ >= static_cast<std::size_t>(settings_.messagesPerConnection)) {
      // Spent: close now so the destination opens a fresh connection, rather than
      // letting it hold a connection slot until the idle timeout.
      quit();
      return;
    }
    // Nothing outstanding: the idle timeout applies instead of a reply timeout.
    timer_.start(settings_.idleTimeoutMs, 0, [this] { quit(); });
    return;
  }
  if (session_.bodyPending() && tcp_) {
    tcp_->notifyDrained();  // until then the data block timeout applies
  }
  const auto ms = static_cast<std::uint64_t>(session_.timeout().count());
  if (ms == 0) {
    // Connecting: no reply is awaited yet and the TcpConnection's connect timeout applies
    // (a 0 ms timer here would fail a connection that jobs were queued on while connecting).
    timer_.stop();
    return;
  }
  timer_.start(ms, 0, [this] { session_.onTimeout(); });
}

void SmtpConnection::onConnect(const std::string& error) {
  if (!error.empty()) {
    session_.onDisconnected(error);
    return;
  }
  session_.onConnected();
  armTimer();
}

void SmtpConnection::onData(std::string_view bytes) {
  if (tls_) {
    onTlsBytes(bytes);
  } else {
    session_.onBytes(bytes);
  }
  armTimer();
}

void SmtpConnection::onTlsBytes(std::string_view bytes) {
  plainIn_.clear();
  cipherOut_.clear();
  const bool wasEstablished = tls_->established();
  const auto result = tls_->feed(bytes, plainIn_, cipherOut_);
  writeCipher();
  switch (result) {
    case net::TlsClient::Result::Failed:
      if (wasEstablished) {
        session_.onDisconnected("TLS: " + tls_->error());
      } else {
        failTls(tls_->error());
      }
      return;
    case net::TlsClient::Result::Established:
      trace(fmt::format("TLS: {}", tls_->description()));
      session_.onTlsEstablished();
      break;
    case net::TlsClient::Result::Closed:
      session_.onDisconnected("the server closed the TLS session");
      return;
    case net::TlsClient::Result::Ok:
      break;
  }
  if (!plainIn_.empty() && !finished_) {
    std::string plain;
    plain.swap(plainIn_);  // the session may cause sends that reuse the scratch buffers
    session_.onBytes(plain);
  }
}

void SmtpConnection::writeCipher() {
  if (tcp_ && !cipherOut_.empty()) {
    tcp_->write(cipherOut_);
  }
  cipherOut_.clear();
}

void SmtpConnection::failTls(const std::string& error) {
  tlsFailed_ = true;
  session_.onTlsFailed(error);
}

void SmtpConnection::startTls() {
  if (!settings_.tlsContext) {
    failTls("no TLS context: " + settings_.tlsContextError);
    return;
  }
  tls_ = std::make_unique<net::TlsClient>(*settings_.tlsContext, hostName_,
                                          tlsPolicy_ == smtp::TlsPolicy::Verify);
  cipherOut_.clear();
  const auto result = tls_->start(cipherOut_);
  writeCipher();
  if (result == net::TlsClient::Result::Failed) {
    failTls(tls_->error());
  }
}

void SmtpConnection::onDrained() {
  session_.onWritten();
  armTimer();
}

void SmtpConnection::onClosed(const std::string& error) {
  if (tls_ && !tls_->established()) {
    failTls(error.empty() ? "connection closed by peer" : error);
    return;
  }
  session_.onDisconnected(error.empty() ? "connection closed by peer" : error);
}

void SmtpConnection::send(std::string_view bytes) {
  if (!tcp_) {
    return;
  }
  if (!tls_) {
    tcp_->write(bytes);
    return;
  }
  cipherOut_.clear();
  if (tls_->write(bytes, cipherOut_) == net::TlsClient::Result::Failed) {
    cipherOut_.clear();
    session_.onDisconnected("TLS: " + tls_->error());  // allowed from inside send()
    return;
  }
  writeCipher();
}

void SmtpConnection::transactionDone(smtp::TransactionResult&& result) {
  // The session answers envelopes in submission order, so the front job is this one.
  if (jobs_.empty()) {
    log(LogLevel::Error, "{}: result for an unknown transaction; dropping", endpoint_.str());
    return;
  }
  const bool siteOrConnection =
      result.scope == smtp::FailureScope::Site || result.scope == smtp::FailureScope::Connection;
  if (result.scope == smtp::FailureScope::Site && result.reply.code != 0) {
    siteReply_ = result.reply;
  }
  if (!result.attempted && siteOrConnection && result.disposition == smtp::Disposition::Deferred) {
    // Nothing was sent for it (the connection failed, the greeting was 421, TLS failed...):
    // the owner retries it at once on another connection, the next MX host, or without
    // TLS after a failed opportunistic handshake.
    DeliveryJob job = std::move(jobs_.front());
    jobs_.pop_front();
    owner_.jobReturned(std::move(job));
    return;
  }
  DeliveryResult done{std::move(jobs_.front()), result.disposition, result.scope,
                      result.reply.code != 0 ? result.reply.summary() : std::string(), result.tls};
  done.replyCode = result.reply.code;
  done.enhanced = result.reply.enhanced;
  done.mxHost = hostName_;
  if (done.job.submittedUs != 0) {
    done.latencySeconds =
        static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count() -
                            done.job.submittedUs) /
        1e6;
  }
  jobs_.pop_front();
  if (!result.detail.empty()) {
    done.reply = done.reply.empty() ? result.detail : done.reply + " (" + result.detail + ")";
  }
  owner_.jobDone(std::move(done));
}

void SmtpConnection::ready() {
  everReady_ = true;
  sendRendered();
  owner_.connectionReady(*this);
  armTimer();
}

void SmtpConnection::finished(const std::string& error, smtp::FailureScope scope) {
  if (finished_) {
    return;
  }
  finished_ = true;
  timer_.stop();
  if (tcp_) {
    tcp_->close();
  }
  giveBackRenderings();
  owner_.connectionFinished(*this, error, scope);
}

void SmtpConnection::trace(std::string_view line) {
  if (logEnabled(LogLevel::Debug)) {
    logLine(LogLevel::Debug, endpoint_.str() + " " + std::string(line));
  }
}

bool SmtpConnection::tracing() const {
  return logEnabled(LogLevel::Debug);
}

}  // namespace salvo::engine
