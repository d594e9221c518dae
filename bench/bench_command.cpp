#include "bench/bench_command.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>
#include <fmt/ostream.h>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>
#include <vector>

#include "campaigns/config.h"
#include "engine/dispatcher.h"
#include "engine/log.h"
#include "engine/net/address.h"
#include "engine/scheduling.h"
#include "engine/submitter.h"
#include "queue/store.h"

extern char** environ;

namespace salvo::bench {

namespace fs = std::filesystem;

namespace {

constexpr int kExitSoftware = 70;

double cpuSeconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
         r.ru_stime.tv_usec / 1e6;
}

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `salvo sink` in its own process, so its CPU is not counted as Salvo's.
class SinkProcess {
 public:
  bool start(const std::string& binary, const fs::path& statsPath, bool tls, std::string& error) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      error = "pipe: " + std::string(strerror(errno));
      return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    std::string stats = statsPath.string();
    std::vector<std::string> args = {binary,        "sink",         "--listen",
                                     "127.0.0.1:0", "--stats-json", stats};
    if (tls) {
      args.emplace_back("--tls");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
      close(fds[0]);
      error = "cannot start " + binary + " sink: " + strerror(rc);
      return false;
    }
    // The first line says where it listens.
    std::string line;
    char c;
    while (read(fds[0], &c, 1) == 1 && c != '\n') {
      line.push_back(c);
    }
    // Keep reading end open until the sink exits: it prints a summary as it stops, and a
    // closed pipe would kill it (SIGPIPE) before it writes its stats file.
    out_ = fds[0];
    constexpr std::string_view kListening = "listening on ";
    const auto at = line.find(kListening);
    std::string host;
    if (at == std::string::npos ||
        !net::splitHostPort(std::string_view(line).substr(at + kListening.size()), host, port_) ||
        port_ == 0) {
      error = "the sink did not start (it said: \"" + line + "\")";
      stop();
      return false;
    }
    return true;
  }

  // SIGTERM, wait, and return the sink's CPU seconds.
  double stop() {
    if (pid_ <= 0) {
      return 0;
    }
    kill(pid_, SIGTERM);
    int status = 0;
    rusage usage{};
    wait4(pid_, &status, 0, &usage);
    pid_ = -1;
    if (out_ >= 0) {
      close(out_);
      out_ = -1;
    }
    return cpuSeconds(usage);
  }

  ~SinkProcess() { stop(); }
  std::uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;  // the sink's stdout
  std::uint16_t port_ = 0;
};

// Generates a DKIM private key (RSA 2048 or Ed25519) into `path`, mode 0600.
bool writeDkimKey(const fs::path& path, const std::string& kind, std::string& error) {
  EVP_PKEY* key = kind == "rsa" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                                : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) {
    error = "cannot generate a " + kind + " DKIM key (OpenSSL EVP_PKEY_Q_keygen failed)";
    return false;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::FILE* f = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
  if (f == nullptr) {
    error = "cannot write the DKIM key " + path.string() + ": " + strerror(errno);
    if (fd >= 0) {
      ::close(fd);
    }
    EVP_PKEY_free(key);
    return false;
  }
  bool ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  ok = std::fclose(f) == 0 && ok;
  EVP_PKEY_free(key);
  if (!ok) {
    error = "cannot write the DKIM key " + path.string();
  }
  return ok;
}

