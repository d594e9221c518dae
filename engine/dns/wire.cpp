#include "engine/dns/wire.h"

#include <algorithm>

namespace salvo::dns {

namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::uint16_t kTypeSoa = 6;

// A cursor over the response; every read checks the bounds first.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t len) : data_(data), len_(len) {}

  bool u16(std::uint16_t& v) {
    if (len_ - pos_ < 2) {
      return false;
    }
    v = static_cast<std::uint16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }

  bool u32(std::uint32_t& v) {
    if (len_ - pos_ < 4) {
      return false;
    }
    v = (std::uint32_t{data_[pos_]} << 24) | (std::uint32_t{data_[pos_ + 1]} << 16) |
        (std::uint32_t{data_[pos_ + 2]} << 8) | std::uint32_t{data_[pos_ + 3]};
    pos_ += 4;
    return true;
  }

  bool skip(std::size_t n) {
    if (len_ - pos_ < n) {
      return false;
    }
    pos_ += n;
    return true;
  }

  // Skips an encoded name: labels up to the root label, or up to a compression pointer
  // (which ends the name in place; its target is not needed to skip it).
  bool skipName() {
    for (;;) {
      if (pos_ >= len_) {
        return false;
      }
      std::uint8_t b = data_[pos_];
      if (b == 0) {
        pos_ += 1;
        return true;
      }
      if ((b & 0xC0) == 0xC0) {
        return skip(2);
      }
      if ((b & 0xC0) != 0) {
        return false;  // the reserved 0x40 and 0x80 label types
      }
      if (!skip(1 + std::size_t{b})) {
        return false;
      }
    }
  }

  std::size_t pos() const { return pos_; }

 private:
  const std::uint8_t* data_;
  std::size_t len_;
  std::size_t pos_ = 0;
};

std::uint32_t clampTtl(std::uint32_t ttl) {
  return (ttl & 0x80000000u) != 0 ? 0 : ttl;
}

void takeMin(std::optional<std::uint32_t>& current, std::uint32_t value) {
  current = current ? std::min(*current, value) : value;
}

}  // namespace

std::optional<ResponseTtls> readResponseTtls(const std::uint8_t* data, std::size_t len) {
  if (data == nullptr || len < kHeaderSize) {
    return std::nullopt;
  }
  Reader r(data, len);
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;
  if (!r.u16(id) || !r.u16(flags) || !r.u16(qdcount) || !r.u16(ancount) || !r.u16(nscount) ||
      !r.u16(arcount)) {
    return std::nullopt;
  }
  ResponseTtls out;
  out.rcode = flags & 0x000F;
  out.answerCount = ancount;
  for (std::uint16_t i = 0; i < qdcount; ++i) {
    if (!r.skipName() || !r.skip(4)) {
      return std::nullopt;
    }
  }
  for (std::uint32_t i = 0; i < std::uint32_t{ancount} + nscount; ++i) {
    std::uint16_t type = 0;
    std::uint16_t klass = 0;
    std::uint32_t ttl = 0;
    std::uint16_t rdlength = 0;
    if (!r.skipName() || !r.u16(type) || !r.u16(klass) || !r.u32(ttl) || !r.u16(rdlength)) {
      return std::nullopt;
    }
    ttl = clampTtl(ttl);
    std::size_t rdataEnd = r.pos() + rdlength;
    if (i < ancount) {
      takeMin(out.answerTtl, ttl);
    } else if (type == kTypeSoa) {
      // SOA RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
      Reader soa = r;
      std::uint32_t minimum = 0;
      if (!soa.skipName() || !soa.skipName() || !soa.skip(16) || !soa.u32(minimum) ||
          soa.pos() > rdataEnd) {
        return std::nullopt;
      }
      takeMin(out.negativeTtl, std::min(ttl, clampTtl(minimum)));
    }
    if (!r.skip(rdlength)) {
      return std::nullopt;
    }
  }
  // The additional section (EDNS OPT and glue) carries nothing we use.
  return out;
}

}  // namespace salvo::dns
