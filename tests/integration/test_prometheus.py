"""A real Prometheus server (Debian's /usr/bin/prometheus) scrapes a running `salvo run`
over loopback while it delivers a campaign to Salvo's sink; its HTTP API must then report
the delivered count. Every PromQL expression of the Grafana dashboard is also evaluated by
that server: each must be valid PromQL, and those over the families the daemon fills
today must return data."""
import json
import os
import re
import signal
import subprocess
import urllib.parse
import urllib.request

import harness

PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "metrics",
                         "grafana", "salvo.json")
RECIPIENTS = 60
# Families `salvo run` fills before any policy wiring: their panels must show data.
FILLED_TODAY = {"salvo_messages_total", "salvo_queue_jobs", "salvo_build_info",
                "salvo_outcome_batches_total"}


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
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


class PrometheusScrape(harness.Workspace):
    def test_prometheus_scrapes_a_running_daemon(self):
        self.assertTrue(os.access(PROMETHEUS, os.X_OK),
                        f"{PROMETHEUS} missing: run scripts/install-deps (package prometheus)")
        inline = "\n".join(f"  - email: user{i}@d{i % 3}.example" for i in range(RECIPIENTS))
        campaign = self.write("c.yaml", f"""\
id: scraped
from: sender@origin.example
subject: Hello
text: Hello there
recipients:
{inline}
""")
        sink = harness.Sink(self.dir, maildir=False)
        metrics_port = harness.free_port()
        config = self.write_config(sink.port, metrics=f"127.0.0.1:{metrics_port}")
        self.salvo("submit", campaign, config=config, check=0)
        daemon = self.start("run", config=config)
        prometheus = Prometheus(self.dir, metrics_port)
        try:
            harness.wait_for(prometheus.ready, timeout=60, what="prometheus ready")
            harness.wait_for(
                lambda: scalar_values(prometheus.query('up{job="salvo"}')) == [1.0],
                timeout=60, what="prometheus scraping salvo (up == 1)")

            def delivered():
                values = scalar_values(prometheus.query('salvo_messages_total{result="delivered"}'))
                return values == [float(RECIPIENTS)]
            harness.wait_for(delivered, timeout=90,
                             what=f"prometheus reporting {RECIPIENTS} delivered")
            # A few more scrapes, so that rate() over the dashboard's window has samples.
            scrapes = lambda: scalar_values(prometheus.query(
                'count_over_time(salvo_build_info[1m])'))
            harness.wait_for(lambda: scrapes() and scrapes()[0] >= 6, timeout=60,
                             what="six scrapes")

            for title, expr in dashboard_exprs():
                promql = expr.replace("$__rate_interval", "1m")
                answer = prometheus.query(promql)
                self.assertIsNotNone(answer, f"no answer for {title}: {promql}")
                self.assertEqual(answer.get("status"), "success",
                                 f"panel {title!r}: invalid PromQL {promql}: {answer}")
                families = set(re.findall(r"\bsalvo_[a-z0-9_]+", expr))
                if families <= FILLED_TODAY:
                    self.assertTrue(answer["data"]["result"],
                                    f"panel {title!r} shows no data: {promql}")
        finally:
            prometheus.stop()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            sink.stop()
        self.assertEqual(daemon.returncode, 0)


if __name__ == "__main__":
    harness.main()
