// The `salvo` command: parses arguments and wires the modules together. No logic of its
// own lives here: each subcommand calls one module entry point and maps its result to an
// exit code (sysexits) and output.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/sink.h"
#include "bench/sink_main.h"
#include "campaigns/campaign.h"
#include "campaigns/config.h"
#include "engine/dispatcher.h"
#include "engine/log.h"
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

int cmdSubmit(const std::string& configPath, const std::string& file) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  int rc = 0;
  auto store = openStore(config, false, rc);
  if (!store) {
    return rc;
  }
  auto result = salvo::engine::submitCampaign(file, *store, wallClockMs());
  if (result.exitCode != 0) {
    printDiagnostics(result.diagnostics);
    fmt::print(stderr, "salvo: submit failed; nothing was queued\n");
    return result.exitCode;
  }
  fmt::print("submitted campaign '{}' (#{}): {} recipient(s) queued\n", result.campaignId,
             result.campaignNumber, result.recipients);
  return 0;
}

int cmdRun(const std::string& configPath, bool untilIdle, bool verbose) {
  salvo::campaigns::SalvoConfig config;
  if (int rc = loadConfig(configPath, config)) {
    return rc;
  }
  if (verbose) {
    salvo::engine::setLogLevel(salvo::engine::LogLevel::Debug);
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
  salvo::engine::Dispatcher dispatcher(config, *store, &metrics, options);
  rc = dispatcher.run();
  const auto& s = dispatcher.summary();
  fmt::print("salvo run: {} delivered, {} deferred, {} bounced, {} expired ({} commit batches)\n",
             s.delivered, s.deferred, s.bounced, s.expired, s.batches);
  return rc;
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
                     {"deferrals", n.deferrals}});
    } else {
      fmt::print("{:<24} {:>8} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8}\n", c.name,
                 salvo::queue::campaignStateName(c.state), n.queued, n.inFlight, n.delivered,
                 n.deferred, n.bounced, n.expired);
    }
  }
  if (json) {
    fmt::print("{}\n", out.dump(2));
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

  // Options may come before or after the subcommand.
  for (auto* sub : {validate, submit, run, status, sink}) {
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
  if (*sink) {
    return salvo::bench::runSinkCommand(sinkOptions, statsJson);
  }
  return salvo::campaigns::kExitUsage;
}
