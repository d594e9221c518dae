"""Adaptive sending (issue 6): a sink that answers "421 4.7.0 rate limited, slow down"
beyond a sink-wide rate makes Salvo slow down and then recover, with fewer rejections than
a fixed-rate sender gets.

The same campaign and configuration run twice against a fresh sink: once with the shipped
shaping rules (examples/policy/shaping-rules.yaml: the 421 matches `gmail-unusual-rate`,
which halves the destination's messages-per-second limit for 30 minutes, compounding on
each hit) and once with an empty rules file (a fixed-rate sender). Salvo runs as a daemon,
not with --until-idle: the 421'd messages are retried a second later, and shaping state
lives in the running process, so both runs keep one process until every recipient is
delivered."""
import os
import time

import harness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED_RULES = os.path.join(REPO, "examples", "policy", "shaping-rules.yaml")

N = 200
SINK_RATE = 100     # messages per second the sink accepts, over all connections
SENDER_RATE = 400   # the destination's configured messages-per-second limit


class Adaptive(harness.Workspace):
    def run_once(self, label, rules_file):
        """Delivers N recipients against a rate-limited sink; returns (sink stats, status)."""
        os.makedirs(self.path(label))
        sink = harness.Sink(self.path(label), maildir=False,
                            extra=["--rate-limit", str(SINK_RATE)])
        config = self.write(f"{label}.yaml", f"""\
data_dir: {self.path(label, 'data')}
metrics:
  listen: "off"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 4
routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {sink.port}
retry:
  first_delay: 1s
  max_delay: 1s
policy:
  shaping_rules: {rules_file}
limits:
  - match: "*.example"
    messages_per_second: {SENDER_RATE}
    failed_cohort_limit: 0
""")
        recipients = [f"r{i}@d.example" for i in range(N)]
        self.salvo("submit", self.write(f"{label}-c.yaml", harness.campaign_yaml(label, recipients)),
                   config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: self.status(config)[label]["delivered"] == N, timeout=60,
                         what=f"{label}: every recipient delivered")
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        status = self.status(config)[label]
        stats = sink.stop()
        return stats, status

    def test_shaping_backs_off_and_gets_fewer_421s(self):
        self.assertTrue(os.path.isfile(SHIPPED_RULES), SHIPPED_RULES)
        # The shipped rules with their recovery shortened from 30 minutes to 3 seconds, so
        # the run shows the whole cycle: cut on the 421s, then climb back.
        quick_rules = self.quick_shaping_rules("3s")
        empty_rules = self.write("no-shaping.yaml", "rules: []\n")
        t0 = time.monotonic()
        shaped, shaped_status = self.run_once("shaped", quick_rules)
        t1 = time.monotonic()
        fixed, fixed_status = self.run_once("fixed", empty_rules)
        t2 = time.monotonic()
        print(f"\n421 rate-limit replies: {shaped['rateLimited']} with shaping, "
              f"{fixed['rateLimited']} without "
              f"(attempts {shaped_status['attempts']} vs {fixed_status['attempts']}; "
              f"{t1 - t0:.1f} s vs {t2 - t1:.1f} s to deliver all)")
        for stats, status in ((shaped, shaped_status), (fixed, fixed_status)):
            self.assertEqual((status["delivered"], status["bounced"], status["queued"],
                              status["in_flight"], status["deferred"]), (N, 0, 0, 0, 0))
            self.assertEqual(stats["messages"], N)
        # Both runs hit the limit (the sender starts at 5x the sink's rate)...
        self.assertGreater(shaped["rateLimited"], 0)
        self.assertGreater(fixed["rateLimited"], 0)
        # ...but only the shaped one slowed down.
        self.assertLess(shaped["rateLimited"], fixed["rateLimited"])


if __name__ == "__main__":
    harness.main()
