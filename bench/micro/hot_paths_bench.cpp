// Micro-benchmarks of the delivery hot paths, pure code only (no socket, no disk on the
// timed path):
//   BM_ReplyParser/{1,0}     a pipelined MAIL/RCPT/DATA + final reply block, fed whole (1)
//                            or one byte at a time (0)
//   BM_SessionTransaction    one pipelined transaction of a ClientSession against a
//                            scripted server (replies fed back as the server would send them)
//   BM_Render/{text,html,multipart}   Campaign::render of one ~4 KiB message
//   BM_DkimSign/{rsa,ed25519}         DkimSigner::sign of one ~4 KiB message
//   BM_RenderSigned/{rsa,ed25519}     render with the signature, as delivery does; the
//                                     AllCores variant on every core at once, one campaign
//                                     shared (against `openssl speed -multi N`)
//   BM_JobKeyCodec, BM_DueKeyCodec    queue key encode + decode
// Campaign files and DKIM keys are written to a temporary directory, removed at the end.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "campaigns/campaign.h"
#include "campaigns/diagnostics.h"
#include "campaigns/dkim.h"
#include "engine/smtp/body.h"
#include "engine/smtp/reply.h"
#include "engine/smtp/session.h"
#include "queue/keys.h"

namespace {

namespace fs = std::filesystem;
using namespace salvo;

// A directory for the campaign files and keys of this process, made on first use and
// removed at exit (the path is never destroyed, so the remover can use it).
const fs::path* madeDir = nullptr;

const fs::path& workDir() {
  if (madeDir == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/salvo-micro-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::abort();
    }
    madeDir = new fs::path(pattern);
  }
  return *madeDir;
}

struct RemoveWorkDir {
  ~RemoveWorkDir() {
    if (madeDir != nullptr) {
      std::error_code ec;
      fs::remove_all(*madeDir, ec);
    }
  }
} removeWorkDir;

const std::string kFiller =
    "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n";

std::string body(std::size_t octets, const std::string& indent) {
  std::string out;
  while (out.size() < octets) {
    out += indent + kFiller;
  }
  return out;
}

// ---- reply parser -----------------------------------------------------------------

void BM_ReplyParser(benchmark::State& state) {
  const bool whole = state.range(0) == 1;
  const std::string input =
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
      "250 2.0.0 Ok: queued as 4Xyz12AbcD\r\n";
  smtp::ReplyParser parser;
  std::vector<smtp::Reply> replies;
  for (auto _ : state) {
    replies.clear();
    if (whole) {
      parser.feed(input, replies);
    } else {
      for (char c : input) {
        parser.feed(std::string_view(&c, 1), replies);
      }
    }
    if (replies.size() != 4) {
      state.SkipWithError("the parser did not return 4 replies");
      break;
    }
    benchmark::DoNotOptimize(replies.data());
  }
  state.SetItemsProcessed(state.iterations() * 4);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(input.size()));
}
BENCHMARK(BM_ReplyParser)->Arg(1)->Arg(0)->ArgName("whole");

// ---- client session ---------------------------------------------------------------

class ScriptedSink : public smtp::SessionSink {
 public:
  void send(std::string_view bytes) override { sent += bytes.size(); }
  void transactionDone(smtp::TransactionResult&& result) override {
    if (result.disposition == smtp::Disposition::Delivered) {
      ++delivered;
    }
  }
  void ready() override { isReady = true; }
  void startTls() override {}
  void finished(const std::string&, smtp::FailureScope) override { isFinished = true; }
  // As SmtpConnection below the debug log level: no trace lines are built.
  bool tracing() const override { return false; }

  std::size_t sent = 0;
  std::uint64_t delivered = 0;
  bool isReady = false;
  bool isFinished = false;
};

