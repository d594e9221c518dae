#include "queue/job.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <string>

namespace salvo::queue {
namespace {

JobRecord sampleJob() {
  JobRecord r;
  r.state = JobState::Deferred;
  r.attempts = 300;  // a two-byte varint
  r.createdMs = 1'700'000'000'123;
  r.dueMs = -42;  // negative times survive (zigzag)
  r.recipient = "user+tag@example.org";
  r.values = {"Ada", "", std::string(200, 'x'), std::string("nul\0byte", 8), "\xff\xfe"};
  r.lastReply = "451 4.7.1 greylisted, try again later";
  return r;
}

CampaignRecord sampleCampaign() {
  CampaignRecord c;
  c.number = 0xfffffffe;
  c.name = "spring-sale";
  c.state = CampaignState::Paused;
  c.createdMs = std::numeric_limits<std::int64_t>::min();
  c.jobs = 10'000'000;
  c.spec = std::string(1000, '\x01') + "compiled";
  return c;
}

void expectSame(const JobRecord& a, const JobRecord& b) {
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.createdMs, b.createdMs);
  EXPECT_EQ(a.dueMs, b.dueMs);
  EXPECT_EQ(a.recipient, b.recipient);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.lastReply, b.lastReply);
}

void expectSame(const CampaignRecord& a, const CampaignRecord& b) {
  EXPECT_EQ(a.number, b.number);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.createdMs, b.createdMs);
  EXPECT_EQ(a.jobs, b.jobs);
  EXPECT_EQ(a.spec, b.spec);
}

TEST(JobRecordTest, RoundTrip) {
  auto r = sampleJob();
  auto bytes = r.encode();
  EXPECT_EQ(bytes[0], '\x01');  // version first
  auto decoded = JobRecord::decode(bytes);
  ASSERT_TRUE(decoded);
  expectSame(*decoded, r);
}

TEST(JobRecordTest, DefaultAndExtremesRoundTrip) {
  JobRecord empty;
  auto decoded = JobRecord::decode(empty.encode());
  ASSERT_TRUE(decoded);
  expectSame(*decoded, empty);

  JobRecord big;
  big.state = JobState::Cancelled;
  big.attempts = std::numeric_limits<std::uint32_t>::max();
  big.createdMs = std::numeric_limits<std::int64_t>::max();
  big.dueMs = std::numeric_limits<std::int64_t>::min();
  decoded = JobRecord::decode(big.encode());
  ASSERT_TRUE(decoded);
  expectSame(*decoded, big);
}

TEST(JobRecordTest, EveryStateRoundTrips) {
  for (auto s : {JobState::Queued, JobState::Deferred, JobState::Delivered, JobState::Bounced,
                 JobState::Expired, JobState::Cancelled}) {
    JobRecord r;
    r.state = s;
    auto decoded = JobRecord::decode(r.encode());
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->state, s);
  }
}

TEST(JobRecordTest, EncodeToAppendsAndEncodeWithStamps) {
  auto r = sampleJob();
  std::string buf = "prefix";
  r.encodeTo(buf);
  EXPECT_EQ(buf, "prefix" + r.encode());

  std::string stamped;
  r.encodeWith(stamped, JobState::Queued, 5, 6);
  auto decoded = JobRecord::decode(stamped);
  ASSERT_TRUE(decoded);
  auto expected = r;
  expected.state = JobState::Queued;
  expected.createdMs = 5;
  expected.dueMs = 6;
  expectSame(*decoded, expected);
}

TEST(JobRecordTest, DecodeIntoReusedRecord) {
  JobRecord reused = sampleJob();
  reused.values.resize(50, "leftover");
  JobRecord small;
  small.recipient = "a@b.c";
  small.values = {"one"};
  ASSERT_TRUE(JobRecord::decode(small.encode(), reused));
  expectSame(reused, small);
}

TEST(JobRecordTest, EveryTruncationIsRejected) {
  auto bytes = sampleJob().encode();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(JobRecord::decode(std::string_view(bytes).substr(0, n))) << "length " << n;
  }
  EXPECT_TRUE(JobRecord::decode(bytes));
}

TEST(JobRecordTest, TrailingBytesAreRejected) {
  auto bytes = sampleJob().encode();
  EXPECT_FALSE(JobRecord::decode(bytes + '\0'));
}

TEST(JobRecordTest, BadVersionOrStateIsRejected) {
  auto bytes = sampleJob().encode();
  for (char v : {'\0', '\x02', '\xff'}) {
    auto bad = bytes;
    bad[0] = v;
    EXPECT_FALSE(JobRecord::decode(bad));
  }
  auto bad = bytes;
  bad[1] = '\x07';  // one past JobState::Suppressed
  EXPECT_FALSE(JobRecord::decode(bad));
}

