// DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463), relaxed/relaxed.
// Contract: the only code in Salvo that touches a private key. A DkimSigner loads its key
// once, from a file only, and refuses a file readable by group or others; sign() is
// const and thread-safe (one EVP context per call), takes the message's header block and
// body exactly as they go on the wire (CRLF lines) and returns the DKIM-Signature field
// to prepend. Signed headers are oversigned: each name is listed once more than it
// occurs, so no copy can be added in transit without breaking the signature.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace salvo::campaigns {

enum class DkimAlgorithm { RsaSha256, Ed25519Sha256 };

// "rsa-sha256" / "ed25519-sha256"; false for anything else.
bool parseDkimAlgorithm(std::string_view text, DkimAlgorithm& out);
std::string_view dkimAlgorithmName(DkimAlgorithm algorithm);

struct DkimSettings {
  std::string domain;    // d=
  std::string selector;  // s=
  std::string keyFile;   // PEM private key (PKCS#8 or traditional RSA)
  DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256;
};

// The header names signed, in h= order (lower case).
const std::vector<std::string_view>& dkimSignedHeaders();

// Relaxed body canonicalization (RFC 6376 section 3.4.4) of a CRLF body, appended to `out`.
void dkimRelaxedBody(std::string_view body, std::string& out);
// The same result without a copy where it can: `body` itself, less its trailing empty
// lines, when canonicalization changes nothing else (no tab, no run of spaces, no space at
// a line's end, a final CRLF: a rendered body, as a rule); else dkimRelaxedBody's output,
// built in `scratch` (cleared first).
std::string_view dkimRelaxedBodyView(std::string_view body, std::string& scratch);
// Relaxed header canonicalization (section 3.4.2) of one field "Name: value" (folded
// lines allowed, no final CRLF), appended to `out` without a final CRLF.
void dkimRelaxedHeader(std::string_view field, std::string& out);

class DkimSigner {
 public:
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // Loads and checks the key. nullptr and `error` (naming the file) when the file is
  // missing, readable by group or others, not a private key, or of the wrong type for
  // the algorithm (RSA keys need at least 1024 bits).
  static std::unique_ptr<DkimSigner> load(DkimSettings settings, std::string& error);

  const DkimSettings& settings() const { return settings_; }

  // Appends "DKIM-Signature: ..." CRLF for the message whose header block is `headers`
  // (fields each ending in CRLF, without the blank line) and whose body is `body`.
  // `nowMs` gives t=. false and `error` only when OpenSSL fails.
  bool sign(std::string_view headers, std::string_view body, std::int64_t nowMs, std::string& out,
            std::string& error) const;

 private:
  DkimSigner() = default;
  DkimSettings settings_;
  struct Key;
  std::unique_ptr<Key> key_;
};

}  // namespace salvo::campaigns
