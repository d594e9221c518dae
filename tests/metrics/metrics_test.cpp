#include "metrics/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

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
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
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

}  // namespace
}  // namespace salvo::metrics
