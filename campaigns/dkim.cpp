#include "campaigns/dkim.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "campaigns/digest.h"
#include "campaigns/header_encoding.h"
#include "campaigns/text.h"

namespace salvo::campaigns {

struct DkimSigner::Key {
  EVP_PKEY* pkey = nullptr;
  // A context initialized for signing once; each signature works on a copy, which skips
  // the per-call algorithm fetch and key import of EVP_DigestSignInit. Only read after load.
  EVP_MD_CTX* prepared = nullptr;
  ~Key() {
    EVP_MD_CTX_free(prepared);
    EVP_PKEY_free(pkey);
  }
};

namespace {

bool isWsp(char c) {
  return c == ' ' || c == '\t';
}

// One header field of a header block: its name and the whole field (no final CRLF).
struct Field {
  std::string_view name;
  std::string_view text;
};

std::vector<Field> splitFields(std::string_view headers) {
  std::vector<Field> fields;
  std::size_t pos = 0;
  while (pos < headers.size()) {
    std::size_t end = pos;
    // A field runs until a CRLF that is not followed by white space (a fold).
    while (true) {
      end = headers.find("\r\n", end);
      if (end == std::string_view::npos) {
        end = headers.size();
        break;
      }
      if (end + 2 < headers.size() && isWsp(headers[end + 2])) {
        end += 2;
        continue;
      }
      break;
    }
    const std::string_view text = headers.substr(pos, end - pos);
    const std::size_t colon = text.find(':');
    fields.push_back(Field{trimBlanks(text.substr(0, colon)), text});
    pos = end + 2;
  }
  return fields;
}

}  // namespace

bool parseDkimAlgorithm(std::string_view text, DkimAlgorithm& out) {
  if (text == "rsa-sha256") {
    out = DkimAlgorithm::RsaSha256;
    return true;
  }
  if (text == "ed25519-sha256") {
    out = DkimAlgorithm::Ed25519Sha256;
    return true;
  }
  return false;
}

std::string_view dkimAlgorithmName(DkimAlgorithm algorithm) {
  return algorithm == DkimAlgorithm::RsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

const std::vector<std::string_view>& dkimSignedHeaders() {
  static const std::vector<std::string_view> kNames = {
      "from",       "to",           "subject",          "date",
      "message-id", "mime-version", "list-unsubscribe", "list-unsubscribe-post"};
  return kNames;
}

void dkimRelaxedBody(std::string_view body, std::string& out) {
  const std::size_t start = out.size();
  std::size_t pos = 0;
  std::size_t lastContent = start;  // out's size after the last non-empty line
  while (pos < body.size()) {
    std::size_t end = body.find("\r\n", pos);
    const bool hasEnd = end != std::string_view::npos;
    if (!hasEnd) {
      end = body.size();
    }
    const std::string_view line = body.substr(pos, end - pos);
    // Most lines need no change: no tab, no double space, no space at either end.
    bool clean = !line.empty() && line.front() != ' ' && line.back() != ' ';
    for (std::size_t i = 1; clean && i < line.size(); ++i) {
      clean = line[i] != '\t' && (line[i] != ' ' || line[i - 1] != ' ');
    }
    if (clean) {
      out += line;
      out += "\r\n";
      lastContent = out.size();
      pos = hasEnd ? end + 2 : body.size();
      continue;
    }
    bool space = false;
    bool content = false;
    for (char c : line) {
      if (isWsp(c)) {
        space = true;
        continue;
      }
      if (space) {
        out += ' ';
        space = false;
      }
      out += c;
      content = true;
    }
    // Trailing white space is dropped (a pending space is simply not written). A line of
    // white space alone reduces to an empty line.
    out += "\r\n";
    if (content) {
      lastContent = out.size();
    }
    pos = hasEnd ? end + 2 : body.size();
  }
  // Empty lines at the end of the body are ignored.
  out.resize(lastContent);
}

std::string_view dkimRelaxedBodyView(std::string_view body, std::string& scratch) {
  // One pass the compiler can vectorize: a tab, or a space before a space or a CR, anywhere.
  unsigned changes = body.empty() || body.ends_with("\r\n") ? 0 : 1;
  for (std::size_t i = 1; i < body.size(); ++i) {
    const char before = body[i - 1];
    const char c = body[i];
    changes |=
        static_cast<unsigned>(before == '\t') |
        (static_cast<unsigned>(before == ' ') & static_cast<unsigned>(c == ' ' || c == '\r'));
  }
  if (changes != 0) {
    scratch.clear();
    dkimRelaxedBody(body, scratch);
    return scratch;
  }
  while (body.ends_with("\r\n\r\n")) {
    body.remove_suffix(2);
  }
  return body == "\r\n" ? std::string_view() : body;
}

void dkimRelaxedHeader(std::string_view field, std::string& out) {
  const std::size_t colon = field.find(':');
  for (char c : trimBlanks(field.substr(0, colon))) {
    out += asciiLower(c);
  }
  out += ':';
  if (colon == std::string_view::npos) {
    return;
  }
  bool space = false;
  bool started = false;
  for (char c : field.substr(colon + 1)) {
    if (c == '\r' || c == '\n') {
      continue;  // unfold
    }
    if (isWsp(c)) {
      space = true;
      continue;
    }
    if (space && started) {
      out += ' ';
    }
    space = false;
    started = true;
    out += c;
  }
}

DkimSigner::~DkimSigner() = default;

std::unique_ptr<DkimSigner> DkimSigner::load(DkimSettings settings, std::string& error) {
  const std::string& path = settings.keyFile;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = fmt::format("cannot read DKIM key file '{}': {}", path, std::strerror(errno));
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = fmt::format("DKIM key file '{}' is not a regular file", path);
    return nullptr;
  }
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    error = fmt::format(
        "DKIM key file '{}' is readable by group or others (mode {:04o}): run chmod 600 on it",
        path, st.st_mode & 07777);
    return nullptr;
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    error = fmt::format("cannot read DKIM key file '{}': {}", path, std::strerror(errno));
    return nullptr;
  }
  auto key = std::make_unique<Key>();
  key->pkey = PEM_read_PrivateKey(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (key->pkey == nullptr) {
    error = fmt::format("DKIM key file '{}' does not hold a PEM private key (without a passphrase)",
                        path);
    return nullptr;
  }
  const bool isRsa = EVP_PKEY_is_a(key->pkey, "RSA") == 1;
  const bool isEd25519 = EVP_PKEY_is_a(key->pkey, "ED25519") == 1;
  if (settings.algorithm == DkimAlgorithm::RsaSha256 && !isRsa) {
    error = fmt::format("DKIM key file '{}' does not hold an RSA key, as rsa-sha256 needs", path);
    return nullptr;
  }
  if (settings.algorithm == DkimAlgorithm::Ed25519Sha256 && !isEd25519) {
    error = fmt::format("DKIM key file '{}' does not hold an Ed25519 key, as ed25519-sha256 needs",
                        path);
    return nullptr;
  }
  if (isRsa && EVP_PKEY_get_bits(key->pkey) < 1024) {
    error = fmt::format(
        "DKIM key file '{}' holds a {}-bit RSA key; use at least 1024 (2048 is "
        "recommended)",
        path, EVP_PKEY_get_bits(key->pkey));
    return nullptr;
  }
  key->prepared = EVP_MD_CTX_new();
  const EVP_MD* md = settings.algorithm == DkimAlgorithm::RsaSha256 ? EVP_sha256() : nullptr;
  if (key->prepared == nullptr ||
      EVP_DigestSignInit(key->prepared, nullptr, md, nullptr, key->pkey) != 1) {
    error = fmt::format("DKIM key file '{}': OpenSSL cannot sign with this key", path);
    return nullptr;
  }
  std::unique_ptr<DkimSigner> signer(new DkimSigner());
  signer->settings_ = std::move(settings);
  signer->key_ = std::move(key);
  // One signature now: it proves the key works and lets OpenSSL fill its lazily built
  // per-key caches before several delivery threads share the key.
  std::string probe;
  if (!signer->sign("From: a@b\r\n", "", 0, probe, error)) {
    error = fmt::format("DKIM key file '{}': {}", path, error);
    return nullptr;
  }
  return signer;
}

bool DkimSigner::sign(std::string_view headers, std::string_view body, std::int64_t nowMs,
                      std::string& out, std::string& error) const {
  thread_local std::string canonical;
  unsigned char bodyHash[kSha256Bytes];
  if (!sha256(dkimRelaxedBodyView(body, canonical), bodyHash)) {
    error = "SHA-256 failed";
    return false;
  }

  const std::vector<Field> fields = splitFields(headers);
  // h=: every name once more than it occurs (oversigning).
  std::string field = "DKIM-Signature: v=1; a=";
  field += dkimAlgorithmName(settings_.algorithm);
  fmt::format_to(std::back_inserter(field),
                 "; c=relaxed/relaxed;\r\n\td={}; s={}; t={};\r\n\th=", settings_.domain,
                 settings_.selector, nowMs / 1000);
  std::size_t column = 8 + 2;
  std::vector<std::string_view> listed;
  bool first = true;
  for (std::string_view name : dkimSignedHeaders()) {
    std::size_t count = 1;
    for (const Field& f : fields) {
      count += equalsIgnoreCase(f.name, name) ? 1 : 0;
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (!first) {
        field += ':';
        ++column;
      }
      if (column + name.size() > 72) {
        field += "\r\n\t";
        column = 8;
      }
      field += name;
      column += name.size();
      first = false;
      listed.push_back(name);
    }
  }
  field += ";\r\n\tbh=";
  appendBase64(field, std::string_view(reinterpret_cast<const char*>(bodyHash), kSha256Bytes));
  field += ";\r\n\tb=";

  // The signed data: the listed fields, each taken from the bottom up, then this field
  // with an empty b= and no final CRLF.
  canonical.clear();
  std::vector<char> used(fields.size(), 0);
  for (std::string_view name : listed) {
    for (std::size_t i = fields.size(); i-- > 0;) {
      if (!used[i] && equalsIgnoreCase(fields[i].name, name)) {
        used[i] = 1;
        dkimRelaxedHeader(fields[i].text, canonical);
        canonical += "\r\n";
        break;
      }
    }
  }
  dkimRelaxedHeader(field, canonical);

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) {
    error = "cannot allocate a signing context";
    return false;
  }
  unsigned char signature[1024];
  std::size_t length = sizeof(signature);
  bool ok = EVP_PKEY_get_size(key_->pkey) <= static_cast<int>(sizeof(signature)) &&
            EVP_MD_CTX_copy_ex(ctx, key_->prepared) == 1;
  if (settings_.algorithm == DkimAlgorithm::RsaSha256) {
    ok = ok && EVP_DigestSign(ctx, signature, &length,
                              reinterpret_cast<const unsigned char*>(canonical.data()),
                              canonical.size()) == 1;
  } else {
    // RFC 8463: PureEdDSA over the SHA-256 hash of the data.
    unsigned char digest[kSha256Bytes];
    ok = ok && sha256(canonical, digest) &&
         EVP_DigestSign(ctx, signature, &length, digest, kSha256Bytes) == 1;
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    error = "OpenSSL could not sign the message";
    return false;
  }
  thread_local std::string encoded;
  encoded.clear();
  appendBase64(encoded, std::string_view(reinterpret_cast<const char*>(signature), length));
  // Folded in 72-character pieces; verifiers drop the white space inside b=.
  for (std::size_t i = 0; i < encoded.size(); i += 72) {
    if (i != 0) {
      field += "\r\n\t ";
    }
    field.append(encoded, i, 72);
  }
  out += field;
  out += "\r\n";
  return true;
}

}  // namespace salvo::campaigns
