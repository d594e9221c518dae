#include "engine/net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

namespace salvo::net {

namespace {

// The first queued OpenSSL error as text (and the rest of the queue cleared).
std::string opensslError(const char* what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return what;
  }
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return fmt::format("{}: {}", what, text);
}

bool isIpLiteral(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

struct TlsContext::Impl {
  SSL_CTX* ctx = nullptr;
  ~Impl() {
    if (ctx != nullptr) {
      SSL_CTX_free(ctx);
    }
  }
};

TlsContext::TlsContext(Impl* impl) : impl_(impl) {}

TlsContext::~TlsContext() = default;

std::shared_ptr<TlsContext> TlsContext::createClient(const std::string& caFile,
                                                     std::string& error) {
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = SSL_CTX_new(TLS_client_method());
  if (impl->ctx == nullptr) {
    error = opensslError("cannot create the TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(impl->ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(impl->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_default_verify_paths(impl->ctx) != 1) {
    error = opensslError("cannot load the system trust store");
    return nullptr;
  }
  if (!caFile.empty() && SSL_CTX_load_verify_locations(impl->ctx, caFile.c_str(), nullptr) != 1) {
    error = opensslError(fmt::format("cannot load CA file {}", caFile).c_str());
    return nullptr;
  }
  return std::make_shared<TlsContext>(impl.release());
}

struct TlsClient::Impl {
  SSL* ssl = nullptr;
  BIO* network = nullptr;  // our end of the BIO pair: ciphertext in and out
  ~Impl() {
    if (ssl != nullptr) {
      SSL_free(ssl);  // frees the internal BIO too
    }
    if (network != nullptr) {
      BIO_free(network);
    }
  }
};

TlsClient::TlsClient(TlsContext& context, const std::string& serverName, bool verify)
    : impl_(std::make_unique<Impl>()), verify_(verify), serverName_(serverName) {
  ERR_clear_error();
  impl_->ssl = SSL_new(context.impl().ctx);
  if (impl_->ssl == nullptr) {
    error_ = opensslError("SSL_new failed");
    return;
  }
  BIO* internal = nullptr;
  if (BIO_new_bio_pair(&internal, 0, &impl_->network, 0) != 1) {
    error_ = opensslError("BIO_new_bio_pair failed");
    return;
  }
  SSL_set_bio(impl_->ssl, internal, internal);
  SSL_set_connect_state(impl_->ssl);
  const bool ip = isIpLiteral(serverName);
  if (!serverName.empty() && !ip) {
    SSL_set_tlsext_host_name(impl_->ssl, serverName.c_str());
  }
  if (verify) {
    SSL_set_verify(impl_->ssl, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM* param = SSL_get0_param(impl_->ssl);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, serverName.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(impl_->ssl, serverName.c_str());
    }
  } else {
    SSL_set_verify(impl_->ssl, SSL_VERIFY_NONE, nullptr);
  }
}

TlsClient::~TlsClient() = default;

TlsClient::Result TlsClient::fail(std::string message) {
  error_ = std::move(message);
  return Result::Failed;
}

void TlsClient::drainOutput(std::string& toSend) {
  char buf[16 * 1024];
  for (;;) {
    const int n = BIO_read(impl_->network, buf, sizeof buf);
    if (n <= 0) {
      return;
    }
    toSend.append(buf, static_cast<std::size_t>(n));
  }
}

TlsClient::Result TlsClient::handshake(std::string& toSend) {
  ERR_clear_error();
  const int rc = SSL_do_handshake(impl_->ssl);
  drainOutput(toSend);
  if (rc == 1) {
    established_ = true;
    return Result::Established;
  }
  const int err = SSL_get_error(impl_->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return Result::Ok;
  }
  const long verifyResult = SSL_get_verify_result(impl_->ssl);
  if (verify_ && verifyResult != X509_V_OK) {
    ERR_clear_error();
    return fail(fmt::format("certificate verification failed for {}: {}", serverName_,
                            X509_verify_cert_error_string(verifyResult)));
  }
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return fail("the server ended the TLS handshake");
  }
  return fail(opensslError("TLS handshake"));
}

TlsClient::Result TlsClient::start(std::string& toSend) {
  if (impl_->network == nullptr) {
    return Result::Failed;  // the constructor failed; error() says why
  }
  return handshake(toSend);
}

TlsClient::Result TlsClient::readPlain(std::string& plain, std::string& toSend) {
  char buf[16 * 1024];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(impl_->ssl, buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    const int err = SSL_get_error(impl_->ssl, n);
    drainOutput(toSend);  // e.g. a TLS 1.3 key update answer
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return Result::Ok;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      return Result::Closed;
    }
    return fail(opensslError("TLS read"));
  }
}

TlsClient::Result TlsClient::feed(std::string_view cipher, std::string& plain,
                                  std::string& toSend) {
  if (impl_->network == nullptr) {
    return Result::Failed;
  }
  Result outcome = Result::Ok;
  while (!cipher.empty()) {
    // The pair's buffer is 17 KiB by default: feed it in pieces, consuming as we go.
    const int n = BIO_write(impl_->network, cipher.data(), static_cast<int>(cipher.size()));
    if (n > 0) {
      cipher.remove_prefix(static_cast<std::size_t>(n));
    }
    if (!established_) {
      const Result r = handshake(toSend);
      if (r == Result::Failed) {
        return r;
      }
      if (r == Result::Established) {
        outcome = Result::Established;
      }
    }
    if (established_) {
      const Result r = readPlain(plain, toSend);
      if (r != Result::Ok) {
        return r;
      }
    }
    if (n <= 0 && !cipher.empty() && BIO_ctrl_get_write_guarantee(impl_->network) == 0) {
      return fail("TLS input stalled");  // nothing consumed the buffered input
    }
  }
  return outcome;
}

TlsClient::Result TlsClient::write(std::string_view plain, std::string& toSend) {
  if (!established_) {
    return fail("TLS write before the handshake completed");
  }
  while (!plain.empty()) {
    ERR_clear_error();
    const int n = SSL_write(impl_->ssl, plain.data(), static_cast<int>(plain.size()));
    if (n > 0) {
      plain.remove_prefix(static_cast<std::size_t>(n));
      drainOutput(toSend);
      continue;
    }
    const int err = SSL_get_error(impl_->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE) {
      drainOutput(toSend);  // the pair's buffer filled up: empty it and go on
      continue;
    }
    return fail(opensslError("TLS write"));
  }
  return Result::Ok;
}

std::string TlsClient::description() const {
  if (!established_) {
    return {};
  }
  return fmt::format("{} {}", SSL_get_version(impl_->ssl), SSL_get_cipher_name(impl_->ssl));
}

}  // namespace salvo::net
