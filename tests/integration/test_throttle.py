"""Destination throttling measured at the sink: a destination limited to 20 messages per
second and 2 connections never exceeds either while another destination runs unthrottled;
a sink that answers 421 after a few messages per connection makes Salvo back off (the
shaping rule fires, the connection limit holds) and everything is delivered on retry."""
import json

import harness


class Throttle(harness.Workspace):
    def config(self, routes, extra="", metrics="off"):
        return self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "{metrics}"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 8
routes:
{routes}
{extra}""")

    def test_limited_destination_is_never_exceeded(self):
        slow = harness.Sink(self.dir, maildir=False, extra=["--measure-rate"])
        fast = harness.Sink(self.dir, maildir=False, extra=["--measure-rate"])
        config = self.config(f"""\
  - match: slow.example
    host: 127.0.0.1
    port: {slow.port}
  - match: "*.example"
    host: 127.0.0.1
    port: {fast.port}""", extra="""\
limits:
  - match: slow.example
    messages_per_second: 20
    max_connections: 2
""")
        n_slow, n_fast = 50, 400
        recipients = [f"s{i}@slow.example" for i in range(n_slow)] + \
                     [f"f{i}@fast.example" for i in range(n_fast)]
        self.salvo("submit", self.write("c.yaml", harness.campaign_yaml("mixed", recipients)),
                   config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        self.assertIn(f"{n_slow + n_fast} delivered", r.stdout)
        s, f = slow.stop(), fast.stop()
        self.assertEqual((s["messages"], f["messages"]), (n_slow, n_fast))
        self.assertLessEqual(s["peak_connections"], 2)
        # Sends are spaced 50 ms apart; allow one message of skew at each end of a window
        # for arrival jitter at the sink.
        self.assertLessEqual(s["peak_messages_per_second"], 22)
        # The other destination is not held to that limit.
        self.assertGreater(f["peak_messages_per_second"], 22)

    def test_421_per_connection_limit_backs_off_and_recovers(self):
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--reply-421-every", "3", "--measure-rate"])
        port = harness.free_port()
        config = self.config(f"""\
  - match: "*.example"
    host: 127.0.0.1
    port: {sink.port}""", metrics=f"127.0.0.1:{port}", extra=f"""\
retry:
  first_delay: 1s
  max_delay: 1s
policy:
  shaping_rules: {self.quick_shaping_rules("3s")}
limits:
  - match: "*.example"
    max_connections: 3
    failed_cohort_limit: 0
""")
        n = 60
        self.salvo("submit", self.write(
            "c.yaml", harness.campaign_yaml("busy", [f"r{i}@d.example" for i in range(n)])),
            config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: self.status(config)["busy"]["delivered"] == n, timeout=90,
                         what="every message delivered despite the 421s")
        text = harness.scrape(port)
        self.assertGreater(harness.metric(text, "salvo_smtp_replies_total", **{"class": "4xx"}), 0)
        self.assertGreater(harness.metric(text, "salvo_shaping_actions_total", action="scale_rate"), 0)
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        stats = sink.stop()
        self.assertEqual(stats["messages"], n)
        self.assertLessEqual(stats["peak_connections"], 3)
        # Every connection carried at most 3 messages: at least n / 3 of them were needed.
        self.assertGreaterEqual(stats["connections"], n // 3)
        events = [json.loads(line) for line in
                  self.salvo("events", "busy", config=config, check=0).stdout.splitlines()]
        self.assertEqual(sum(e["type"] == "delivered" for e in events), n)
        self.assertTrue(any(e["type"] == "deferred" and e["code"] == 421 for e in events))

    def test_campaign_rate_applies_on_top(self):
        sink = harness.Sink(self.dir, maildir=False, extra=["--measure-rate"])
        config = self.config(f"""\
  - match: "*.example"
    host: 127.0.0.1
    port: {sink.port}""")
        text = harness.campaign_yaml("paced", [f"p{i}@d{i % 4}.example" for i in range(30)])
        self.salvo("submit", self.write("c.yaml", text + "rate: 10/s\n"), config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        self.assertIn("30 delivered", r.stdout)
        stats = sink.stop()
        self.assertEqual(stats["messages"], 30)
        self.assertLessEqual(stats["peak_messages_per_second"], 12)

    def test_bad_limits_are_config_errors(self):
        config = self.config("""\
  - match: "*.example"
    host: 127.0.0.1
    port: 1""", extra="""\
limits:
  - match: "*.example"
    messages_per_second: fast
  - mx: "*.google.com"
    max_conections: 2
""")
        r = self.salvo("run", "--until-idle", config=config)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, r"salvo\.yaml:\d+:\d+: .*messages_per_second")
        self.assertRegex(r.stderr, r"salvo\.yaml:\d+:\d+: .*max_conections")
        config = self.config("""\
  - match: "*.example"
    host: 127.0.0.1
    port: 1""", extra="""\
limits:
  - max_connections: 2
policy:
  shaping_rules: missing.yaml
""")
        r = self.salvo("run", "--until-idle", config=config)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("exactly one of 'match'", r.stderr)


if __name__ == "__main__":
    harness.main()
