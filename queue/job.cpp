#include "queue/job.h"

#include <fmt/format.h>

namespace salvo::queue {

namespace {

// Record layouts (version 1). Integers are LEB128 varints, signed ones zigzag-encoded;
// strings are a varint length followed by the bytes. A record must be consumed exactly:
// trailing bytes are rejected like missing ones.
//   JobRecord:      u8 version | u8 state | attempts | createdMs | dueMs | recipient
//                   | value count | values... | lastReply
//   CampaignRecord: u8 version | number | name | u8 state | createdMs | jobs | spec
constexpr std::uint8_t kJobVersion = 1;
constexpr std::uint8_t kCampaignVersion = 1;

void putVarint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void putSigned(std::string& out, std::int64_t v) {
  auto u = static_cast<std::uint64_t>(v);
  putVarint(out, (u << 1) ^ (v < 0 ? ~std::uint64_t{0} : 0));
}

void putBytes(std::string& out, std::string_view s) {
  putVarint(out, s.size());
  out.append(s);
}

// Bounds-checked reader over a byte string; every read reports failure instead of
// reading past the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool byte(std::uint8_t& v) {
    if (pos_ >= in_.size()) {
      return false;
    }
    v = static_cast<std::uint8_t>(in_[pos_++]);
    return true;
  }

  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::uint8_t b = 0;
      if (!byte(b)) {
        return false;
      }
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && b > 1) {
        return false;
      }
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        return true;
      }
    }
    return false;
  }

  bool u32(std::uint32_t& v) {
    std::uint64_t x = 0;
    if (!varint(x) || x > UINT32_MAX) {
      return false;
    }
    v = static_cast<std::uint32_t>(x);
    return true;
  }

  bool i64(std::int64_t& v) {
    std::uint64_t x = 0;
    if (!varint(x)) {
      return false;
    }
    v = static_cast<std::int64_t>((x >> 1) ^ (~(x & 1) + 1));
    return true;
  }

  bool bytes(std::string& out) {
    std::uint64_t len = 0;
    if (!varint(len) || len > remaining()) {
      return false;
    }
    out.assign(in_.data() + pos_, static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len);
    return true;
  }

  std::size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string JobId::str() const {
  return fmt::format("c{}-{}", campaign, seq);
}

const char* jobStateName(JobState s) {
  switch (s) {
    case JobState::Queued:
      return "queued";
    case JobState::Deferred:
      return "deferred";
    case JobState::Delivered:
      return "delivered";
    case JobState::Bounced:
      return "bounced";
    case JobState::Expired:
      return "expired";
    case JobState::Cancelled:
      return "cancelled";
    case JobState::Suppressed:
      return "suppressed";
  }
  return "unknown";
}

const char* campaignStateName(CampaignState s) {
  switch (s) {
    case CampaignState::Loading:
      return "loading";
    case CampaignState::Active:
      return "active";
    case CampaignState::Paused:
      return "paused";
    case CampaignState::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

void JobRecord::encodeTo(std::string& out) const {
  encodeWith(out, state, createdMs, dueMs);
}

void JobRecord::encodeWith(std::string& out, JobState stateField, std::int64_t created,
                           std::int64_t due) const {
  out.push_back(static_cast<char>(kJobVersion));
  out.push_back(static_cast<char>(stateField));
  putVarint(out, attempts);
  putSigned(out, created);
  putSigned(out, due);
  putBytes(out, recipient);
  putVarint(out, values.size());
  for (const auto& v : values) {
    putBytes(out, v);
  }
  putBytes(out, lastReply);
}

std::string JobRecord::encode() const {
  std::string out;
  encodeTo(out);
  return out;
}

bool JobRecord::decode(std::string_view bytes, JobRecord& out) {
  Reader r(bytes);
  std::uint8_t version = 0;
  std::uint8_t state = 0;
  if (!r.byte(version) || version != kJobVersion || !r.byte(state) ||
      state > static_cast<std::uint8_t>(JobState::Suppressed)) {
    return false;
  }
  out.state = static_cast<JobState>(state);
  std::uint64_t count = 0;
  if (!r.u32(out.attempts) || !r.i64(out.createdMs) || !r.i64(out.dueMs) ||
      !r.bytes(out.recipient) || !r.varint(count) || count > r.remaining()) {
    // Each value takes at least one byte, so a count above the bytes left is garbage
    // (and must not drive a huge resize).
    return false;
  }
  out.values.resize(static_cast<std::size_t>(count));
  for (auto& v : out.values) {
    if (!r.bytes(v)) {
      return false;
    }
  }
  return r.bytes(out.lastReply) && r.done();
}

std::optional<JobRecord> JobRecord::decode(std::string_view bytes) {
  JobRecord record;
  if (!decode(bytes, record)) {
    return std::nullopt;
  }
  return record;
}

void CampaignRecord::encodeTo(std::string& out) const {
  out.push_back(static_cast<char>(kCampaignVersion));
  putVarint(out, number);
  putBytes(out, name);
  out.push_back(static_cast<char>(state));
  putSigned(out, createdMs);
  putVarint(out, jobs);
  putBytes(out, spec);
}

std::string CampaignRecord::encode() const {
  std::string out;
  encodeTo(out);
  return out;
}

std::optional<CampaignRecord> CampaignRecord::decode(std::string_view bytes) {
  Reader r(bytes);
  CampaignRecord c;
  std::uint8_t version = 0;
  std::uint8_t state = 0;
  if (!r.byte(version) || version != kCampaignVersion || !r.u32(c.number) || !r.bytes(c.name) ||
      !r.byte(state) || state > static_cast<std::uint8_t>(CampaignState::Cancelled) ||
      !r.i64(c.createdMs) || !r.varint(c.jobs) || !r.bytes(c.spec) || !r.done()) {
    return std::nullopt;
  }
  c.state = static_cast<CampaignState>(state);
  return c;
}

}  // namespace salvo::queue
