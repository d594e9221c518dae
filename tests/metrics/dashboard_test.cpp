// The Grafana dashboard and the metrics catalogue must describe the families that exist:
// every PromQL expression may only name families this module registers, and
// docs/metrics.md must list every family.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "metrics/metrics.h"

namespace salvo::metrics {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Family names and their types, as Metrics defines them.
std::map<std::string, std::string> families() {
  Metrics metrics;
  std::map<std::string, std::string> out;
  for (const FamilyInfo& f : metrics.families()) {
    EXPECT_TRUE(out.emplace(f.name, f.type).second) << "defined twice: " << f.name;
  }
  return out;
}

void collectExprs(const nlohmann::json& j, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "expr" && it->is_string()) {
        out.push_back(it->get<std::string>());
      } else {
        collectExprs(*it, out);
      }
    }
  } else if (j.is_array()) {
    for (const auto& e : j) {
      collectExprs(e, out);
    }
  }
}

TEST(DashboardTest, EveryExpressionNamesOnlyExistingFamilies) {
  const auto json = nlohmann::json::parse(readFile(SALVO_SOURCE_DIR "/metrics/grafana/salvo.json"),
                                          nullptr, false);
  ASSERT_FALSE(json.is_discarded()) << "metrics/grafana/salvo.json is not valid JSON";
  const auto known = families();
  std::vector<std::string> exprs;
  collectExprs(json, exprs);
  ASSERT_GE(exprs.size(), 10u);
  const std::regex name(R"(\bsalvo_[a-z0-9_]+)");
  std::set<std::string> used;
  for (const std::string& expr : exprs) {
    int found = 0;
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name);
         it != std::sregex_iterator(); ++it) {
      std::string n = it->str();
      // Histogram series carry suffixes on the family name.
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s(suffix);
        if (!known.count(n) && n.size() > s.size() && n.ends_with(s)) {
          const std::string base = n.substr(0, n.size() - s.size());
          if (known.count(base) && known.at(base) == "histogram") {
            n = base;
          }
        }
      }
      EXPECT_TRUE(known.count(n)) << "unknown metric " << it->str() << " in: " << expr;
      used.insert(n);
      ++found;
    }
    EXPECT_GT(found, 0) << "an expression naming no Salvo metric: " << expr;
  }
  // The panels the issue asks for are there.
  for (const char* family :
       {"salvo_messages_total", "salvo_bounces_total", "salvo_deferrals_total", "salvo_queue_jobs",
        "salvo_connections_open", "salvo_delivery_latency_seconds", "salvo_suspensions_total"}) {
    EXPECT_TRUE(used.count(family)) << "no panel uses " << family;
  }
}

TEST(DashboardTest, IsReadyForFileProvisioning) {
  const auto json = nlohmann::json::parse(readFile(SALVO_SOURCE_DIR "/metrics/grafana/salvo.json"),
                                          nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json.value("uid", ""), "salvo-overview");  // stable: links and provisioning
  EXPECT_FALSE(json.contains("id") && !json["id"].is_null()) << "a fixed id breaks import";
  bool hasDatasourceVariable = false;
  for (const auto& v : json["templating"]["list"]) {
    if (v.value("type", "") == "datasource" && v.value("name", "") == "datasource" &&
        v.value("query", "") == "prometheus") {
      hasDatasourceVariable = true;
    }
  }
  EXPECT_TRUE(hasDatasourceVariable);
  std::set<int> ids;
  for (const auto& panel : json["panels"]) {
    EXPECT_TRUE(ids.insert(panel.value("id", 0)).second) << "duplicate panel id";
    EXPECT_EQ(panel["datasource"].value("uid", ""), "${datasource}") << panel.value("title", "");
    for (const auto& target : panel["targets"]) {
      EXPECT_EQ(target["datasource"].value("uid", ""), "${datasource}") << panel.value("title", "");
    }
  }
}

TEST(CatalogueTest, DocsListEveryFamilyWithItsType) {
  const std::string doc = readFile(SALVO_SOURCE_DIR "/docs/metrics.md");
  ASSERT_FALSE(doc.empty()) << "docs/metrics.md is missing";
  const auto all = families();
  EXPECT_EQ(all.size(), 18u);
  for (const auto& [name, type] : all) {
    // A catalogue row: | `name` | type | labels | meaning |
    EXPECT_NE(doc.find("| `" + name + "` | " + type + " |"), std::string::npos)
        << "docs/metrics.md has no row for " << name << " (" << type << ")";
  }
}

TEST(CatalogueTest, NamesFollowPrometheusConventions) {
  for (const auto& [name, type] : families()) {
    EXPECT_EQ(name.rfind("salvo_", 0), 0u) << name;
    if (type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    } else {
      EXPECT_FALSE(name.ends_with("_total")) << name;
    }
    if (type == "histogram") {
      EXPECT_TRUE(name.ends_with("_seconds") || name.ends_with("_bytes")) << name;
    }
  }
}

}  // namespace
}  // namespace salvo::metrics
