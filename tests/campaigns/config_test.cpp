#include "campaigns/config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/campaigns/test_files.h"

namespace salvo::campaigns {
namespace {

using testing::messages;
using testing::TempDir;
using Messages = std::vector<std::string>;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.file("salvo.yaml"); }

  // Writes salvo.yaml and loads it; returns every message.
  Messages load(const std::string& yaml) {
    dir_.write("salvo.yaml", yaml);
    diags_ = Diagnostics();
    config_ = loadConfig(path_, diags_);
    EXPECT_EQ(config_.has_value(), diags_.empty());
    if (!diags_.empty()) {
      EXPECT_EQ(diags_.exitCode(), kExitConfig);
    }
    return messages(diags_);
  }
  std::string at(const std::string& rest) const { return path_ + rest; }

  TempDir dir_;
  std::string path_;
  Diagnostics diags_;
  std::optional<SalvoConfig> config_;
};

// Changes the working directory for the life of the object.
class InDirectory {
 public:
  explicit InDirectory(const std::filesystem::path& dir)
      : previous_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~InDirectory() { std::filesystem::current_path(previous_); }

 private:
  std::filesystem::path previous_;
};

TEST_F(ConfigTest, DefaultsWhenNoFileExists) {
  InDirectory cwd(dir_.path());
  Diagnostics diags;
  const auto config = loadConfig("", diags);
  ASSERT_TRUE(config.has_value());
  EXPECT_TRUE(diags.empty());
  EXPECT_EQ(config->file, "");
  EXPECT_EQ(config->dataDir, "salvo-data");
  EXPECT_EQ(config->metricsListen, "127.0.0.1:9464");
  EXPECT_TRUE(config->dnsServers.empty());
  EXPECT_TRUE(config->routes.empty());
  EXPECT_EQ(config->delivery.threads, 0);
  EXPECT_EQ(config->delivery.maxConnectionsPerDestination, 8);
  EXPECT_EQ(config->delivery.messagesPerConnection, 1000);
  EXPECT_EQ(config->delivery.maxInFlight, 20000u);
  EXPECT_EQ(config->delivery.mxPort, 25);
  EXPECT_EQ(config->delivery.connectTimeoutMs, 30000u);
  EXPECT_EQ(config->delivery.idleTimeoutMs, 5000u);
  EXPECT_EQ(config->retry.firstDelaySec, 300u);
  EXPECT_EQ(config->retry.maxDelaySec, 4u * 3600);
  EXPECT_EQ(config->retry.maxAgeSec, 3u * 86400);
}

TEST_F(ConfigTest, DefaultFileInTheWorkingDirectoryIsUsed) {
  dir_.write("salvo.yaml", "delivery: {threads: 3}\n");
  InDirectory cwd(dir_.path());
  Diagnostics diags;
  const auto config = loadConfig("", diags);
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->file, "salvo.yaml");
  EXPECT_EQ(config->delivery.threads, 3);
}

TEST_F(ConfigTest, EmptyFileMeansDefaults) {
  EXPECT_EQ(load(""), Messages{});
  EXPECT_EQ(config_->file, path_);
  EXPECT_EQ(config_->delivery.mxPort, 25);
}