void BM_SessionTransaction(benchmark::State& state) {
  smtp::SessionConfig config;
  config.heloName = "bench.example";
  config.tls = smtp::TlsPolicy::Disabled;
  ScriptedSink sink;
  smtp::ClientSession session(config, sink);
  session.onConnected();
  session.onBytes("220 sink.example ESMTP\r\n");
  session.onBytes(
      "250-sink.example\r\n250-PIPELINING\r\n250-SIZE 67108864\r\n250-8BITMIME\r\n"
      "250 ENHANCEDSTATUSCODES\r\n");
  std::string data;
  std::string error;
  std::string message = "From: a@x.example\r\nTo: b@y.example\r\nSubject: s\r\n\r\n";
  message += body(4000, "");
  if (!smtp::encodeBody(message, data, error) || !session.canAccept()) {
    state.SkipWithError("session setup failed");
    return;
  }
  const std::string_view envelopeReplies = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n";
  const std::string_view finalReply = "250 2.0.0 Ok: queued\r\n";
  std::uint64_t tag = 0;
  for (auto _ : state) {
    session.submit(smtp::Envelope{++tag, "a@x.example", "b@y.example", data});
    session.onBytes(envelopeReplies);
    session.onBytes(finalReply);
  }
  if (sink.delivered != tag || sink.isFinished) {
    state.SkipWithError("not every transaction was delivered");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(sink.delivered));
  state.SetBytesProcessed(static_cast<std::int64_t>(sink.sent));
}
BENCHMARK(BM_SessionTransaction);

// ---- render ---------------------------------------------------------------------------

std::shared_ptr<const campaigns::Campaign> loadBenchCampaign(const std::string& kind,
                                                             const std::string& dkimBlock) {
  fs::path file = workDir() / ("campaign-" + kind + std::to_string(dkimBlock.size()) + ".yaml");
  {
    std::ofstream yaml(file);
    yaml << "id: micro-" << kind << "\n"
         << "from: \"Salvo Bench <bench@salvo-bench.example>\"\n"
         << "subject: \"Benchmark message for {{name}}\"\n"
         << dkimBlock << "recipients:\n  - email: ann@alpha.example\n    name: Ann\n";
    if (kind == "text" || kind == "multipart") {
      yaml << "text: |\n  Hello {{name}},\n" << body(3600, "  ");
    }
    if (kind == "html" || kind == "multipart") {
      yaml << "html: |\n  <p>Hello {{name}},</p>\n" << body(3600, "  <p>é ");
    }
  }
  campaigns::Diagnostics diags;
  auto loaded = campaigns::loadCampaign(file.string(), diags);
  if (!loaded) {
    for (const auto& d : diags.items()) {
      std::fprintf(stderr, "%s\n", d.str().c_str());
    }
    return nullptr;
  }
  return loaded->campaign;
}

void runRender(benchmark::State& state, const campaigns::Campaign* campaign) {
  if (campaign == nullptr) {
    state.SkipWithError("cannot load the campaign");
    return;
  }
  std::vector<std::string> values = {"Ann"};
  std::string out;
  std::uint64_t seq = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    campaign->render({1, ++seq}, "ann@alpha.example", values, 1'764'000'000'000, out);
    bytes += out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

void BM_Render(benchmark::State& state, const char* kind) {
  auto campaign = loadBenchCampaign(kind, "");
  runRender(state, campaign.get());
}
BENCHMARK_CAPTURE(BM_Render, text, "text");
BENCHMARK_CAPTURE(BM_Render, html, "html");
BENCHMARK_CAPTURE(BM_Render, multipart, "multipart");

// ---- DKIM -------------------------------------------------------------------------------

std::string writeKey(const char* kind) {
  EVP_PKEY* key = std::string(kind) == "rsa"
                      ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) {
    return "";
  }
  fs::path path = workDir() / (std::string(kind) + ".pem");
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::FILE* f = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
  bool ok = f != nullptr && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  if (f != nullptr) {
    ok = std::fclose(f) == 0 && ok;
  }
  EVP_PKEY_free(key);
  return ok ? path.string() : "";
}

