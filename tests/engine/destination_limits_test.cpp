#include "engine/destination_limits.h"

#include <gtest/gtest.h>

#include <set>

namespace salvo::engine {
namespace {

TEST(DestinationLimitsTest, DefaultsAreSane) {
  const DestinationLimits d = defaultDestinationLimits();
  EXPECT_EQ(d.maxConnections, 8);
  EXPECT_EQ(d.initialConnections, 2);
  EXPECT_EQ(d.messagesPerConnection, 1000);
  EXPECT_EQ(d.messagesPerSecond, 0);
  EXPECT_EQ(d.failedCohortLimit, 1);
  EXPECT_EQ(d.probeDelayMs, 300'000);
  const ConcurrencyWindowConfig w = windowConfig(d);
  EXPECT_EQ(w.initial, 2);
  EXPECT_EQ(w.max, 8);
}

TEST(DestinationLimitsTest, EveryKeyRoundTripsThroughItsField) {
  std::set<std::string_view> seen;
  for (const DestinationLimitKey& k : destinationLimitKeys()) {
    EXPECT_TRUE(seen.insert(k.key).second) << "duplicate key " << k.key;
    EXPECT_FALSE(k.help.empty());
    DestinationLimits l = defaultDestinationLimits();
    k.set(l, k.max);
    EXPECT_EQ(k.get(l), k.max) << k.key;
    EXPECT_NE(l, defaultDestinationLimits()) << k.key << " sets no field";
    EXPECT_EQ(findDestinationLimitKey(k.key), &k);
  }
  EXPECT_EQ(seen.size(), 7u);
}

TEST(DestinationLimitsTest, SetsFromText) {
  DestinationLimits l = defaultDestinationLimits();
  std::string error;
  EXPECT_TRUE(setDestinationLimit(l, "max_connections", "20", error)) << error;
  EXPECT_TRUE(setDestinationLimit(l, "messages_per_second", "0.5", error)) << error;
  EXPECT_TRUE(setDestinationLimit(l, "probe_delay", "2m", error)) << error;
  EXPECT_EQ(l.maxConnections, 20);
  EXPECT_DOUBLE_EQ(l.messagesPerSecond, 0.5);
  EXPECT_EQ(l.probeDelayMs, 120'000);
}

TEST(DestinationLimitsTest, RejectsBadKeysAndValuesPrecisely) {
  DestinationLimits l = defaultDestinationLimits();
  std::string error;
  EXPECT_FALSE(setDestinationLimit(l, "max_connection", "2", error));
  EXPECT_EQ(error, "unknown key 'max_connection' (did you mean 'max_connections'?)");
  EXPECT_FALSE(setDestinationLimit(l, "max_connections", "2.5", error));
  EXPECT_EQ(error, "'max_connections' must be a whole number from 1 to 100000, not '2.5'");
  EXPECT_FALSE(setDestinationLimit(l, "messages_per_second", "-1", error));
  EXPECT_EQ(error, "'messages_per_second' must be a number from 0 to 1000000, not '-1'");
  EXPECT_FALSE(setDestinationLimit(l, "messages_per_second", "nan", error));
  EXPECT_FALSE(setDestinationLimit(l, "probe_delay", "500ms", error));
  EXPECT_EQ(error, "'probe_delay' must be a duration from 1s to 1d (like 30s, 5m), not '500ms'");
  EXPECT_EQ(l, defaultDestinationLimits());
}

}  // namespace
}  // namespace salvo::engine
