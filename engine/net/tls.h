// TLS through OpenSSL memory BIOs, for STARTTLS on a loop-driven connection: the client
// side (Salvo's deliveries) and the server side (`salvo sink --tls`).
// Contract: engine/net is the only code that includes openssl/ssl.h. TlsContext wraps the
// one SSL_CTX every connection reuses (thread-safe once built: create it once, share it
// between loops). TlsClient and TlsServer are one connection's TLS engine: they never touch
// a socket — the owner feeds in the ciphertext it read and sends the ciphertext they
// produce — so they are driven by the event loop like any other byte stream. They decide
// no policy: whether to verify, against which name, which certificate to serve, is the
// caller's choice.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct ssl_st;  // OpenSSL's SSL, for the two sides' constructors

namespace salvo::net {

class TlsContext {
 public:
  // A client context: TLS 1.2 or later, the system trust store plus `caFile` when not
  // empty, and SSL_MODE_RELEASE_BUFFERS (idle connections keep no 34 KiB buffers).
  // nullptr and a message naming the file or the OpenSSL error on failure.
  static std::shared_ptr<TlsContext> createClient(const std::string& caFile, std::string& error);
  // A server context (TLS 1.2 or later, SSL_MODE_RELEASE_BUFFERS) serving the PEM
  // certificate chain in `certFile` with the PEM private key in `keyFile`. nullptr and a
  // message naming the file ("TLS certificate file x.pem: cannot read: No such file or
  // directory", "... does not match the certificate") on failure.
  static std::shared_ptr<TlsContext> createServer(const std::string& certFile,
                                                  const std::string& keyFile, std::string& error);
  // A server context with a self-signed certificate made in memory for this process: an
  // EC P-256 key, CN=localhost, subjectAltName DNS:localhost and IP:127.0.0.1, valid for
  // one day from an hour ago (small clock skews). For tests and benchmarks: a client must
  // not verify it.
  static std::shared_ptr<TlsContext> createSelfSignedServer(std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  struct Impl;
  explicit TlsContext(Impl* impl);
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// What the two sides share: the BIO pair, the handshake, reads and writes.
class TlsStream {
 public:
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  enum class Result {
    Ok,           // progress made (or nothing to do yet)
    Established,  // the handshake completed during this call
    Failed,       // error() says why; the connection must be closed
    Closed,       // the peer sent close_notify
  };

  // Ciphertext read from the socket. Appends decrypted application data to `plain` and
  // ciphertext to send (handshake messages, alerts) to `toSend`.
  Result feed(std::string_view cipher, std::string& plain, std::string& toSend);
  // Encrypts application data (only once established) into `toSend`.
  Result write(std::string_view plain, std::string& toSend);
  bool established() const { return established_; }
  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once established.
  std::string description() const;

 protected:
  // `server`: accept state (waits for the ClientHello), else connect state.
  TlsStream(TlsContext& context, bool server);
  Result handshake(std::string& toSend);
  bool ready() const;   // false when the constructor failed (error() says why)
  ssl_st* ssl() const;  // nullptr when SSL_new failed

  bool verify_ = false;   // client: a failed verification gets its own message
  std::string peerName_;  // client: the name verified against
  std::string error_;

 private:
  Result readPlain(std::string& plain, std::string& toSend);
  void drainOutput(std::string& toSend);
  Result fail(std::string message);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool server_ = false;
  bool established_ = false;
};

class TlsClient : public TlsStream {
 public:
  // `serverName`: sent as SNI when it is a DNS name (not an IP literal) and, when
  // `verify`, the name (or IP address) the certificate must match. With `verify` false
  // the handshake accepts any certificate (opportunistic TLS, RFC 7435).
  TlsClient(TlsContext& context, const std::string& serverName, bool verify);

  // Starts the handshake: appends the ClientHello to `toSend`.
  Result start(std::string& toSend);
};

class TlsServer : public TlsStream {
 public:
  // `context` must be a server context. The handshake starts with the first feed() (the
  // client speaks first); a client certificate is not asked for.
  explicit TlsServer(TlsContext& context);
};

}  // namespace salvo::net