TEST_F(ConfigTest, FullFile) {
  EXPECT_EQ(load(R"(data_dir: ./data
metrics: { listen: "127.0.0.1:9464" }
dns: { servers: ["127.0.0.1:5353", "::1", "[::1]:53"] }
delivery: { threads: 2, helo_name: MX.Example.com, max_connections_per_destination: 4,
            messages_per_connection: 100, max_in_flight: 5000, mx_port: 2525,
            connect_timeout: 10s, idle_timeout: 500ms }
retry: { first_delay: 5m, max_delay: 4h, max_age: 3d }
routes:
  - { match: "*.Example", host: 127.0.0.1, port: 2525 }
  - { match: mail.test, host: "::1", port: 25 }
  - { match: "*", host: Smarthost.Local }
)"),
            Messages{});
  ASSERT_TRUE(config_.has_value());
  EXPECT_EQ(config_->dataDir, dir_.file("data"));
  EXPECT_EQ(config_->metricsListen, "127.0.0.1:9464");
  EXPECT_EQ(config_->dnsServers, (std::vector<std::string>{"127.0.0.1:5353", "::1", "[::1]:53"}));
  EXPECT_EQ(config_->delivery.threads, 2);
  EXPECT_EQ(config_->delivery.heloName, "mx.example.com");
  EXPECT_EQ(config_->delivery.maxConnectionsPerDestination, 4);
  EXPECT_EQ(config_->delivery.messagesPerConnection, 100);
  EXPECT_EQ(config_->delivery.maxInFlight, 5000u);
  EXPECT_EQ(config_->delivery.mxPort, 2525);
  EXPECT_EQ(config_->delivery.connectTimeoutMs, 10000u);
  EXPECT_EQ(config_->delivery.idleTimeoutMs, 500u);
  EXPECT_EQ(config_->retry.firstDelaySec, 300u);
  EXPECT_EQ(config_->retry.maxDelaySec, 14400u);
  EXPECT_EQ(config_->retry.maxAgeSec, 259200u);
  ASSERT_EQ(config_->routes.size(), 3u);
  EXPECT_EQ(config_->routes[0].pattern, "*.example");
  EXPECT_EQ(config_->routes[0].host, "127.0.0.1");
  EXPECT_EQ(config_->routes[0].port, 2525);
  EXPECT_EQ(config_->routes[1].pattern, "mail.test");
  EXPECT_EQ(config_->routes[1].host, "::1");
  EXPECT_EQ(config_->routes[2].pattern, "*");
  EXPECT_EQ(config_->routes[2].host, "smarthost.local");
  EXPECT_EQ(config_->routes[2].port, 25);
}

TEST_F(ConfigTest, DurationsAndOff) {
  EXPECT_EQ(load(R"(metrics: {listen: "off"}
delivery: {connect_timeout: 45, idle_timeout: 2m}
retry: {first_delay: 60, max_delay: 1d, max_age: 1d}
)"),
            Messages{});
  EXPECT_EQ(config_->metricsListen, "");
  EXPECT_EQ(config_->delivery.connectTimeoutMs, 45000u);
  EXPECT_EQ(config_->delivery.idleTimeoutMs, 120000u);
  EXPECT_EQ(config_->retry.firstDelaySec, 60u);
  EXPECT_EQ(config_->retry.maxDelaySec, 86400u);
}

TEST_F(ConfigTest, UnknownKeys) {
  EXPECT_EQ(load("dleivery: {threads: 2}\nretry: {frist_delay: 5m, color: red}\n"),
            (Messages{at(":1:1: unknown key 'dleivery' (did you mean 'delivery'?)"),
                      at(":2:9: unknown key 'frist_delay' (did you mean 'first_delay'?)"),
                      at(":2:26: unknown key 'color' (expected one of: first_delay, max_delay, "
                         "max_age)")}));
}

TEST_F(ConfigTest, NumberErrors) {
  EXPECT_EQ(load(R"(delivery:
  threads: 300
  mx_port: 0
  max_in_flight: lots
  max_connections_per_destination: -1
)"),
            (Messages{at(":2:12: 'threads' must be an integer from 0 to 256 (got '300')"),
                      at(":3:12: 'mx_port' must be an integer from 1 to 65535 (got '0')"),
                      at(":4:18: 'max_in_flight' must be an integer from 1 to 100000000 (got "
                         "'lots')"),
                      at(":5:36: 'max_connections_per_destination' must be an integer from 1 to "
                         "100000 (got '-1')")}));
}

