// Client-side TLS through OpenSSL memory BIOs, for STARTTLS on a loop-driven connection.
// Contract: engine/net is the only code that includes openssl/ssl.h. TlsContext wraps the
// one SSL_CTX every connection reuses (thread-safe once built: create it once, share it
// between loops). TlsClient is one connection's TLS engine: it never touches a socket —
// the owner feeds it the ciphertext it read and sends the ciphertext it produces — so it
// is driven by the event loop like any other byte stream. It decides no policy: whether to
// verify, and against which name, is the caller's choice.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace salvo::net {

class TlsContext {
 public:
  // A client context: TLS 1.2 or later, the system trust store plus `caFile` when not
  // empty, and SSL_MODE_RELEASE_BUFFERS (idle connections keep no 34 KiB buffers).
  // nullptr and a message naming the file or the OpenSSL error on failure.
  static std::shared_ptr<TlsContext> createClient(const std::string& caFile, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  struct Impl;
  explicit TlsContext(Impl* impl);
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class TlsClient {
 public:
  // `serverName`: sent as SNI when it is a DNS name (not an IP literal) and, when
  // `verify`, the name (or IP address) the certificate must match. With `verify` false
  // the handshake accepts any certificate (opportunistic TLS, RFC 7435).
  TlsClient(TlsContext& context, const std::string& serverName, bool verify);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  enum class Result {
    Ok,           // progress made (or nothing to do yet)
    Established,  // the handshake completed during this call
    Failed,       // error() says why; the connection must be closed
    Closed,       // the peer sent close_notify
  };

  // Starts the handshake: appends the ClientHello to `toSend`.
  Result start(std::string& toSend);
  // Ciphertext read from the socket. Appends decrypted application data to `plain` and
  // ciphertext to send (handshake messages, alerts) to `toSend`.
  Result feed(std::string_view cipher, std::string& plain, std::string& toSend);
  // Encrypts application data (only once established) into `toSend`.
  Result write(std::string_view plain, std::string& toSend);
  bool established() const { return established_; }
  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once established.
  std::string description() const;

 private:
  Result handshake(std::string& toSend);
  Result readPlain(std::string& plain, std::string& toSend);
  void drainOutput(std::string& toSend);
  Result fail(std::string message);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool established_ = false;
  bool verify_ = false;
  std::string serverName_;
  std::string error_;
};

}  // namespace salvo::net
