#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>

#include <prometheus/registry.h>

namespace salvo::metrics {
namespace {

// A plain HTTP GET over a loopback socket: the endpoint must be scrapeable by anything.
std::string httpGet(std::uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST(MetricsTest, EndpointServesCountersAndGauges) {
  Metrics metrics;
  metrics.countDelivered(3);
  metrics.countDeferred();
  metrics.countBounced(2);
  metrics.setQueueDepth(7, 5, 1);
  std::string error;
  auto server = MetricsServer::start("127.0.0.1:0", metrics, error);
  ASSERT_NE(server, nullptr) << error;
  ASSERT_NE(server->port(), 0);
  std::string body = httpGet(server->port(), "/metrics");
  EXPECT_NE(body.find("salvo_messages_total{result=\"delivered\"} 3"), std::string::npos) << body;
  EXPECT_NE(body.find("salvo_messages_total{result=\"deferred\"} 1"), std::string::npos);
  EXPECT_NE(body.find("salvo_messages_total{result=\"bounced\"} 2"), std::string::npos);
  EXPECT_NE(body.find("salvo_queue_jobs{state=\"queued\"} 7"), std::string::npos);
  EXPECT_NE(body.find("salvo_queue_jobs{state=\"in_flight\"} 1"), std::string::npos);
  EXPECT_NE(body.find("salvo_build_info{version="), std::string::npos);
}

TEST(MetricsTest, BadListenAddressIsAnError) {
  Metrics metrics;
  std::string error;
  auto first = MetricsServer::start("127.0.0.1:0", metrics, error);
  ASSERT_NE(first, nullptr) << error;
  auto second = MetricsServer::start("127.0.0.1:" + std::to_string(first->port()), metrics, error);
  EXPECT_EQ(second, nullptr);
  EXPECT_NE(error.find("cannot listen"), std::string::npos) << error;
}

TEST(MetricsTest, LabelledFamiliesAreExposed) {
  Metrics metrics;
  metrics.countMessages(Result::Delivered, "spring", "gmail", 5);
  metrics.countMessages(Result::Bounced, "spring", "other");
  metrics.countMessages(Result::Expired, "", "yahoo");
  metrics.countReply("gmail", 250);
  metrics.countReply("gmail", 421);
  metrics.countReply("gmail", 0);
  metrics.countBounce("gmail", "bad-mailbox", true);
  metrics.countDeferral("yahoo", "policy-related");
  metrics.countRetry("yahoo");
  metrics.setQueueJobs("suspended", 4);
  metrics.connectionOpened("gmail");
  metrics.connectionOpened("gmail");
  metrics.connectionClosed("gmail");
  metrics.connectionOpened();
  metrics.observeDeliveryLatency("gmail", 0.2);
  metrics.observeTimeInQueue(Result::Delivered, 42);
  metrics.countThrottled("gmail", "messages_per_second");
  metrics.countShapingAction("yahoo", "scale_rate");
  metrics.countSuspension("yahoo", "dead");
  std::string error;
  auto server = MetricsServer::start("127.0.0.1:0", metrics, error);
  ASSERT_NE(server, nullptr) << error;
  const std::string body = httpGet(server->port(), "/metrics");
  for (const char* line : {
           "salvo_messages_total{result=\"delivered\"} 5",
           "salvo_messages_total{result=\"bounced\"} 1",
           "salvo_messages_total{result=\"expired\"} 1",
           "salvo_messages_total{result=\"suppressed\"} 0",
           "salvo_campaign_messages_total{campaign=\"spring\",result=\"delivered\"} 5",
           "salvo_campaign_messages_total{campaign=\"other\",result=\"expired\"} 1",
           "salvo_provider_messages_total{provider=\"gmail\",result=\"delivered\"} 5",
           "salvo_smtp_replies_total{class=\"2xx\",provider=\"gmail\"} 1",
           "salvo_smtp_replies_total{class=\"4xx\",provider=\"gmail\"} 1",
           "salvo_smtp_replies_total{class=\"invalid\",provider=\"gmail\"} 1",
           "salvo_bounces_total{category=\"bad-mailbox\",provider=\"gmail\",severity=\"hard\"} 1",
           "salvo_deferrals_total{category=\"policy-related\",provider=\"yahoo\"} 1",
           "salvo_retries_total{provider=\"yahoo\"} 1",
           "salvo_queue_jobs{state=\"suspended\"} 4",
           "salvo_connections_open{provider=\"gmail\"} 1",
           "salvo_connections_open{provider=\"other\"} 1",
           "salvo_connections_opened_total{provider=\"gmail\"} 2",
           "salvo_delivery_latency_seconds_bucket{provider=\"gmail\",le=\"0.25\"} 1",
           "salvo_delivery_latency_seconds_count{provider=\"gmail\"} 1",
           "salvo_time_in_queue_seconds_bucket{result=\"delivered\",le=\"60\"} 1",
           "salvo_throttled_total{limit=\"messages_per_second\",provider=\"gmail\"} 1",
           "salvo_shaping_actions_total{action=\"scale_rate\",provider=\"yahoo\"} 1",
           "salvo_suspensions_total{kind=\"dead\",provider=\"yahoo\"} 1",
       }) {
    EXPECT_NE(body.find(line), std::string::npos) << "missing: " << line << "\n" << body;
  }
}

TEST(MetricsTest, CampaignLabelIsCappedAndIdleCampaignsAreDropped) {
  std::int64_t now = 0;
  MetricsOptions options;
  options.maxCampaignLabels = 2;
  options.campaignIdleMs = 1000;
  options.nowMs = [&] { return now; };
  Metrics metrics(options);
  metrics.countMessages(Result::Delivered, "a", "gmail");
  metrics.countMessages(Result::Delivered, "b", "gmail");
  metrics.countMessages(Result::Delivered, "c", "gmail");  // both active: "other"
  EXPECT_EQ(metrics.campaignLabel("a"), "a");
  EXPECT_EQ(metrics.campaignLabel("c"), "other");
  now = 5000;
  metrics.countMessages(Result::Bounced, "a", "gmail");
  metrics.countMessages(Result::Delivered, "d", "gmail");  // b is idle: d takes its slot
  EXPECT_EQ(metrics.campaignLabel("d"), "d");
  EXPECT_EQ(metrics.campaignLabel("b"), "other");
  std::set<std::string> campaigns;
  for (const auto& family : metrics.registry()->Collect()) {
    if (family.name != "salvo_campaign_messages_total") {
      continue;
    }
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) {
        if (l.name == "campaign") {
          campaigns.insert(l.value);
        }
      }
    }
  }
  EXPECT_EQ(campaigns, (std::set<std::string>{"a", "d", "other"}));
}

}  // namespace
}  // namespace salvo::metrics