TEST_F(ConfigTest, DurationErrors) {
  EXPECT_EQ(load(R"(delivery: {connect_timeout: 30x, idle_timeout: 0s}
retry: {first_delay: 500ms, max_age: 200000d}
)"),
            (Messages{at(":1:29: 'connect_timeout' has an invalid duration '30x' (use e.g. "
                         "500ms, 30s, 5m, 4h, 3d or a number of seconds)"),
                      at(":1:48: 'idle_timeout' must be greater than zero"),
                      at(":2:22: 'first_delay' must be a whole number of seconds (got '500ms')"),
                      at(":2:38: 'max_age' is too long ('200000d')")}));
  EXPECT_EQ(load("retry: {first_delay: 1h, max_delay: 5m}\n"),
            Messages{at(":1:37: 'max_delay' (300s) is shorter than 'first_delay' (3600s)")});
}

TEST_F(ConfigTest, AddressErrors) {
  EXPECT_EQ(load(R"(metrics: {listen: "9464"}
dns: {servers: [dns.google, "1.1.1.1:0"]}
delivery: {helo_name: "bad_name"}
)"),
            (Messages{at(":1:19: invalid metrics listen address '9464': missing ':port' "
                         "(expected host:port or \"off\")"),
                      at(":2:17: invalid DNS server 'dns.google': 'dns.google' is not an IP "
                         "address (expected IP or IP:port)"),
                      at(":2:29: invalid DNS server '1.1.1.1:0': port '0' is not a number from 1 "
                         "to 65535 (expected IP or IP:port)"),
                      at(":3:23: invalid helo_name 'bad_name': domain contains '_'")}));
  EXPECT_EQ(load("metrics: {listen: \"localhost:99999\"}\n"),
            Messages{at(":1:19: invalid metrics listen address 'localhost:99999': port '99999' "
                        "is not a number from 1 to 65535 (expected host:port or \"off\")")});
}

TEST_F(ConfigTest, RouteErrors) {
  EXPECT_EQ(load(R"(routes:
  - {match: "*.", host: 127.0.0.1}
  - {match: "a..b", host: 127.0.0.1}
  - {match: example.com}
  - {match: example.com, host: "bad host", port: x}
  - just-a-string
)"),
            (Messages{at(":2:13: invalid route pattern '*.': expected \"*\", \"*.domain\" or "
                         "\"domain\""),
                      at(":3:13: invalid route pattern 'a..b': domain 'a..b' has an empty label"),
                      at(":4:5: missing required field 'host'"),
                      at(":5:32: invalid route host 'bad host': domain contains a space"),
                      at(":5:50: route port 'x' is not a number from 1 to 65535"),
                      at(":6:5: a route must be a map {match: ..., host: ..., port: ...}")}));
}

TEST_F(ConfigTest, TypeErrors) {
  EXPECT_EQ(load("delivery: 5\nroutes: {a: b}\ndata_dir: [x]\n"),
            (Messages{at(":1:11: 'delivery' must be a map"),
                      at(":2:9: 'routes' must be a list like [{match: \"*.example\", host: "
                         "127.0.0.1, port: 2525}]"),
                      at(":3:11: 'data_dir' must be a single value, not a list")}));
  EXPECT_EQ(load("- a\n"),
            Messages{at(":1:1: expected a map of settings (data_dir, metrics, dns, delivery, "
                        "retry, routes, policy, limits, queue)")});
}

TEST_F(ConfigTest, QueueRetention) {
  EXPECT_EQ(load(""), Messages{});
  EXPECT_EQ(config_->queue.retentionSec, 0u);  // never purged unless asked
  EXPECT_EQ(load("queue:\n  retention: 30d\n"), Messages{});
  EXPECT_EQ(config_->queue.retentionSec, 30u * 86400);
  EXPECT_EQ(load("queue:\n  retention: soon\n"),
            Messages{at(":2:14: 'retention' has an invalid duration 'soon' (use e.g. 500ms, 30s, "
                        "5m, 4h, 3d or a number of seconds)")});
  EXPECT_EQ(load("queue:\n  retention: 1500ms\n"),
            Messages{at(":2:14: 'retention' must be a whole number of seconds (got '1500ms')")});
  EXPECT_EQ(load("queue:\n  retension: 1d\n"),
            Messages{at(":2:3: unknown key 'retension' (did you mean 'retention'?)")});
}

