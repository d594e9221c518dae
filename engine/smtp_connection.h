// SmtpConnection: one TCP connection running one ClientSession, on a delivery loop.
// Contract: glue only — bytes between the socket and the session, the reply timer from
// the session's per-state timeout, and rendering each job just before it is submitted
// (template + variables -> message -> encodeBody): on the loop, or for a DKIM-signing
// campaign on the settings' RenderPool when there is one. Jobs rendering there are held by
// the connection, as many as its session takes (the one in progress and those queued
// behind it), and go to the session in the order they came, whichever finishes first; if
// the connection ends first, they go back to the owner unsent (jobReturned) and their
// renderings are dropped. Policy (how many connections, which endpoint, what to do on
// failure) belongs to Destination. After the session's startTls() the byte stream runs
// through a net::TlsClient (memory BIOs): ciphertext from the socket goes to TLS and the
// plaintext to the session; nothing the server sent before the handshake completed
// reaches the session.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "engine/delivery.h"
#include "engine/net/loop.h"
#include "engine/net/tcp.h"
#include "engine/smtp/session.h"

namespace salvo::engine {

class SmtpConnection;

class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  // The session is ready for another job.
  virtual void connectionReady(SmtpConnection& connection) = 0;
  virtual void jobDone(DeliveryResult&& result) = 0;
  // A job the connection gives back unsent: the session failed (site or connection scope)
  // before any command of it went out. The owner retries it elsewhere or defers it.
  virtual void jobReturned(DeliveryJob&& job) = 0;
  // The connection is over; `delivered` counts the messages it delivered. The owner
  // destroys it later (never inside this call).
  virtual void connectionFinished(SmtpConnection& connection, const std::string& error,
                                  smtp::FailureScope scope) = 0;
};

class SmtpConnection : public net::TcpHandler, public smtp::SessionSink {
 public:
  // `hostName` is the TLS server name; `tls` the session's STARTTLS policy; `auth` the
  // route's SMTP AUTH account (user "" = none).
  SmtpConnection(net::EventLoop& loop, const net::Endpoint& endpoint, std::string hostName,
                 smtp::TlsPolicy tls, const smtp::AuthSettings& auth,
                 const DeliverySettings& settings, ConnectionOwner& owner);
  ~SmtpConnection() override;

  void start();
  bool canAccept() const;
  // Renders and submits; a job that cannot be encoded is answered (bounced): at once, or
  // when its rendering on the pool comes back.
  void submit(DeliveryJob&& job);
  void quit();
  bool idle() const;
  const net::Endpoint& endpoint() const { return endpoint_; }
  std::size_t submitted() const { return submitted_; }
  bool everReady() const { return everReady_; }
  // The TLS handshake failed (or could not start).
  bool tlsFailed() const { return tlsFailed_; }
  // The last reply that failed the whole connection (a 421...), code 0 when none did.
  const smtp::Reply& siteReply() const { return siteReply_; }
  // When its owner opened it, on the owner's clock (a reply that ends the connection
  // belongs to the shaping cohort of that moment).
  std::int64_t openedAtMs() const { return openedAtMs_; }
  void setOpenedAtMs(std::int64_t ms) { openedAtMs_ = ms; }

  // net::TcpHandler
  void onConnect(const std::string& error) override;
  void onData(std::string_view bytes) override;
  void onClosed(const std::string& error) override;
  void onDrained() override;  // the body has left: the session's timeout becomes `dot`
  // smtp::SessionSink
  void send(std::string_view bytes) override;
  void transactionDone(smtp::TransactionResult&& result) override;
  void ready() override;
  void startTls() override;
  void finished(const std::string& error, smtp::FailureScope scope) override;
  void trace(std::string_view line) override;
  bool tracing() const override;

 private:
  struct Rendering;
  struct Held {
    std::shared_ptr<Rendering> rendering;
    DeliveryJob job;
  };
  void armTimer();
  // A rendering came back from the pool (loop thread): send what can go, ask for more.
  void renderingBack();
  // Sends the renderings that came back, in order, while the session takes them; whether
  // any went.
  bool sendRendered();
  void startTransaction(DeliveryJob&& job, std::string&& data);
  void refuse(DeliveryJob&& job, const std::string& error);
  void giveBackRenderings();
  smtp::SessionConfig sessionConfig(smtp::TlsPolicy tls, const smtp::AuthSettings& auth) const;
  void onTlsBytes(std::string_view bytes);
  void failTls(const std::string& error);
  void writeCipher();

  net::EventLoop& loop_;
  net::Endpoint endpoint_;
  std::string hostName_;
  smtp::TlsPolicy tlsPolicy_;
  const DeliverySettings& settings_;
  ConnectionOwner& owner_;
  smtp::ClientSession session_;
  std::unique_ptr<net::TcpConnection> tcp_;
  std::unique_ptr<net::TlsClient> tls_;  // after startTls()
  std::string cipherOut_;                // TLS output for the socket (scratch)
  std::string plainIn_;                  // TLS input for the session (scratch)
  net::Timer timer_;
  std::deque<DeliveryJob> jobs_;  // submitted, awaiting their results, in order
  std::uint64_t nextTag_ = 1;
  std::size_t submitted_ = 0;
  bool everReady_ = false;
  bool finished_ = false;
  bool tlsFailed_ = false;
  smtp::Reply siteReply_;
  std::int64_t openedAtMs_ = 0;
  std::string rendered_;  // scratch buffer reused for every message
  // Jobs rendering on the pool (or back and waiting for the session), in submission order.
  std::deque<Held> rendering_;
  bool sending_ = false;  // inside sendRendered()
};

}  // namespace salvo::engine