// Connects to `host`:`port`, reads the greeting, sends EHLO and QUIT: true when the EHLO
// reply lists STARTTLS. A blocking exchange (10 s timeouts) before the benchmark starts.
bool offersStartTls(const std::string& host, std::uint16_t port, std::string& error) {
  const std::string where = fmt::format("{}:{}", host, port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (gai != 0) {
    error = fmt::format("--tls: cannot resolve {}: {}", host, gai_strerror(gai));
    return false;
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    error = fmt::format("--tls: cannot connect to {}: {}", where, strerror(errno));
    return false;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string in;
  // Reads one complete reply (its last line is "NNN " + text); "" when the peer is gone.
  auto reply = [&in, fd]() -> std::string {
    for (;;) {
      for (std::size_t pos = 0, nl; (nl = in.find("\r\n", pos)) != std::string::npos;
           pos = nl + 2) {
        if (nl - pos >= 4 && in[pos + 3] == ' ') {
          std::string whole = in.substr(0, nl + 2);
          in.erase(0, nl + 2);
          return whole;
        }
      }
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return {};
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
  };
  const std::string ehlo = "EHLO salvo-bench.localhost\r\n";
  std::string greeting = reply();
  bool sent = !greeting.empty() &&
              ::send(fd, ehlo.data(), ehlo.size(), MSG_NOSIGNAL) == ssize_t(ehlo.size());
  std::string answer = sent ? reply() : std::string();
  const std::string quit = "QUIT\r\n";
  ::send(fd, quit.data(), quit.size(), MSG_NOSIGNAL);
  ::close(fd);
  if (answer.rfind("250", 0) != 0) {
    error =
        fmt::format("--tls: {} did not answer EHLO (greeting \"{}\", reply \"{}\")", where,
                    greeting.substr(0, greeting.find('\r')), answer.substr(0, answer.find('\r')));
    return false;
  }
  std::string upper = answer;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper.find("250-STARTTLS\r\n") == std::string::npos &&
      upper.find("250 STARTTLS\r\n") == std::string::npos) {
    error = fmt::format("--tls: {} does not offer STARTTLS in its EHLO reply", where);
    return false;
  }
  return true;
}

void writeCampaign(const fs::path& dir, const BenchOptions& o) {
  {
    std::ofstream csv(dir / "recipients.csv");
    csv << "email,name\n";
    for (std::uint64_t i = 0; i < o.recipients; ++i) {
      csv << "user" << i << "@d" << (i % o.domains) << ".bench.example,Name" << i << "\n";
    }
  }
  std::ofstream yaml(dir / "campaign.yaml");
  yaml << "id: bench\n"
          "from: \"Salvo Bench <bench@salvo-bench.example>\"\n"
          "subject: \"Benchmark message for {{name}}\"\n"
          "recipients_csv: recipients.csv\n";
  if (o.dkim != "none") {
    yaml << "dkim:\n"
            "  domain: salvo-bench.example\n"
            "  selector: bench\n"
            "  key_file: "
         << (dir / "dkim.pem").string() << "\n"
         << "  algorithm: " << (o.dkim == "rsa" ? "rsa-sha256" : "ed25519-sha256") << "\n";
  }
  yaml << ""
          "text: |\n"
          "  Hello {{name}},\n";
  // Headers take about 350 octets; fill the body with 72-octet lines up to the size.
  const std::string filler =
      "  The quick brown fox jumps over the lazy dog; pack my box with liquor.\n";
  for (std::uint32_t bytes = 400; bytes + 72 <= o.size; bytes += 72) {
    yaml << filler;
  }
}

}  // namespace

int runBench(const BenchOptions& options, std::ostream& out, std::ostream& err) {
  if (options.recipients == 0 || options.domains == 0) {
    err << "salvo bench: --recipients and --domains must be at least 1\n";
    return campaigns::kExitUsage;
  }
  if (options.dkim != "none" && options.dkim != "rsa" && options.dkim != "ed25519") {
    err << "salvo bench: --dkim must be rsa, ed25519 or none, not '" << options.dkim << "'\n";
    return campaigns::kExitUsage;
  }
  fs::path dir;
  if (!options.keepDir.empty()) {
    dir = options.keepDir;
    std::error_code ec;
    fs::create_directories(dir, ec);
  } else {
    std::string tmpl = (fs::temp_directory_path() / "salvo-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      err << "salvo bench: cannot create a temporary directory: " << strerror(errno) << "\n";
      return campaigns::kExitIoErr;
    }
    dir = tmpl;
  }
  struct Cleanup {
    fs::path dir;
    bool keep;
    ~Cleanup() {
      if (!keep) {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    }
  } cleanup{dir, !options.keepDir.empty()};

  BenchReport report;
  report.recipients = options.recipients;
  report.domains = options.domains;
  report.messageBytes = options.size;
  report.dkim = options.dkim;
  report.tls = options.tls;

  SinkProcess sink;
  campaigns::RouteConfig route;
  route.pattern = "*";
  if (options.target.empty()) {
    std::string binary = options.salvoBinary.empty() ? fs::read_symlink("/proc/self/exe").string()
                                                     : options.salvoBinary;
    std::string error;
    if (!sink.start(binary, dir / "sink-stats.json", options.tls, error)) {
      err << "salvo bench: " << error << "\n";
      return campaigns::kExitSoftware;
    }
    route.host = "127.0.0.1";
    route.port = sink.port();
  } else {
    if (!net::splitHostPort(options.target, route.host, route.port) || route.port == 0) {
      err << "salvo bench: --target must be HOST:PORT with a port from 1 to 65535, not '"
          << options.target << "'\n";
      return campaigns::kExitUsage;
    }
    std::string error;
    if (options.tls && !offersStartTls(route.host, route.port, error)) {
      err << "salvo bench: " << error << "\n";
      return campaigns::kExitConfig;
    }
  }
  if (options.tls) {
    // Every message over TLS; no verification: the own sink's certificate is self-signed.
    route.tls = campaigns::TlsMode::Required;
  }
  report.target = fmt::format("{}:{}", route.host, route.port);

  campaigns::SalvoConfig config;
  config.dataDir = (dir / "data").string();
  config.metricsListen = "";
  config.routes.push_back(route);
  config.delivery.threads = options.threads;
  config.delivery.heloName = "salvo-bench.localhost";
  config.delivery.maxConnectionsPerDestination = options.connections;
  if (options.maxInFlight > 0) {
    config.delivery.maxInFlight = options.maxInFlight;
  }
  report.maxInFlight = config.delivery.maxInFlight;

  if (options.dkim != "none") {
    std::string error;
    if (!writeDkimKey(dir / "dkim.pem", options.dkim, error)) {
      err << "salvo bench: " << error << "\n";
      return campaigns::kExitSoftware;
    }
  }
  writeCampaign(dir, options);
  // As `salvo run` does (engine/scheduling.h); after the sink started, which keeps the
  // default policy.
  if (std::string error; !engine::useBatchScheduling(error)) {
    err << "salvo bench: " << error << "\n";
  }
  queue::Status status;
  auto store = queue::JobStore::open(config.dataDir, {}, status);
  if (!store) {
    err << "salvo bench: " << status.message() << "\n";
    return campaigns::kExitIoErr;
  }

  auto t0 = std::chrono::steady_clock::now();
  auto submitted = engine::submitCampaign((dir / "campaign.yaml").string(), *store, wallClockMs());
  report.submitSeconds = since(t0);
  if (submitted.exitCode != 0) {
    for (const auto& d : submitted.diagnostics.items()) {
      err << "salvo bench: " << d.str() << "\n";
    }
    return submitted.exitCode;
  }

  // A progress line on a terminal, read from the store's counters.
  std::atomic<bool> done{false};
  std::mutex m;
  std::condition_variable cv;
  std::thread progress;
  if (options.progress && !options.json && isatty(STDERR_FILENO)) {
    progress = std::thread([&] {
      std::unique_lock<std::mutex> lock(m);
      while (!cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return done.load(); })) {
        auto c = store->counts(submitted.campaignNumber);
        fmt::print(stderr, "\rsalvo bench: {} / {} delivered, {} in flight   ", c.delivered,
                   options.recipients, c.inFlight);
      }
      fmt::print(stderr, "\r{:60}\r", "");
    });
  }

  engine::setLogLevel(engine::LogLevel::Warn);
  engine::DispatcherOptions dispatcherOptions;
  dispatcherOptions.untilIdle = true;
  // Lease-to-result latencies, collected on the dispatcher's control loop.
  std::vector<std::int64_t> latenciesUs;
  latenciesUs.reserve(options.recipients);
  dispatcherOptions.onResult = [&latenciesUs](const engine::DeliveryResult& r) {
    auto nowUs = std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
                     .count();
    latenciesUs.push_back(nowUs - r.job.leasedAtUs);
  };
  engine::Dispatcher dispatcher(config, *store, nullptr, dispatcherOptions);
  rusage before{};
  rusage after{};
  getrusage(RUSAGE_SELF, &before);
  auto t1 = std::chrono::steady_clock::now();
  int rc = dispatcher.run();
  report.deliverySeconds = since(t1);
  getrusage(RUSAGE_SELF, &after);
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_all();
  if (progress.joinable()) {
    progress.join();
  }

  const auto& s = dispatcher.summary();
  report.delivered = s.delivered;
  report.deferred = s.deferred;
  report.bounced = s.bounced;
  report.expired = s.expired;
  report.outcomeBatches = s.batches;
  report.handedBack = s.handedBack;
  report.cpuSeconds = cpuSeconds(after) - cpuSeconds(before);
  report.peakRssMiB = after.ru_maxrss / 1024.0;
  report.latencySamples = latenciesUs.size();
  if (!latenciesUs.empty()) {
    auto at = [&latenciesUs](double q) {
      auto i = static_cast<std::size_t>(q * static_cast<double>(latenciesUs.size() - 1));
      std::nth_element(latenciesUs.begin(), latenciesUs.begin() + static_cast<long>(i),
                       latenciesUs.end());
      return static_cast<double>(latenciesUs[i]) / 1000.0;
    };
    report.latencyP50Ms = at(0.50);
    report.latencyP99Ms = at(0.99);
    report.latencyMaxMs =
        static_cast<double>(*std::max_element(latenciesUs.begin(), latenciesUs.end())) / 1000.0;
  }
  if (options.target.empty()) {
    report.sinkCpuSeconds = sink.stop();
    std::ifstream in(dir / "sink-stats.json");
    auto stats = nlohmann::json::parse(in, nullptr, false);
    if (!stats.is_discarded()) {
      report.sinkMessages = stats.value("messages", std::uint64_t{0});
      report.sinkConnections = stats.value("connections", std::uint64_t{0});
      report.sinkTlsSessions = stats.value("tls", std::uint64_t{0});
    }
  }

  if (options.json) {
    nlohmann::json j = {
        {"recipients", report.recipients},
        {"domains", report.domains},
        {"message_bytes", report.messageBytes},
        {"max_in_flight", report.maxInFlight},
        {"target", report.target},
        {"submit_seconds", report.submitSeconds},
        {"submit_per_second", report.submitRate()},
        {"delivery_seconds", report.deliverySeconds},
        {"messages_per_second", report.deliveryRate()},
        {"megabytes_per_second", report.megabytesPerSecond()},
        {"delivered", report.delivered},
        {"deferred", report.deferred},
        {"bounced", report.bounced},
        {"expired", report.expired},
        {"sink_messages", report.sinkMessages},
        {"cpu_seconds", report.cpuSeconds},
        {"cpu_ms_per_1000", report.delivered ? report.cpuSeconds * 1e6 / report.delivered : 0.0},
        {"sink_cpu_seconds", report.sinkCpuSeconds},
        {"peak_rss_mib", report.peakRssMiB},
        {"outcome_batches", report.outcomeBatches},
        {"handed_back", report.handedBack},
        {"dkim", report.dkim},
        {"tls", report.tls},
        {"sink_connections", report.sinkConnections},
        {"sink_tls_sessions", report.sinkTlsSessions},
        {"latency_samples", report.latencySamples},
        {"latency_p50_ms", report.latencyP50Ms},
        {"latency_p99_ms", report.latencyP99Ms},
        {"latency_max_ms", report.latencyMaxMs}};
    out << j.dump(2) << "\n";
  } else {
    fmt::print(out, "salvo bench: {} recipients over {} domains, ~{} octets each, to {}\n",
               report.recipients, report.domains, report.messageBytes, report.target);
    fmt::print(out, "  submit    {:.3f} s   {:>12.0f} recipients/s\n", report.submitSeconds,
               report.submitRate());
    fmt::print(out, "  delivery  {:.3f} s   {:>12.0f} messages/s   {:.1f} MB/s\n",
               report.deliverySeconds, report.deliveryRate(), report.megabytesPerSecond());
    fmt::print(out, "  outcomes  {} delivered, {} deferred, {} bounced, {} expired\n",
               report.delivered, report.deferred, report.bounced, report.expired);
    fmt::print(out, "  latency   p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms (lease to result)\n",
               report.latencyP50Ms, report.latencyP99Ms, report.latencyMaxMs);
    if (report.dkim != "none") {
      fmt::print(out, "  dkim      {} (key generated for this run)\n",
                 report.dkim == "rsa" ? "rsa-sha256, 2048 bits" : "ed25519-sha256");
    }
    fmt::print(out, "  tls       {}\n",
               report.tls ? "on (STARTTLS required on every connection, not verified)" : "off");
    if (options.target.empty()) {
      fmt::print(out, "  sink      {} messages received, {:.2f} CPU s\n", report.sinkMessages,
                 report.sinkCpuSeconds);
      if (report.tls) {
        fmt::print(out, "  sink tls  {} TLS sessions on {} connections\n", report.sinkTlsSessions,
                   report.sinkConnections);
      }
    }
    fmt::print(out, "  cpu       {:.2f} s ({:.1f} ms per 1,000 messages)\n", report.cpuSeconds,
               report.delivered ? report.cpuSeconds * 1e6 / report.delivered : 0.0);
    fmt::print(out, "  memory    peak RSS {:.1f} MiB\n", report.peakRssMiB);
    fmt::print(out, "  fsyncs    {} outcome batches (+1 submit)\n", report.outcomeBatches);
    fmt::print(out, "  requeued  {} jobs handed back to the queue unattempted\n",
               report.handedBack);
  }
  if (rc == 0 && report.delivered == 0) {
    // The report stands, but a script must not take a dead target for a measurement.
    err << "salvo bench: nothing was delivered (" << report.deferred << " deferred, "
        << report.bounced << " bounced): is " << report.target << " accepting mail?\n";
    return campaigns::kExitUnavailable;
  }
  return rc;
}

}  // namespace salvo::bench
