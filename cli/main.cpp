// The `salvo` command: parses arguments and wires the modules together. No logic of its
// own lives here: each subcommand calls one module entry point and maps its result to an
// exit code (sysexits) and output.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_command.h"
#include "bench/sink.h"
#include "bench/sink_main.h"
#include "campaigns/campaign.h"
#include "campaigns/config.h"
#include "engine/dispatcher.h"
#include "engine/event_log.h"
#include "engine/event_summary.h"
#include "engine/log.h"
#include "engine/scheduling.h"
#include "engine/submitter.h"
#include "metrics/metrics.h"
#include "queue/store.h"

namespace {

using salvo::campaigns::Diagnostics;

std::int64_t wallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void printDiagnostics(const Diagnostics& diags) {
  for (const auto& d : diags.items()) {
    fmt::print(stderr, "{}\n", d.str());
  }
  if (diags.dropped() > 0) {
    fmt::print(stderr, "... and {} more error(s)\n", diags.dropped());
  }
}

// Loads the configuration or prints why not; returns the exit code (0 = loaded).
int loadConfig(const std::string& path, salvo::campaigns::SalvoConfig& config) {
  Diagnostics diags;
  auto loaded = salvo::campaigns::loadConfig(path, diags);
  if (!loaded) {
    printDiagnostics(diags);
    return diags.exitCode();
  }
  config = std::move(*loaded);
  return 0;
}

// The per-recipient event log of a data directory (rotated as events.jsonl.1 ...).
std::string eventLogPath(const salvo::campaigns::SalvoConfig& config) {
  return salvo::engine::eventLogPathIn(config.dataDir);
}

int exitCodeFor(const salvo::queue::Status& status) {
  switch (status.code()) {
    case salvo::queue::Status::Code::Busy:
      return salvo::campaigns::kExitTempFail;
    case salvo::queue::Status::Code::NotFound:
      return salvo::campaigns::kExitNoInput;
    default:
      return salvo::campaigns::kExitIoErr;
  }
}

std::unique_ptr<salvo::queue::JobStore> openStore(const salvo::campaigns::SalvoConfig& config,
                                                  bool readOnly, int& exitCode) {
  salvo::queue::OpenOptions options;
  options.readOnly = readOnly;
  options.createIfMissing = !readOnly;
  salvo::queue::Status status;
  auto store = salvo::queue::JobStore::open(config.dataDir, options, status);
  if (!store) {
    fmt::print(stderr, "salvo: queue: {}\n", status.message());
    exitCode = exitCodeFor(status);
  }
  return store;
}

int cmdValidate(const std::string& configPath, const std::string& file) {
  (void)configPath;
  Diagnostics diags;
  std::uint64_t recipients = 0;
  auto loaded = salvo::campaigns::validateCampaign(file, diags, recipients);
  if (!loaded || !diags.empty()) {
    printDiagnostics(diags);
    return diags.empty() ? salvo::campaigns::kExitDataErr : diags.exitCode();
  }
  fmt::print("{}: campaign '{}' is valid: {} recipient(s)\n", file, loaded->campaign->id(),
             recipients);
  return 0;
}

int runControl(const salvo::campaigns::SalvoConfig& config, const std::string& op,
               std::vector<std::string> args) {
  salvo::queue::ControlRequest request;
  request.op = op;
  request.args = std::move(args);
  auto reply = salvo::engine::runCommand(config.dataDir, std::move(request), wallClockMs);
  std::fputs(reply.out.c_str(), stdout);
  std::fputs(reply.err.c_str(), stderr);
  return reply.exitCode;
}

int cmdSubmit(const std::string& configPath, const std::string& file) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  // Absolute: a running daemon may apply the submit from another working directory.
  std::error_code ec;
  auto path = std::filesystem::absolute(file, ec);
  return runControl(config, "submit", {ec ? file : path.string()});
}

// pause, resume, cancel, purge: see engine/submitter.h (through the daemon when one runs).
int cmdControl(const std::string& configPath, const std::string& op, const std::string& name) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  return runControl(config, op, {name});
}

// suppress add|remove|list|import: see engine/submitter.h.
int cmdSuppress(const std::string& configPath, const std::string& op,
                std::vector<std::string> args) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  if (op == "suppress-import") {
    std::error_code ec;
    auto path = std::filesystem::absolute(args[0], ec);
    if (!ec) {
      args[0] = path.string();
    }
  }
  return runControl(config, op, std::move(args));
}