TEST_F(ConfigTest, TlsAndSmtpTimeouts) {
  const std::string ca = dir_.file("ca.pem");
  dir_.write("ca.pem", "not checked here\n");
  EXPECT_EQ(load("delivery:\n"
                 "  tls: verify\n"
                 "  tls_ca_file: " +
                 ca +
                 "\n"
                 "  timeouts: {greeting: 1m, mail: 2m, rcpt: 3m, data: 4s, data_block: 5s, "
                 "dot: 10m}\n"
                 "routes:\n"
                 "  - {match: a.example, host: 127.0.0.1, tls: none}\n"
                 "  - {match: b.example, host: 127.0.0.1}\n"),
            Messages{});
  ASSERT_TRUE(config_.has_value());
  const DeliveryConfig& d = config_->delivery;
  EXPECT_EQ(d.tls, TlsMode::Verify);
  EXPECT_EQ(d.tlsCaFile, ca);
  EXPECT_EQ(d.timeouts.greetingMs, 60'000u);
  EXPECT_EQ(d.timeouts.mailMs, 120'000u);
  EXPECT_EQ(d.timeouts.rcptMs, 180'000u);
  EXPECT_EQ(d.timeouts.dataMs, 4'000u);
  EXPECT_EQ(d.timeouts.dataBlockMs, 5'000u);
  EXPECT_EQ(d.timeouts.dotMs, 600'000u);
  ASSERT_EQ(config_->routes.size(), 2u);
  EXPECT_EQ(config_->routes[0].tls, TlsMode::None);
  EXPECT_FALSE(config_->routes[1].tls.has_value());
  EXPECT_STREQ(tlsModeName(TlsMode::Opportunistic), "opportunistic");
}

TEST_F(ConfigTest, TlsDefaultsAreOpportunisticAndRfc5321Timeouts) {
  EXPECT_EQ(load("delivery: {threads: 1}\n"), Messages{});
  ASSERT_TRUE(config_.has_value());
  EXPECT_EQ(config_->delivery.tls, TlsMode::Opportunistic);
  EXPECT_EQ(config_->delivery.tlsCaFile, "");
  EXPECT_EQ(config_->delivery.timeouts.greetingMs, 300'000u);
  EXPECT_EQ(config_->delivery.timeouts.dataMs, 120'000u);
  EXPECT_EQ(config_->delivery.timeouts.dataBlockMs, 180'000u);
  EXPECT_EQ(config_->delivery.timeouts.dotMs, 600'000u);
}

TEST_F(ConfigTest, TlsAndTimeoutErrors) {
  const std::string missing = dir_.file("missing.pem");
  EXPECT_EQ(
      load("delivery:\n"
           "  tls: always\n"
           "  tls_ca_file: " +
           missing +
           "\n"
           "  timeouts: {greeting: 0s, banner: 5s}\n"
           "routes:\n"
           "  - {match: a.example, host: 127.0.0.1, tls: yes}\n"),
      (Messages{at(":2:8: 'tls' must be none, opportunistic, required or verify (got 'always')"),
                at(":3:16: 'tls_ca_file' " + missing + " is not a readable file"),
                at(":4:24: 'greeting' must be greater than zero"),
                at(":4:28: unknown key 'banner' (expected one of: greeting, mail, rcpt, data, "
                   "data_block, dot)"),
                at(":6:46: 'tls' must be none, opportunistic, required or verify (got 'yes')")}));
}

TEST_F(ConfigTest, YamlSyntaxErrorExits78) {
  EXPECT_EQ(load("delivery: {threads: 2\n"), Messages{at(":2:1: end of map flow not found")});
  EXPECT_EQ(diags_.exitCode(), kExitConfig);
}

TEST_F(ConfigTest, MissingExplicitFileExits66) {
  Diagnostics diags;
  const std::string path = dir_.file("nope.yaml");
  EXPECT_FALSE(loadConfig(path, diags).has_value());
  EXPECT_EQ(messages(diags),
            Messages{path + ": cannot open config file '" + path + "': No such file or directory"});
  EXPECT_EQ(diags.exitCode(), kExitNoInput);
}

}  // namespace
}  // namespace salvo::campaigns
