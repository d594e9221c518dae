"""`start_at`: a scheduled campaign's jobs are not due before their time. `retry:` in a
campaign: its deferred recipients are retried on the campaign's schedule and expire at its
max_age, while the daemon's own schedule (salvo.yaml) is long."""
import json
import signal

import harness


class Schedule(harness.Workspace):
    def submit(self, cid, start_at):
        campaign = self.write(f"{cid}.yaml", f"""\
id: {cid}
from: sender@origin.example
subject: "Hi"
text: "Hello {{{{email}}}}"
start_at: "{start_at}"
recipients:
  - email: a@d0.example
  - email: b@d1.example
""")
        self.salvo("submit", campaign, config=self.config, check=0)

    def test_future_start_waits_and_past_start_sends(self):
        sink = harness.Sink(self.dir)
        self.config = self.write_config(sink.port)
        self.submit("later", "2099-01-01T00:00:00Z")
        self.submit("now", "2000-01-01T00:00:00Z")
        r = self.salvo("run", "--until-idle", config=self.config, check=0)
        self.assertIn("2 delivered, 0 deferred", r.stdout)
        status = self.status(self.config)
        self.assertEqual((status["later"]["queued"], status["later"]["delivered"]), (2, 0))
        self.assertEqual((status["now"]["queued"], status["now"]["delivered"]), (0, 2))
        self.assertEqual(sink.stop()["messages"], 2)

    def test_campaign_retry_schedule_overrides_the_daemons(self):
        sink = harness.Sink(self.dir, maildir=False, extra=["--defer-rcpt", "defer-me"])
        # The daemon's schedule: an hour before the first retry, three days before expiry.
        config = self.write_config(sink.port, extra="""\
retry: {first_delay: 1h, max_delay: 4h, max_age: 3d}
""")
        for cid, retry in (("short", "retry: {first_delay: 1s, max_delay: 1s, max_age: 4s}\n"),
                           ("long", "")):
            self.salvo("submit", self.write(f"{cid}.yaml", f"""\
id: {cid}
from: sender@origin.example
subject: "Hi"
text: "Hello"
{retry}recipients:
  - email: defer-me@d0.example
  - email: ok@d1.example
"""), config=config, check=0)
        daemon = self.start("run", config=config)
        try:
            harness.wait_for(lambda: self.status(config)["short"]["expired"] == 1, timeout=60,
                             what="the short-schedule campaign's deferred recipient expiring")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        sink.stop()
        self.assertEqual(daemon.returncode, 0)

        def events(cid):
            out = self.salvo("events", cid, config=config, check=0).stdout
            return [json.loads(line) for line in out.splitlines()
                    if json.loads(line)["recipient"].startswith("defer-me")]
        short = events("short")
        types = [e["type"] for e in short]
        # Tried again every second until 4 s had passed since it was queued, then expired.
        self.assertEqual(types[-1], "expired", types)
        self.assertEqual(set(types[:-1]), {"deferred"}, types)
        self.assertGreaterEqual(len(types), 4, types)
        self.assertEqual([e["attempt"] for e in short], list(range(1, len(short) + 1)))
        self.assertEqual(short[-1]["category"], "message-expired")
        # The campaign without `retry:` follows the daemon's schedule: one try, next in an hour.
        self.assertEqual([e["type"] for e in events("long")], ["deferred"])
        status = self.status(config)
        self.assertEqual((status["long"]["deferred"], status["long"]["expired"]), (1, 0))
        self.assertEqual((status["short"]["delivered"], status["long"]["delivered"]), (1, 1))

    def test_bad_campaign_retry_is_a_data_error(self):
        text = """\
id: bad
from: sender@origin.example
subject: "Hi"
text: "Hello"
retry: {first_delay: 1h, max_delay: 5m, max_age: soon}
recipients:
  - email: a@d0.example
"""
        campaign = self.write("bad.yaml", text)
        r = self.salvo("validate", campaign)
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(f"{campaign}:5:50: 'max_age' has an invalid duration 'soon'", r.stderr)
        r = self.salvo("validate", self.write("bad.yaml", text.replace(", max_age: soon", "")))
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(f"{campaign}:5:37: 'max_delay' (300s) is shorter than 'first_delay' "
                      "(3600s)", r.stderr)


if __name__ == "__main__":
    harness.main()
