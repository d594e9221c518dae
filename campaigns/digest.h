// SHA-256 for the per-message paths inside campaigns/ (Message-ID seeds, DKIM body and
// header hashes). Contract: thread-safe; each thread keeps one digest context and the
// algorithm fetched once, because the one-shot EVP_Digest()/SHA256() look the algorithm up
// on every call (through OpenSSL's shared provider store, which costs more than hashing a
// 4 KiB message and serializes threads). false only when OpenSSL has no SHA-256.
#pragma once

#include <cstddef>
#include <string_view>

namespace salvo::campaigns {

constexpr std::size_t kSha256Bytes = 32;

bool sha256(std::string_view data, unsigned char* digest);

}  // namespace salvo::campaigns