// The signer alone, over a rendered message's header block and body.
void BM_DkimSign(benchmark::State& state, const char* kind) {
  campaigns::DkimSettings settings;
  settings.domain = "salvo-bench.example";
  settings.selector = "bench";
  settings.keyFile = writeKey(kind);
  settings.algorithm = std::string(kind) == "rsa" ? campaigns::DkimAlgorithm::RsaSha256
                                                  : campaigns::DkimAlgorithm::Ed25519Sha256;
  std::string error;
  auto signer = campaigns::DkimSigner::load(settings, error);
  auto campaign = loadBenchCampaign("text", "");
  if (!signer || !campaign) {
    state.SkipWithError(("cannot load the key or campaign: " + error).c_str());
    return;
  }
  std::string message;
  campaign->render({1, 1}, "ann@alpha.example", {"Ann"}, 1'764'000'000'000, message);
  auto split = message.find("\r\n\r\n");
  std::string_view headers = std::string_view(message).substr(0, split + 2);
  std::string_view bodyPart = std::string_view(message).substr(split + 4);
  std::string out;
  for (auto _ : state) {
    out.clear();
    if (!signer->sign(headers, bodyPart, 1'764'000'000'000, out, error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_DkimSign, rsa, "rsa");
BENCHMARK_CAPTURE(BM_DkimSign, ed25519, "ed25519");

// Render with signing, as delivery does it.
std::shared_ptr<const campaigns::Campaign> loadSignedCampaign(const char* kind) {
  std::string key = writeKey(kind);
  std::string block =
      "dkim:\n  domain: salvo-bench.example\n  selector: bench\n  key_file: " + key +
      "\n  algorithm: " + (std::string(kind) == "rsa" ? "rsa-sha256" : "ed25519-sha256") + "\n";
  return loadBenchCampaign("text", block);
}

void BM_RenderSigned(benchmark::State& state, const char* kind) {
  auto campaign = loadSignedCampaign(kind);
  runRender(state, campaign.get());
}
BENCHMARK_CAPTURE(BM_RenderSigned, rsa, "rsa");
BENCHMARK_CAPTURE(BM_RenderSigned, ed25519, "ed25519");

// Every thread renders with the one campaign (and key) of its kind, as the render pool's
// threads share a campaign; loaded once, by whichever thread comes first.
void BM_RenderSignedAllCores(benchmark::State& state, const char* kind) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const campaigns::Campaign>> loaded;
  std::shared_ptr<const campaigns::Campaign> campaign;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& c = loaded[kind];
    if (!c) {
      c = loadSignedCampaign(kind);
    }
    campaign = c;
  }
  runRender(state, campaign.get());
}
const int kCores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
BENCHMARK_CAPTURE(BM_RenderSignedAllCores, rsa, "rsa")->Threads(kCores)->UseRealTime();
BENCHMARK_CAPTURE(BM_RenderSignedAllCores, ed25519, "ed25519")->Threads(kCores)->UseRealTime();

// ---- queue key codec ----------------------------------------------------------------

void BM_JobKeyCodec(benchmark::State& state) {
  queue::JobId id{7, 0};
  std::uint64_t sum = 0;
  for (auto _ : state) {
    ++id.seq;
    auto key = queue::keys::jobKey(id);
    auto back = queue::keys::decodeJobKey(key.view());
    sum += back->seq;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobKeyCodec);

void BM_DueKeyCodec(benchmark::State& state) {
  queue::JobId id{7, 0};
  std::int64_t sum = 0;
  for (auto _ : state) {
    ++id.seq;
    auto key = queue::keys::dueKey(1'764'000'000'000 + static_cast<std::int64_t>(id.seq), id);
    auto back = queue::keys::decodeDueKey(key.view());
    sum += back->dueMs;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DueKeyCodec);

}  // namespace
