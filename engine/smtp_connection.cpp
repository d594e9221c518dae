#include "engine/smtp_connection.h"

#include <chrono>

#include "engine/log.h"
#include "engine/smtp/body.h"

namespace salvo::engine {

namespace {

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SmtpConnection::SmtpConnection(net::EventLoop& loop, const net::Endpoint& endpoint,
                               const DeliverySettings& settings, ConnectionOwner& owner)
    : loop_(loop),
      endpoint_(endpoint),
      settings_(settings),
      owner_(owner),
      session_(settings.session, *this),
      timer_(loop) {}

SmtpConnection::~SmtpConnection() = default;

void SmtpConnection::start() {
  tcp_ = net::TcpConnection::connect(loop_, endpoint_, *this, settings_.connectTimeoutMs);
}

bool SmtpConnection::canAccept() const {
  return !finished_ && session_.canAccept() &&
         submitted_ < static_cast<std::size_t>(settings_.messagesPerConnection);
}

bool SmtpConnection::idle() const {
  return !finished_ && jobs_.empty() && session_.state() == smtp::State::Idle;
}

void SmtpConnection::submit(DeliveryJob&& job) {
  const auto& campaign = *job.campaign;
  campaigns::JobIdentity identity{job.id.campaign, job.id.seq};
  rendered_.clear();
  campaign.render(identity, job.record.recipient, job.record.values, wallClockMs(), rendered_);
  smtp::Envelope envelope;
  envelope.tag = nextTag_++;
  envelope.mailFrom = campaign.envelopeFrom(identity);
  envelope.rcptTo = job.record.recipient;
  std::string error;
  if (!smtp::encodeBody(rendered_, envelope.data, error)) {
    // A message we must not put on the wire is a permanent, message-scope failure.
    DeliveryResult result{std::move(job), smtp::Disposition::Bounced, smtp::FailureScope::Message,
                          "message refused before sending: " + error};
    owner_.jobDone(std::move(result));
    return;
  }
  ++submitted_;
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
    // Nothing outstanding: the idle timeout applies instead of a reply timeout.
    timer_.start(settings_.idleTimeoutMs, 0, [this] { quit(); });
    return;
  }
  auto ms = static_cast<std::uint64_t>(session_.timeout().count());
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
  session_.onBytes(bytes);
  armTimer();
}

void SmtpConnection::onClosed(const std::string& error) {
  session_.onDisconnected(error.empty() ? "connection closed by peer" : error);
}

void SmtpConnection::send(std::string_view bytes) {
  if (tcp_) {
    tcp_->write(bytes);
  }
}

void SmtpConnection::transactionDone(smtp::TransactionResult&& result) {
  // The session answers envelopes in submission order, so the front job is this one.
  if (jobs_.empty()) {
    log(LogLevel::Error, "{}: result for an unknown transaction; dropping", endpoint_.str());
    return;
  }
  DeliveryResult done{std::move(jobs_.front()), result.disposition, result.scope,
                      result.reply.code != 0 ? result.reply.summary() : std::string()};
  jobs_.pop_front();
  if (!result.detail.empty()) {
    done.reply = done.reply.empty() ? result.detail : done.reply + " (" + result.detail + ")";
  }
  owner_.jobDone(std::move(done));
}

void SmtpConnection::ready() {
  everReady_ = true;
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
  owner_.connectionFinished(*this, error, scope);
}

void SmtpConnection::trace(std::string_view line) {
  if (logEnabled(LogLevel::Debug)) {
    logLine(LogLevel::Debug, endpoint_.str() + " " + std::string(line));
  }
}

}  // namespace salvo::engine
