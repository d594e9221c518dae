"""A real Prometheus server (Debian's /usr/bin/prometheus) scrapes a running `salvo run`
over loopback while it delivers to Salvo's sink, and evaluates EVERY PromQL expression of
the Grafana dashboard (metrics/grafana/salvo.json, its variables substituted): each must be
valid and return data. The run is built to fill every family: the sink rejects (bounces)
and defers some recipients; a shaping rule suspends a campaign on those deferrals; a
per-destination rate limit throttles; a campaign with a short retry schedule expires its
deferred recipients; an address suppressed after submit is suppressed at send. The
campaigns are paused until Prometheus scrapes, so every counter moves under its eyes and
rate() sees the change."""
import json
import math
import os
import signal
import subprocess
import urllib.parse
import urllib.request

import harness

PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "metrics",
                         "grafana", "salvo.json")
DELIVERED = 80  # at 20 messages per second: about four seconds of deliveries, many scrapes
# Grafana's built-in variables, as the test evaluates them (the scrape interval is 1 s).
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "1s", "__range": "1m"}


def dashboard_exprs():
    """(panel title, PromQL) for every target, with the dashboard's variables substituted."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    values = dict(BUILTIN_VARIABLES)
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "datasource":
            continue  # picks the data source, never appears in an expression
        current = var.get("current", {}).get("value")
        values[var["name"]] = current if isinstance(current, str) and current else ".*"
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(values, key=len, reverse=True):
                expr = expr.replace("${" + name + "}", values[name]).replace("$" + name,
                                                                              values[name])
            out.append((panel["title"], expr))
    return out


class Prometheus:
    def __init__(self, workdir, target_port):
        self.port = harness.free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: salvo
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        self.log = open(os.path.join(workdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 400 for bad PromQL: the body says why
            return json.load(e)
        except OSError:
            return None

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def scalar_values(answer):
    if not answer or answer.get("status") != "success":
        return []
    return [float(r["value"][1]) for r in answer["data"]["result"]]


SHAPING_RULES = """\
rules:
  - name: deferred-recipients-suspend-their-campaign
    code: '451'
    text: 'defer-me[0-9]@'
    action: suspend_campaign
    duration: 1s
"""


def campaign_yaml(cid, recipients, extra=""):
    inline = "\n".join(f"  - email: {r}" for r in recipients)
    return f"""\
id: {cid}
from: sender@origin.example
subject: Hello
text: Hello there
{extra}recipients:
{inline}
"""


class PrometheusScrape(harness.Workspace):
    def test_every_dashboard_expression_returns_data(self):
        self.assertTrue(os.access(PROMETHEUS, os.X_OK),
                        f"{PROMETHEUS} missing: run scripts/install-deps (package prometheus)")
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--reject-rcpt", "reject-me", "--defer-rcpt", "defer-me"])
        metrics_port = harness.free_port()
        self.write("shaping.yaml", SHAPING_RULES)
        config = self.write_config(sink.port, metrics=f"127.0.0.1:{metrics_port}", extra="""\
retry: {first_delay: 1s, max_delay: 1s}
limits:
  - match: "*.example"
    messages_per_second: 20
policy:
  shaping_rules: shaping.yaml
""")
        ok = [f"user{i}@d{i % 4}.example" for i in range(DELIVERED)]
        # "scraped": delivered, bounced (hard: 5.1.1), one deferred and retried every second
        # (the daemon's schedule), one suppressed at send.
        scraped = ok + ["reject-me1@d1.example", "reject-me2@d2.example",
                        "defer-me@d3.example", "late-complaint@d0.example"]
        self.salvo("submit", self.write("scraped.yaml", campaign_yaml("scraped", scraped)),
                   config=config, check=0)
        # "expiring": its own schedule gives up after a second; it was queued before that.
        # The sink defers its recipients, and the shaping rule (matching their addresses
        # only) suspends the campaign at the destination.
        self.salvo("submit", self.write("expiring.yaml", campaign_yaml(
            "expiring", ["defer-me1@d0.example", "defer-me2@d1.example"],
            "retry: {first_delay: 1s, max_delay: 1s, max_age: 1s}\n")), config=config, check=0)
        self.salvo("suppress", "add", "late-complaint@d0.example", "complaint", config=config,
                   check=0)
        for cid in ("scraped", "expiring"):
            self.salvo("pause", cid, config=config, check=0)

        daemon = self.start("run", config=config)
        prometheus = Prometheus(self.dir, metrics_port)
        try:
            harness.wait_for(prometheus.ready, timeout=60, what="prometheus ready")
            harness.wait_for(
                lambda: scalar_values(prometheus.query('up{job="salvo"}')) == [1.0],
                timeout=60, what="prometheus scraping salvo (up == 1)")
            for cid in ("scraped", "expiring"):
                self.salvo("resume", cid, config=config, check=0)

            def results():
                answer = prometheus.query("sum by (result) (salvo_messages_total)")
                if not answer or answer.get("status") != "success":
                    return {}
                return {r["metric"]["result"]: float(r["value"][1])
                        for r in answer["data"]["result"]}
            want = {"delivered": DELIVERED, "bounced": 2, "expired": 2, "suppressed": 1}
            harness.wait_for(
                lambda: all(results().get(k) == v for k, v in want.items())
                and results().get("deferred", 0) >= 2,
                timeout=60, what=f"prometheus reporting every result {want} and deferrals")
            harness.wait_for(
                lambda: sum(scalar_values(prometheus.query("salvo_retries_total"))) >= 2,
                timeout=60, what="prometheus reporting retries")
            # A few more scrapes, so that rate() over the dashboard's window has samples.
            scrapes = lambda: scalar_values(prometheus.query(
                'count_over_time(salvo_build_info[1m])'))
            harness.wait_for(lambda: scrapes() and scrapes()[0] >= 6, timeout=60,
                             what="six scrapes")

            for title, promql in dashboard_exprs():
                self.assertNotIn("$", promql, f"panel {title!r}: unknown variable in {promql}")
                answer = prometheus.query(promql)
                self.assertIsNotNone(answer, f"no answer for {title}: {promql}")
                self.assertEqual(answer.get("status"), "success",
                                 f"panel {title!r}: invalid PromQL {promql}: {answer}")
                values = scalar_values(answer)
                self.assertTrue(values, f"panel {title!r} shows no data: {promql}")
                self.assertTrue(any(not math.isnan(v) for v in values),
                                f"panel {title!r} shows only NaN: {promql}: {answer}")
            # The families behind the policy panels, by the label values this run produced.
            for promql, label, expected in (
                    ('sum by (kind) (salvo_suspensions_total)', "kind", "campaign"),
                    ('sum by (action) (salvo_shaping_actions_total)', "action",
                     "suspend_campaign"),
                    ('sum by (limit) (salvo_throttled_total)', "limit", "messages_per_second"),
                    ('sum by (category) (salvo_bounces_total)', "category", "message-expired"),
                    ('sum by (category) (salvo_bounces_total)', "category", "bad-mailbox")):
                answer = prometheus.query(promql)
                labels = {r["metric"].get(label) for r in answer["data"]["result"]}
                self.assertIn(expected, labels, f"{promql}: {answer}")
        finally:
            prometheus.stop()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            sink.stop()
        self.assertEqual(daemon.returncode, 0)


if __name__ == "__main__":
    harness.main()
