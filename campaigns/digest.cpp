#include "campaigns/digest.h"

#include <openssl/evp.h>

namespace salvo::campaigns {

bool sha256(std::string_view data, unsigned char* digest) {
  struct Hasher {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Hasher() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Hasher hasher;
  unsigned int length = 0;
  return hasher.md != nullptr && hasher.ctx != nullptr &&
         EVP_DigestInit_ex(hasher.ctx, hasher.md, nullptr) == 1 &&
         EVP_DigestUpdate(hasher.ctx, data.data(), data.size()) == 1 &&
         EVP_DigestFinal_ex(hasher.ctx, digest, &length) == 1 && length == kSha256Bytes;
}

}  // namespace salvo::campaigns
