#include "queue/keys.h"

namespace salvo::queue::keys {

namespace {

constexpr std::uint64_t kSignBit = std::uint64_t{1} << 63;

}  // namespace

void putU32(char* out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void putU64(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

std::uint32_t getU32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v = (v << 8) | static_cast<unsigned char>(in[i]);
  }
  return v;
}

std::uint64_t getU64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v = (v << 8) | static_cast<unsigned char>(in[i]);
  }
  return v;
}

void putTime(char* out, std::int64_t ms) {
  putU64(out, static_cast<std::uint64_t>(ms) ^ kSignBit);
}

std::int64_t getTime(const char* in) {
  return static_cast<std::int64_t>(getU64(in) ^ kSignBit);
}

CampaignKey campaignKey(std::uint32_t campaign) {
  CampaignKey k;
  putU32(k.bytes.data(), campaign);
  return k;
}

std::optional<std::uint32_t> decodeCampaignKey(std::string_view key) {
  if (key.size() != kCampaignKeySize) {
    return std::nullopt;
  }
  return getU32(key.data());
}

JobKey jobKey(const JobId& id) {
  JobKey k;
  putU32(k.bytes.data(), id.campaign);
  putU64(k.bytes.data() + 4, id.seq);
  return k;
}

std::optional<JobId> decodeJobKey(std::string_view key) {
  if (key.size() != kJobKeySize) {
    return std::nullopt;
  }
  return JobId{getU32(key.data()), getU64(key.data() + 4)};
}

DueKey dueKey(std::int64_t dueMs, const JobId& id) {
  DueKey k;
  putTime(k.bytes.data(), dueMs);
  putU32(k.bytes.data() + 8, id.campaign);
  putU64(k.bytes.data() + 12, id.seq);
  return k;
}

std::optional<DueEntry> decodeDueKey(std::string_view key) {
  if (key.size() != kDueKeySize) {
    return std::nullopt;
  }
  return DueEntry{getTime(key.data()), JobId{getU32(key.data() + 8), getU64(key.data() + 12)}};
}

TimePrefix timePrefix(std::int64_t dueMs) {
  TimePrefix k;
  putTime(k.bytes.data(), dueMs);
  return k;
}

CounterKey counterKey(std::uint32_t campaign, CounterKind kind) {
  CounterKey k;
  putU32(k.bytes.data(), campaign);
  k.bytes[4] = static_cast<char>(kind);
  return k;
}

std::optional<CounterEntry> decodeCounterKey(std::string_view key) {
  if (key.size() != kCounterKeySize) {
    return std::nullopt;
  }
  auto kind = static_cast<std::uint8_t>(key[4]);
  if (kind >= kCounterKinds) {
    return std::nullopt;
  }
  return CounterEntry{getU32(key.data()), static_cast<CounterKind>(kind)};
}

std::array<char, 8> encodeDelta(std::int64_t delta) {
  std::array<char, 8> out{};
  auto v = static_cast<std::uint64_t>(delta);
  for (std::size_t i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::optional<std::int64_t> decodeDelta(std::string_view value) {
  if (value.size() != 8) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(value[i]);
  }
  return static_cast<std::int64_t>(v);
}

}  // namespace salvo::queue::keys
