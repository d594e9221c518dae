#include "engine/net/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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

// A file that opens for reading, else a message naming it: OpenSSL's own errors for a missing
// file ("system library::No such file or directory") do not say which file.
bool checkReadable(const char* what, const std::string& path, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    error = fmt::format("{} {}: cannot read: {}", what, path, std::strerror(errno));
    return false;
  }
  std::fclose(f);
  return true;
}

SSL_CTX* newServerCtx(std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    error = opensslError("cannot create the TLS server context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

// Adds one X509v3 extension ("subjectAltName", "DNS:localhost,IP:127.0.0.1") to `cert`.
bool addExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
  if (ext == nullptr) {
    return false;
  }
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// The self-signed certificate of createSelfSignedServer(), signed by `key`.
X509* makeSelfSigned(EVP_PKEY* key) {
  X509* cert = X509_new();
  if (cert == nullptr) {
    return nullptr;
  }
  unsigned char serial[16];
  bool ok = RAND_bytes(serial, sizeof serial) == 1;
  serial[0] &= 0x7f;  // a positive serial number
  BIGNUM* bn = ok ? BN_bin2bn(serial, sizeof serial, nullptr) : nullptr;
  ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  ok = ok && X509_set_version(cert, 2) == 1;  // v3
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != nullptr;
  ok = ok && X509_gmtime_adj(X509_getm_notAfter(cert), 24L * 3600) != nullptr;
  X509_NAME* name = X509_get_subject_name(cert);
  ok = ok && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                        reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                        0) == 1;
  ok = ok && X509_set_issuer_name(cert, name) == 1;
  ok = ok && X509_set_pubkey(cert, key) == 1;
  ok = ok && addExtension(cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  ok = ok && addExtension(cert, NID_basic_constraints, "critical,CA:FALSE");
  ok = ok && X509_sign(cert, key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(cert);
    return nullptr;
  }
  return cert;
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

std::shared_ptr<TlsContext> TlsContext::createServer(const std::string& certFile,
                                                     const std::string& keyFile,
                                                     std::string& error) {
  if (!checkReadable("TLS certificate file", certFile, error) ||
      !checkReadable("TLS key file", keyFile, error)) {
    return nullptr;
  }
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = newServerCtx(error);
  if (impl->ctx == nullptr) {
    return nullptr;
  }
  if (SSL_CTX_use_certificate_chain_file(impl->ctx, certFile.c_str()) != 1) {
    error = opensslError(
        fmt::format("TLS certificate file {}: not a PEM certificate", certFile).c_str());
    return nullptr;
  }
  const std::string mismatch =
      fmt::format("TLS key file {} does not match the certificate in {}", keyFile, certFile);
  if (SSL_CTX_use_PrivateKey_file(impl->ctx, keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    const unsigned long code = ERR_peek_last_error();
    if (ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      error = mismatch;
    } else {
      error = opensslError(fmt::format("TLS key file {}: not a PEM private key", keyFile).c_str());
    }
    return nullptr;
  }
  if (SSL_CTX_check_private_key(impl->ctx) != 1) {
    ERR_clear_error();
    error = mismatch;
    return nullptr;
  }
  return std::make_shared<TlsContext>(impl.release());
}

std::shared_ptr<TlsContext> TlsContext::createSelfSignedServer(std::string& error) {
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = newServerCtx(error);
  if (impl->ctx == nullptr) {
    return nullptr;
  }
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) {
    error = opensslError("cannot generate the self-signed certificate's key");
    return nullptr;
  }
  X509* cert = makeSelfSigned(key);
  bool ok = cert != nullptr;
  if (!ok) {
    error = opensslError("cannot make the self-signed certificate");
  }
  // The context takes its own references to both.
  if (ok && (SSL_CTX_use_certificate(impl->ctx, cert) != 1 ||
             SSL_CTX_use_PrivateKey(impl->ctx, key) != 1)) {
    error = opensslError("cannot install the self-signed certificate");
    ok = false;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) {
    return nullptr;
  }
  return std::make_shared<TlsContext>(impl.release());
}

struct TlsStream::Impl {
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

TlsStream::TlsStream(TlsContext& context, bool server)
    : impl_(std::make_unique<Impl>()), server_(server) {
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
  if (server) {
    SSL_set_accept_state(impl_->ssl);
  } else {
    SSL_set_connect_state(impl_->ssl);
  }
}

TlsStream::~TlsStream() = default;

bool TlsStream::ready() const {
  return impl_->network != nullptr;
}

ssl_st* TlsStream::ssl() const {
  return impl_->ssl;
}

TlsClient::TlsClient(TlsContext& context, const std::string& serverName, bool verify)
    : TlsStream(context, false) {
  verify_ = verify;
  peerName_ = serverName;
  if (!ready()) {
    return;
  }
  SSL* s = ssl();
  const bool ip = isIpLiteral(serverName);
  if (!serverName.empty() && !ip) {
    SSL_set_tlsext_host_name(s, serverName.c_str());
  }
  if (verify) {
    SSL_set_verify(s, SSL_VERIFY_PEER, nullptr);
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, serverName.c_str());
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(s, serverName.c_str());
    }
  } else {
    SSL_set_verify(s, SSL_VERIFY_NONE, nullptr);
  }
}

TlsServer::TlsServer(TlsContext& context) : TlsStream(context, true) {}

TlsStream::Result TlsStream::fail(std::string message) {
  error_ = std::move(message);
  return Result::Failed;
}

void TlsStream::drainOutput(std::string& toSend) {
  char buf[16 * 1024];
  for (;;) {
    const int n = BIO_read(impl_->network, buf, sizeof buf);
    if (n <= 0) {
      return;
    }
    toSend.append(buf, static_cast<std::size_t>(n));
  }
}

TlsStream::Result TlsStream::handshake(std::string& toSend) {
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
    return fail(fmt::format("certificate verification failed for {}: {}", peerName_,
                            X509_verify_cert_error_string(verifyResult)));
  }
  if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return fail(server_ ? "the client ended the TLS handshake"
                        : "the server ended the TLS handshake");
  }
  return fail(opensslError("TLS handshake"));
}

TlsClient::Result TlsClient::start(std::string& toSend) {
  if (!ready()) {
    return Result::Failed;  // the constructor failed; error() says why
  }
  return handshake(toSend);
}

TlsStream::Result TlsStream::readPlain(std::string& plain, std::string& toSend) {
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

TlsStream::Result TlsStream::feed(std::string_view cipher, std::string& plain,
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

TlsStream::Result TlsStream::write(std::string_view plain, std::string& toSend) {
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

std::string TlsStream::description() const {
  if (!established_) {
    return {};
  }
  return fmt::format("{} {}", SSL_get_version(impl_->ssl), SSL_get_cipher_name(impl_->ssl));
}

}  // namespace salvo::net