int cmdRun(const std::string& configPath, bool untilIdle, bool verbose) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  if (verbose) {
    salvo::engine::setLogLevel(salvo::engine::LogLevel::Debug);
  }
  // Before the store and the loops start their threads: they inherit it.
  if (std::string error; !salvo::engine::useBatchScheduling(error)) {
    salvo::engine::log(salvo::engine::LogLevel::Warn, "{}", error);
  }
  int rc = 0;
  auto store = openStore(config, false, rc);
  if (!store) {
    return rc;
  }
  salvo::metrics::Metrics metrics;
  std::unique_ptr<salvo::metrics::MetricsServer> server;
  if (!config.metricsListen.empty() && config.metricsListen != "off") {
    std::string error;
    server = salvo::metrics::MetricsServer::start(config.metricsListen, metrics, error);
    if (!server) {
      fmt::print(stderr, "salvo: {}\n", error);
      return salvo::campaigns::kExitConfig;
    }
    salvo::engine::log(salvo::engine::LogLevel::Info, "metrics on http://{}/metrics",
                       config.metricsListen);
  }
  salvo::engine::DispatcherOptions options;
  options.untilIdle = untilIdle;
  options.eventLogPath = eventLogPath(config);
  {
    Diagnostics diags;
    if (!salvo::engine::loadPolicy(config, options, diags)) {
      printDiagnostics(diags);
      return diags.exitCode();
    }
  }
  salvo::engine::Dispatcher dispatcher(config, *store, &metrics, options);
  // Applies `salvo submit|pause|resume|cancel` issued while this daemon holds the store.
  salvo::engine::ControlServer control(*store, config.dataDir, wallClockMs);
  rc = dispatcher.run();
  const auto& s = dispatcher.summary();
  fmt::print(
      "salvo run: {} delivered, {} deferred, {} bounced, {} expired, {} suppressed ({} commit "
      "batches)\n",
      s.delivered, s.deferred, s.bounced, s.expired, s.suppressed, s.batches);
  return rc;
}

int cmdEvents(const std::string& configPath, const std::string& campaign,
              const std::string& format) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  salvo::engine::ExportFormat f = salvo::engine::ExportFormat::JsonLines;
  if (format == "csv") {
    f = salvo::engine::ExportFormat::Csv;
  } else if (format != "jsonl") {
    fmt::print(stderr, "salvo events: unknown format '{}' (csv or jsonl)\n", format);
    return salvo::campaigns::kExitUsage;
  }
  salvo::engine::EventLogOptions defaults;
  salvo::engine::ExportStats stats;
  std::string error;
  if (!salvo::engine::exportCampaignEvents(eventLogPath(config), defaults.keepFiles, campaign, f,
                                           std::cout, stats, error)) {
    fmt::print(stderr, "salvo events: {}\n", error);
    return salvo::campaigns::kExitNoInput;
  }
  std::cout.flush();
  if (stats.skippedLines > 0) {
    fmt::print(stderr, "salvo events: skipped {} unreadable line(s)\n", stats.skippedLines);
  }
  return 0;
}

