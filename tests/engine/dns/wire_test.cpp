#include "engine/dns/wire.h"

#include <gtest/gtest.h>

#include "tests/engine/dns/dns_test_server.h"

namespace salvo::dns {
namespace {

using dnstest::Bytes;
using dnstest::TestRecord;

std::optional<ResponseTtls> read(const Bytes& b) {
  return readResponseTtls(b.data(), b.size());
}

TEST(ReadResponseTtls, MinimumTtlOverTheAnswerSection) {
  Bytes response = dnstest::buildResponse(
      0x1234, dnstest::kRcodeNoError, "example.test", dnstest::kTypeMx,
      {TestRecord{dnstest::kTypeMx, 600, dnstest::mxRdata(20, "mx2.example.test")},
       TestRecord{dnstest::kTypeMx, 300, dnstest::mxRdata(10, "mx1.example.test")},
       TestRecord{dnstest::kTypeMx, 900, dnstest::mxRdata(30, "mx3.example.test")}});
  auto ttls = read(response);
  ASSERT_TRUE(ttls.has_value());
  EXPECT_EQ(ttls->rcode, 0);
  EXPECT_EQ(ttls->answerCount, 3);
  ASSERT_TRUE(ttls->answerTtl.has_value());
  EXPECT_EQ(*ttls->answerTtl, 300u);
  EXPECT_FALSE(ttls->negativeTtl.has_value());
}

TEST(ReadResponseTtls, NegativeTtlIsTheSmallerOfSoaTtlAndMinimum) {
  Bytes smallMinimum =
      dnstest::buildResponse(1, dnstest::kRcodeNxDomain, "nx.example.test", dnstest::kTypeMx, {},
                             {TestRecord{dnstest::kTypeSoa, 3600, dnstest::soaRdata(120)}});
  auto ttls = read(smallMinimum);
  ASSERT_TRUE(ttls.has_value());
  EXPECT_EQ(ttls->rcode, 3);
  EXPECT_FALSE(ttls->answerTtl.has_value());
  ASSERT_TRUE(ttls->negativeTtl.has_value());
  EXPECT_EQ(*ttls->negativeTtl, 120u);

  Bytes smallTtl =
      dnstest::buildResponse(1, dnstest::kRcodeNoError, "nodata.example.test", dnstest::kTypeMx, {},
                             {TestRecord{dnstest::kTypeSoa, 60, dnstest::soaRdata(900)}});
  ttls = read(smallTtl);
  ASSERT_TRUE(ttls.has_value());
  EXPECT_EQ(ttls->rcode, 0);
  ASSERT_TRUE(ttls->negativeTtl.has_value());
  EXPECT_EQ(*ttls->negativeTtl, 60u);
}

TEST(ReadResponseTtls, TtlWithTheTopBitSetCountsAsZero) {
  Bytes response = dnstest::buildResponse(
      1, dnstest::kRcodeNoError, "a.example.test", dnstest::kTypeA,
      {TestRecord{dnstest::kTypeA, 0x80000001u, dnstest::ipRdata("192.0.2.1")},
       TestRecord{dnstest::kTypeA, 10, dnstest::ipRdata("192.0.2.2")}});
  auto ttls = read(response);
  ASSERT_TRUE(ttls.has_value());
  ASSERT_TRUE(ttls->answerTtl.has_value());
  EXPECT_EQ(*ttls->answerTtl, 0u);
}

TEST(ReadResponseTtls, ServFailWithoutRecords) {
  Bytes response =
      dnstest::buildResponse(7, dnstest::kRcodeServFail, "x.example.test", dnstest::kTypeMx, {});
  auto ttls = read(response);
  ASSERT_TRUE(ttls.has_value());
  EXPECT_EQ(ttls->rcode, 2);
  EXPECT_EQ(ttls->answerCount, 0);
  EXPECT_FALSE(ttls->answerTtl.has_value());
  EXPECT_FALSE(ttls->negativeTtl.has_value());
}

TEST(ReadResponseTtls, EveryTruncationIsRejectedWithoutReadingPastTheEnd) {
  Bytes response = dnstest::buildResponse(
      1, dnstest::kRcodeNoError, "example.test", dnstest::kTypeMx,
      {TestRecord{dnstest::kTypeMx, 300, dnstest::mxRdata(10, "mx1.example.test")}},
      {TestRecord{dnstest::kTypeSoa, 3600, dnstest::soaRdata(120)}});
  ASSERT_TRUE(read(response).has_value());
  for (std::size_t len = 0; len < response.size(); ++len) {
    // A fresh heap copy of exactly `len` bytes, so ASan catches any over-read.
    Bytes prefix(response.begin(), response.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_FALSE(readResponseTtls(prefix.data(), prefix.size()).has_value()) << "length " << len;
  }
  EXPECT_FALSE(readResponseTtls(nullptr, 0).has_value());
}

TEST(ReadResponseTtls, RejectsReservedLabelTypes) {
  Bytes response =
      dnstest::buildResponse(1, dnstest::kRcodeNoError, "example.test", dnstest::kTypeMx, {});
  response[12] = 0x40;  // first question label: reserved type 01
  EXPECT_FALSE(read(response).has_value());
  response[12] = 0x80;  // reserved type 10
  EXPECT_FALSE(read(response).has_value());
}

TEST(ReadResponseTtls, RejectsAnSoaWhoseFieldsOverrunItsRdata) {
  Bytes rdata = dnstest::soaRdata(120);
  rdata.resize(rdata.size() - 4);  // MINIMUM missing from the RDATA
  Bytes response =
      dnstest::buildResponse(1, dnstest::kRcodeNxDomain, "nx.example.test", dnstest::kTypeMx, {},
                             {TestRecord{dnstest::kTypeSoa, 3600, rdata}});
  // Pad so the SOA parser could read MINIMUM from bytes beyond the RDATA.
  response.insert(response.end(), {0, 0, 0, 0});
  EXPECT_FALSE(read(response).has_value());
}

}  // namespace
}  // namespace salvo::dns
