#include "campaigns/dkim.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <iterator>
#include <random>

#include <cstdio>
#include <iterator>
#include <random>

#include "tests/campaigns/test_files.h"

namespace salvo::campaigns {
namespace {

using testing::TempDir;

// Writes a fresh private key of `type` ("RSA" with `bits`, or "ED25519") with `mode`.
std::string writeKey(const TempDir& dir, const std::string& name, const char* type,
                     std::size_t bits, mode_t mode) {
  EVP_PKEY* key = std::string_view(type) == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)
                                                  : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  EXPECT_NE(key, nullptr);
  const std::string path = dir.file(name);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  std::fclose(f);
  EVP_PKEY_free(key);
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(DkimTest, RelaxedCanonicalizationMatchesRfc6376Example) {
  // RFC 6376 section 3.4.5.
  std::string headers;
  dkimRelaxedHeader("A: X", headers);
  headers += "\r\n";
  dkimRelaxedHeader("B : Y\t\r\n\tZ  ", headers);
  EXPECT_EQ(headers, "a:X\r\nb:Y Z");
  std::string body;
  dkimRelaxedBody(" C \r\nD \t E\r\n\r\n\r\n", body);
  EXPECT_EQ(body, " C\r\nD E\r\n");
  body.clear();
  dkimRelaxedBody("\r\n \r\n", body);
  EXPECT_EQ(body, "");
  body.clear();
  dkimRelaxedBody("x", body);
  EXPECT_EQ(body, "x\r\n");
}

TEST(DkimTest, RelaxedBodyViewAgreesWithTheCanonicalizationAndSkipsTheCopyOfCleanBodies) {
  // Every body of up to 7 octets over the octets that matter, and longer random ones: the
  // view must equal dkimRelaxedBody's output exactly.
  const char alphabet[] = {'a', ' ', '\t', '\r', '\n'};
  std::string scratch;
  std::string expected;
  auto check = [&](const std::string& body) {
    expected.clear();
    dkimRelaxedBody(body, expected);
    ASSERT_EQ(dkimRelaxedBodyView(body, scratch), expected) << "body: " << body;
  };
  for (std::size_t length = 0; length <= 7; ++length) {
    std::size_t combinations = 1;
    for (std::size_t i = 0; i < length; ++i) {
      combinations *= std::size(alphabet);
    }
    for (std::size_t n = 0; n < combinations; ++n) {
      std::string body;
      for (std::size_t i = 0, rest = n; i < length; ++i, rest /= std::size(alphabet)) {
        body += alphabet[rest % std::size(alphabet)];
      }
      check(body);
    }
  }
  std::mt19937 random(7);
  for (int round = 0; round < 20000; ++round) {
    std::string body;
    const std::size_t length = random() % 200;
    for (std::size_t i = 0; i < length; ++i) {
      // Mostly CRLF-ended lines of words, as rendered bodies are.
      const unsigned pick = random() % 20;
      body += pick < 2 ? std::string("\r\n") : std::string(1, alphabet[pick % std::size(alphabet)]);
    }
    check(body);
  }
  // A clean body is its own canonical form, less the empty lines at its end: no copy.
  const std::string clean = "Hello Ann,\r\n\r\n two words\r\n\r\n\r\n";
  const std::string_view view = dkimRelaxedBodyView(clean, scratch);
  EXPECT_EQ(view, "Hello Ann,\r\n\r\n two words\r\n");
  EXPECT_EQ(view.data(), clean.data());
  const std::string spaced = "Hello  Ann \r\n";
  EXPECT_EQ(dkimRelaxedBodyView(spaced, scratch), "Hello Ann\r\n");
  EXPECT_EQ(dkimRelaxedBodyView(spaced, scratch).data(), scratch.data());
}

TEST(DkimTest, KeyFilesAreCheckedWithExactMessages) {
  TempDir dir;
  std::string error;
  const std::string open = writeKey(dir, "open.pem", "ED25519", 0, 0644);
  EXPECT_EQ(DkimSigner::load({"example.com", "s1", open, DkimAlgorithm::Ed25519Sha256}, error),
            nullptr);
  EXPECT_EQ(error, "DKIM key file '" + open +
                       "' is readable by group or others (mode 0644): run chmod 600 on it");

  const std::string ed = writeKey(dir, "ed.pem", "ED25519", 0, 0600);
  EXPECT_EQ(DkimSigner::load({"example.com", "s1", ed, DkimAlgorithm::RsaSha256}, error), nullptr);
  EXPECT_EQ(error, "DKIM key file '" + ed + "' does not hold an RSA key, as rsa-sha256 needs");

  const std::string small = writeKey(dir, "small.pem", "RSA", 512, 0400);
  EXPECT_EQ(DkimSigner::load({"example.com", "s1", small, DkimAlgorithm::RsaSha256}, error),
            nullptr);
  EXPECT_EQ(error, "DKIM key file '" + small +
                       "' holds a 512-bit RSA key; use at least 1024 (2048 is recommended)");

  const std::string junk = dir.write("junk.pem", "not a key\n");
  ::chmod(junk.c_str(), 0600);
  EXPECT_EQ(DkimSigner::load({"example.com", "s1", junk, DkimAlgorithm::RsaSha256}, error),
            nullptr);
  EXPECT_EQ(error,
            "DKIM key file '" + junk + "' does not hold a PEM private key (without a passphrase)");

  EXPECT_EQ(DkimSigner::load({"example.com", "s1", dir.file("none.pem"), DkimAlgorithm::RsaSha256},
                             error),
            nullptr);
  EXPECT_EQ(error,
            "cannot read DKIM key file '" + dir.file("none.pem") + "': No such file or directory");
}

// Verifies a signature with the public half of the key, from the field as written.
TEST(DkimTest, SignatureFieldIsWellFormedAndOversignsHeaders) {
  TempDir dir;
  const std::string path = writeKey(dir, "ed.pem", "ED25519", 0, 0600);
  std::string error;
  auto signer =
      DkimSigner::load({"example.com", "mail", path, DkimAlgorithm::Ed25519Sha256}, error);
  ASSERT_NE(signer, nullptr) << error;
  std::string out = "kept|";
  ASSERT_TRUE(signer->sign("From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n",
                           "body\r\n", 1795871091000, out, error));
  EXPECT_EQ(out.rfind("kept|DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                      "\td=example.com; s=mail; t=1795871091;\r\n"
                      "\th=from:from:to:to:subject:subject:date:message-id:mime-version:\r\n"
                      "\tlist-unsubscribe:list-unsubscribe-post;\r\n\tbh=",
                      0),
            0u)
      << out;
  EXPECT_EQ(out.substr(out.size() - 2), "\r\n");
  for (std::size_t start = 5, end; (end = out.find("\r\n", start)) != std::string::npos;
       start = end + 2) {
    EXPECT_LE(end - start, 78u);
  }
}

}  // namespace
}  // namespace salvo::campaigns