TEST(JobRecordTest, HugeCountsAndLengthsAreRejectedWithoutAllocating) {
  // version, state, attempts 0, created 0, due 0, recipient "", then a value count of
  // 2^62 with nothing behind it.
  std::string hugeCount("\x01\x00\x00\x00\x00\x00", 6);
  hugeCount += std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x40", 9);
  EXPECT_FALSE(JobRecord::decode(hugeCount));
  // A recipient length far beyond the input.
  std::string hugeLength("\x01\x00\x00\x00\x00\xff\xff\xff\xff\x0f", 10);
  EXPECT_FALSE(JobRecord::decode(hugeLength));
}

TEST(JobRecordTest, OverlongVarintsAreRejected) {
  // attempts: an eleven-byte varint.
  std::string overlong("\x01\x00", 2);
  overlong += std::string(10, '\x80') + '\x01';
  EXPECT_FALSE(JobRecord::decode(overlong));
  // attempts: a valid varint above UINT32_MAX.
  std::string tooBig("\x01\x00\x80\x80\x80\x80\x10\x00\x00\x00\x00\x00\x00", 13);
  EXPECT_FALSE(JobRecord::decode(tooBig));
  // createdMs: ten bytes whose last carries more than the top bit of 64.
  std::string tenth("\x01\x00\x00", 3);
  tenth += std::string(9, '\xff') + '\x02';
  tenth += std::string("\x00\x00\x00\x00", 4);
  EXPECT_FALSE(JobRecord::decode(tenth));
}

TEST(JobRecordTest, RandomGarbageNeverCrashes) {
  std::mt19937 rng(1234);
  auto valid = sampleJob().encode();
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes;
    if (i % 2 == 0) {
      bytes.resize(1 + rng() % 64);
      for (auto& c : bytes) {
        c = static_cast<char>(rng());
      }
      bytes[0] = '\x01';
    } else {
      bytes = valid;  // flip a few bytes of a valid record
      for (int k = 0; k < 3; ++k) {
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
      }
    }
    if (auto r = JobRecord::decode(bytes)) {
      ++accepted;
      // Whatever is accepted is a record that encodes back to the same bytes or to an
      // equivalent shorter form (non-minimal varints are tolerated).
      auto again = JobRecord::decode(r->encode());
      ASSERT_TRUE(again);
      expectSame(*again, *r);
    }
  }
  EXPECT_LT(accepted, 20000);
}

TEST(CampaignRecordTest, RoundTrip) {
  auto c = sampleCampaign();
  auto bytes = c.encode();
  EXPECT_EQ(bytes[0], '\x01');
  auto decoded = CampaignRecord::decode(bytes);
  ASSERT_TRUE(decoded);
  expectSame(*decoded, c);

  CampaignRecord empty;
  decoded = CampaignRecord::decode(empty.encode());
  ASSERT_TRUE(decoded);
  expectSame(*decoded, empty);
}

TEST(CampaignRecordTest, EveryTruncationAndTrailingByteIsRejected) {
  auto bytes = sampleCampaign().encode();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(CampaignRecord::decode(std::string_view(bytes).substr(0, n))) << "length " << n;
  }
  EXPECT_FALSE(CampaignRecord::decode(bytes + 'x'));
}

TEST(CampaignRecordTest, BadVersionStateOrNumberIsRejected) {
  CampaignRecord c;
  c.name = "n";
  auto bytes = c.encode();  // 01 | number 00 | name 01 'n' | state 00 | ...
  auto bad = bytes;
  bad[0] = '\x02';
  EXPECT_FALSE(CampaignRecord::decode(bad));
  bad = bytes;
  bad[4] = '\x04';  // state out of range
  EXPECT_FALSE(CampaignRecord::decode(bad));
  // A number above UINT32_MAX.
  std::string big("\x01\x80\x80\x80\x80\x10\x00\x00\x00\x00\x00", 11);
  EXPECT_FALSE(CampaignRecord::decode(big));
}

TEST(JobTest, NamesAndIds) {
  EXPECT_EQ((JobId{3, 1042}.str()), "c3-1042");
  EXPECT_STREQ(jobStateName(JobState::Queued), "queued");
  EXPECT_STREQ(jobStateName(JobState::Deferred), "deferred");
  EXPECT_STREQ(jobStateName(JobState::Delivered), "delivered");
  EXPECT_STREQ(jobStateName(JobState::Bounced), "bounced");
  EXPECT_STREQ(jobStateName(JobState::Expired), "expired");
  EXPECT_STREQ(jobStateName(JobState::Cancelled), "cancelled");
  EXPECT_STREQ(campaignStateName(CampaignState::Loading), "loading");
  EXPECT_STREQ(campaignStateName(CampaignState::Active), "active");
  EXPECT_STREQ(campaignStateName(CampaignState::Paused), "paused");
  EXPECT_STREQ(campaignStateName(CampaignState::Cancelled), "cancelled");
  EXPECT_FALSE(isTerminal(JobState::Queued));
  EXPECT_FALSE(isTerminal(JobState::Deferred));
  EXPECT_TRUE(isTerminal(JobState::Delivered));
  EXPECT_TRUE(isTerminal(JobState::Cancelled));
}

}  // namespace
}  // namespace salvo::queue