int cmdStatus(const std::string& configPath, const std::string& only, bool json) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  int rc = 0;
  auto store = openStore(config, true, rc);
  if (!store) {
    return rc;
  }
  // Per provider and the top deferral reasons come from the event log.
  salvo::engine::DispatcherOptions policy;
  {
    Diagnostics diags;
    if (!salvo::engine::loadPolicy(config, policy, diags)) {
      printDiagnostics(diags);
      return diags.exitCode();
    }
  }
  std::map<std::string, salvo::engine::CampaignEventSummary> summaries;
  {
    std::string error;
    salvo::engine::EventLogOptions defaults;
    if (!salvo::engine::summarizeEvents(
            eventLogPath(config), defaults.keepFiles,
            policy.providers ? *policy.providers : salvo::engine::ProviderTable(), 5, summaries,
            error)) {
      fmt::print(stderr, "salvo: {}\n", error);
      return salvo::campaigns::kExitNoInput;
    }
  }
  std::vector<std::string> detailed;  // campaigns shown that have events
  nlohmann::json out = nlohmann::json::array();
  bool found = only.empty();
  if (!json) {
    fmt::print("{:<24} {:>8} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}\n", "CAMPAIGN", "STATE",
               "QUEUED", "IN-FLIGHT", "DELIVERED", "DEFERRED", "BOUNCED", "EXPIRED");
  }
  for (const auto& c : store->campaigns()) {
    if (!only.empty() && c.name != only) {
      continue;
    }
    found = true;
    auto n = store->counts(c.number);
    if (json) {
      out.push_back({{"campaign", c.name},
                     {"number", c.number},
                     {"state", salvo::queue::campaignStateName(c.state)},
                     {"jobs", c.jobs},
                     {"queued", n.queued},
                     {"in_flight", n.inFlight},
                     {"delivered", n.delivered},
                     {"deferred", n.deferred},
                     {"bounced", n.bounced},
                     {"expired", n.expired},
                     {"cancelled", n.cancelled},
                     {"attempts", n.attempts},
                     {"deferrals", n.deferrals},
                     {"suppressed", n.suppressed}});
      nlohmann::json providers = nlohmann::json::object();
      nlohmann::json reasons = nlohmann::json::array();
      if (auto it = summaries.find(c.name); it != summaries.end()) {
        for (const auto& [provider, counts] : it->second.providers) {
          providers[provider] = counts;
        }
        for (const auto& [reason, jobs] : it->second.topDeferrals) {
          reasons.push_back({{"reason", reason}, {"jobs", jobs}});
        }
      }
      out.back()["providers"] = providers;
      out.back()["top_deferrals"] = reasons;
    } else {
      if (summaries.count(c.name) != 0) {
        detailed.push_back(c.name);
      }
      fmt::print("{:<24} {:>8} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}\n", c.name,
                 salvo::queue::campaignStateName(c.state), n.queued, n.inFlight, n.delivered,
                 n.deferred, n.bounced, n.expired);
    }
  }
  if (json) {
    fmt::print("{}\n", out.dump(2));
  }
  for (const auto& name : detailed) {
    const auto& summary = summaries[name];
    fmt::print("\n{} by provider (latest event per recipient):\n", name);
    fmt::print("  {:<16} {:>10} {:>9} {:>8} {:>8} {:>10}\n", "PROVIDER", "DELIVERED", "DEFERRED",
               "BOUNCED", "EXPIRED", "SUPPRESSED");
    for (const auto& [provider, counts] : summary.providers) {
      auto count = [&counts = counts](const char* type) {
        auto it = counts.find(type);
        return it == counts.end() ? std::uint64_t{0} : it->second;
      };
      fmt::print("  {:<16} {:>10} {:>9} {:>8} {:>8} {:>10}\n", provider, count("delivered"),
                 count("deferred"), count("bounced"), count("expired"), count("suppressed"));
    }
    if (!summary.topDeferrals.empty()) {
      fmt::print("  top deferral reasons:\n");
      for (const auto& [reason, jobs] : summary.topDeferrals) {
        fmt::print("  {:>8}  {}\n", jobs, reason);
      }
    }
  }
  if (!found) {
    fmt::print(stderr, "salvo: no campaign '{}' in {}\n", only, config.dataDir);
    return salvo::campaigns::kExitNoInput;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Salvo: a high-throughput bulk and campaign email sending engine", "salvo"};
  app.require_subcommand(1);
  std::string configPath;
  app.add_option("--config", configPath,
                 "configuration file (default: ./salvo.yaml when present, else built-in)");

  std::string file;
  auto* validate = app.add_subcommand("validate", "check a campaign; print every error");
  validate->add_option("campaign", file, "campaign YAML file")->required();
  auto* submit = app.add_subcommand("submit", "validate, store and queue a campaign");
  submit->add_option("campaign", file, "campaign YAML file")->required();

  bool untilIdle = false;
  bool verbose = false;
  auto* run = app.add_subcommand("run", "deliver queued mail");
  run->add_flag("--until-idle", untilIdle, "exit once nothing is due or in flight");
  run->add_flag("-v,--verbose", verbose, "log every SMTP exchange");

  std::string only;
  bool json = false;
  auto* status = app.add_subcommand("status", "per campaign: queued, delivered, deferred, bounced");
  status->add_option("campaign", only, "only this campaign");
  status->add_flag("--json", json, "machine-readable output");

  std::string eventsCampaign;
  std::string eventsFormat = "jsonl";
  auto* events = app.add_subcommand("events", "export a campaign's delivery events");
  events->add_option("campaign", eventsCampaign, "campaign id")->required();
  events->add_option("--format", eventsFormat, "csv or jsonl")->capture_default_str();

  salvo::bench::Sink::Options sinkOptions;
  std::string statsJson;
  auto* sink = app.add_subcommand("sink", "a fast SMTP sink for tests and benchmarks");
  sink->add_option("--listen", sinkOptions.listen, "HOST:PORT to listen on (port 0 = any)")
      ->capture_default_str();
  sink->add_option("--maildir", sinkOptions.maildir, "write each message as a file here");
  sink->add_option("--reject-rcpt", sinkOptions.rejectRcpt,
                   "answer 550 to recipients containing this text (repeatable)");
  sink->add_option("--defer-rcpt", sinkOptions.deferRcpt,
                   "answer 451 to recipients containing this text (repeatable)");
  sink->add_option("--stats-json", statsJson, "write the final counts here as JSON");
  sink->add_option("--delay-ms", sinkOptions.delayMs,
                   "stall this long before accepting each message (a slow server)");
  sink->add_option("--auth", sinkOptions.auth,
                   "USER:PASSWORD_FILE: offer AUTH PLAIN LOGIN and require these credentials");
  sink->add_option("--reply-421-every", sinkOptions.reply421Every,
                   "answer 421 and close after this many messages on a connection");
  sink->add_flag("--measure-rate", sinkOptions.measureRate,
                 "report the peak messages accepted in any second (peak_messages_per_second)");
  sink->add_option("--threads", sinkOptions.threads,
                   "event loops sharing the port with SO_REUSEPORT (0 = one per core)")
      ->capture_default_str();
  // Fault injection (docs/sink.md); explicit options override the profile's values.
  sink->add_option("--profile", sinkOptions.profile,
                   "fault preset: accept-all (no faults) or realistic (per-domain 4xx/5xx, "
                   "greeting delay, drops, rate limit; table in docs/sink.md)")
      ->check(CLI::IsMember({"accept-all", "realistic"}))
      ->capture_default_str();
  sink->add_option("--seed", sinkOptions.seed, "seed of every fault decision (reproducible runs)")
      ->capture_default_str();
  sink->add_option_function<double>(
          "--defer-fraction", [&sinkOptions](const double& v) { sinkOptions.deferFraction = v; },
          "fraction of RCPTs answered 451 4.7.1 (0..1; a retry may pass)")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option_function<double>(
          "--reject-fraction", [&sinkOptions](const double& v) { sinkOptions.rejectFraction = v; },
          "fraction of recipient addresses answered 550 5.1.1 (0..1; by address hash)")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option_function<std::uint32_t>(
      "--greeting-delay-ms",
      [&sinkOptions](const std::uint32_t& v) { sinkOptions.greetingDelayMs = v; },
      "wait this long before the 220 greeting (other connections are not held up)");
  sink->add_option_function<double>(
          "--drop-fraction", [&sinkOptions](const double& v) { sinkOptions.dropFraction = v; },
          "fraction of connections closed at once, without a greeting (0..1)")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option_function<std::size_t>(
      "--drop-after", [&sinkOptions](const std::size_t& v) { sinkOptions.dropAfter = v; },
      "close the connection, without a reply, at the MAIL after this many messages on it");
  sink->add_option_function<double>(
          "--connection-rate", [&sinkOptions](const double& v) { sinkOptions.connectionRate = v; },
          "messages per second on one connection; beyond: 421 4.7.0 rate limited, and close")
      ->check(CLI::NonNegativeNumber);
  sink->add_option_function<double>(
          "--rate-limit", [&sinkOptions](const double& v) { sinkOptions.rateLimit = v; },
          "messages per second over the whole sink; beyond: 421 4.7.0 rate limited, and close")
      ->check(CLI::NonNegativeNumber);
  sink->add_flag("--chunking", sinkOptions.chunking, "offer CHUNKING (BDAT, RFC 3030)");
  sink->add_flag("--tls", sinkOptions.tls,
                 "offer STARTTLS with a self-signed certificate made at start (localhost, "
                 "127.0.0.1)");
  sink->add_option("--tls-cert", sinkOptions.tlsCert,
                   "PEM certificate chain for STARTTLS (implies --tls; needs --tls-key)");
  sink->add_option("--tls-key", sinkOptions.tlsKey, "PEM private key of --tls-cert");

  salvo::bench::BenchOptions benchOptions;
  auto* bench = app.add_subcommand("bench", "measure delivery throughput against a local sink");
  bench->add_option("--recipients", benchOptions.recipients, "recipients to send")
      ->capture_default_str();
  bench->add_option("--domains", benchOptions.domains, "recipient domains")->capture_default_str();
  bench->add_option("--size", benchOptions.size, "approximate message size in octets")
      ->capture_default_str();
  bench->add_option("--target", benchOptions.target,
                    "HOST:PORT of an SMTP server (default: own sink)");
  bench->add_option("--threads", benchOptions.threads, "delivery loops (0 = one per core)");
  bench->add_option("--connections", benchOptions.connections, "connections per destination")
      ->capture_default_str();
  bench
      ->add_option("--max-in-flight", benchOptions.maxInFlight,
                   fmt::format("jobs leased at once (default {}, as delivery.max_in_flight)",
                               salvo::campaigns::DeliveryConfig{}.maxInFlight))
      ->check(CLI::Range(1, 100000000));
  bench->add_option("--keep", benchOptions.keepDir, "work in this directory and keep it");
  bench
      ->add_option("--dkim", benchOptions.dkim,
                   "sign with a key generated for the run: rsa, ed25519 or none")
      ->capture_default_str();
  bench->add_flag("--json", benchOptions.json, "machine-readable report");
  bench->add_flag("--tls", benchOptions.tls,
                  "STARTTLS on every connection (own sink: self-signed; --target must offer it)");

  std::string campaignName;
  auto* pause = app.add_subcommand("pause", "stop handing out a campaign's jobs");
  auto* resume = app.add_subcommand("resume", "hand out a paused campaign's jobs again");
  auto* cancel = app.add_subcommand("cancel", "cancel every job of a campaign not yet sent");
  auto* purge =
      app.add_subcommand("purge", "drop the job data of a finished campaign, keep its counters");
  for (auto* sub : {pause, resume, cancel, purge}) {
    sub->add_option("campaign", campaignName, "campaign id")->required();
    sub->add_option("--config", configPath, "configuration file");
  }

  auto* suppress =
      app.add_subcommand("suppress", "the suppression list: add, remove, list, import");
  suppress->require_subcommand(1);
  std::string suppressAddress;
  std::string suppressReason;
  std::string suppressFile;
  auto* suppressAdd = suppress->add_subcommand("add", "never send to this address");
  suppressAdd->add_option("address", suppressAddress, "email address")->required();
  suppressAdd->add_option("reason", suppressReason, "why (default: manual)");
  auto* suppressRemove = suppress->add_subcommand("remove", "send to this address again");
  suppressRemove->add_option("address", suppressAddress, "email address")->required();
  auto* suppressList = suppress->add_subcommand("list", "print address, time added (ms), reason");
  auto* suppressImport =
      suppress->add_subcommand("import", "add every address[,reason] line of a file");
  suppressImport->add_option("file", suppressFile, "file to import")->required();
  for (auto* sub : {suppress, suppressAdd, suppressRemove, suppressList, suppressImport}) {
    sub->add_option("--config", configPath, "configuration file");
  }

  // Options may come before or after the subcommand.
  for (auto* sub : {validate, submit, run, status, sink, bench, events}) {
    sub->add_option("--config", configPath, "configuration file");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : salvo::campaigns::kExitUsage;
  }

  if (*validate) {
    return cmdValidate(configPath, file);
  }
  if (*submit) {
    return cmdSubmit(configPath, file);
  }
  if (*run) {
    return cmdRun(configPath, untilIdle, verbose);
  }
  if (*status) {
    return cmdStatus(configPath, only, json);
  }
  if (*events) {
    return cmdEvents(configPath, eventsCampaign, eventsFormat);
  }
  if (*bench) {
    return salvo::bench::runBench(benchOptions, std::cout, std::cerr);
  }
  if (*sink) {
    return salvo::bench::runSinkCommand(sinkOptions, statsJson);
  }
  if (*suppressAdd) {
    std::vector<std::string> args{suppressAddress};
    if (!suppressReason.empty()) {
      args.push_back(suppressReason);
    }
    return cmdSuppress(configPath, "suppress-add", std::move(args));
  }
  if (*suppressRemove) {
    return cmdSuppress(configPath, "suppress-remove", {suppressAddress});
  }
  if (*suppressList) {
    return cmdSuppress(configPath, "suppress-list", {});
  }
  if (*suppressImport) {
    return cmdSuppress(configPath, "suppress-import", {suppressFile});
  }
  for (auto* sub : {pause, resume, cancel, purge}) {
    if (*sub) {
      return cmdControl(configPath, sub->get_name(), campaignName);
    }
  }
  return salvo::campaigns::kExitUsage;
}
