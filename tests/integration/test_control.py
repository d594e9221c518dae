"""Queue control with and without a running daemon: `salvo submit` while `salvo run` holds
the store (through the control spool in <data_dir>/control/), pause / resume / cancel on
a running daemon, the same commands on a stopped one, and their errors."""
import datetime
import json
import os
import signal

import harness


def utc_now():
    """Now in the event log's time format (2026-12-07T11:34:00.123Z)."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def campaign_yaml(cid, csv):
    return f"""\
id: {cid}
from: "Control <sender@origin.example>"
subject: "Hi {{{{n}}}}"
text: |
  Number {{{{n}}}}.
recipients_csv: {csv}
"""


class Control(harness.Workspace):
    def make_campaign(self, cid, n):
        rows = ["email,n"] + [f"{cid}{i}@d{i % 5}.example,{i}" for i in range(n)]
        self.write(f"{cid}.csv", "\n".join(rows) + "\n")
        return self.write(f"{cid}.yaml", campaign_yaml(cid, f"{cid}.csv"))

    def config_with_window(self, sink_port, max_in_flight, metrics="off"):
        config = self.write_config(sink_port, metrics=metrics)
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("delivery:\n", f"delivery:\n  max_in_flight: {max_in_flight}\n", 1))
        return config

    def test_commands_reach_a_running_daemon(self):
        sink = harness.Sink(self.dir, maildir=False)
        config = self.config_with_window(sink.port, 500)
        big = self.make_campaign("big", 3000)
        small = self.make_campaign("small", 50)
        doomed = self.make_campaign("doomed", 3000)
        # Paused before any daemon runs (the CLI opens the store itself).
        self.salvo("submit", big, config=config, check=0)
        r = self.salvo("pause", "big", config=config, check=0)
        self.assertIn("campaign 'big' paused", r.stdout)

        daemon = self.start("run", config=config)
        # The daemon logs this line once it holds the store.
        def daemon_ready():
            with open(self.path("proc-0.log")) as f:
                return "delivery loop(s)" in f.read()
        harness.wait_for(daemon_ready, what="the daemon to open the store")
        # A second daemon on the same data dir is refused, and harms nothing.
        r = self.salvo("run", "--until-idle", config=config, check=75)
        self.assertIn("in use by another salvo process", r.stderr)
        # Submitted through the running daemon, and delivered, while big stays paused.
        r = self.salvo("submit", small, config=config, check=0)
        self.assertIn("50 recipient(s) queued", r.stdout)
        harness.wait_for(lambda: self.status(config)["small"]["delivered"] == 50,
                         what="the small campaign delivered")
        paused = self.status(config)["big"]
        self.assertEqual((paused["state"], paused["queued"], paused["delivered"]),
                         ("paused", 3000, 0))

        # Suppressed after submit, through the daemon: skipped at send time.
        r = self.salvo("suppress", "add", "BIG7@d2.example", "complaint", config=config, check=0)
        self.assertIn("BIG7@d2.example suppressed", r.stdout)
        r = self.salvo("suppress", "list", config=config, check=0)
        self.assertRegex(r.stdout, r"^big7@d2\.example\t\d+\tcomplaint\n$")
        r = self.salvo("resume", "big", config=config, check=0)
        self.assertIn("campaign 'big' resumed", r.stdout)
        harness.wait_for(lambda: self.status(config)["big"]["delivered"] == 2999,
                         timeout=120, what="big delivered after resume")
        s = self.status(config)["big"]
        self.assertEqual((s["suppressed"], s["queued"], s["in_flight"]), (1, 0, 0))

        # Cancel a paused campaign: every waiting job is counted as cancelled.
        self.salvo("submit", doomed, config=config, check=0)
        self.salvo("pause", "doomed", config=config, check=0)
        r = self.salvo("cancel", "doomed", config=config, check=0)
        self.assertRegex(r.stdout, r"campaign 'doomed' cancelled: \d+ waiting job\(s\) cancelled")
        harness.wait_for(lambda: self.status(config)["doomed"]["in_flight"] == 0,
                         what="doomed's jobs in flight to finish")
        s = self.status(config)["doomed"]
        self.assertEqual(s["state"], "cancelled")
        self.assertEqual(s["queued"] + s["deferred"], 0)
        self.assertEqual(s["delivered"] + s["cancelled"], 3000)
        r = self.salvo("purge", "doomed", config=config, check=0)
        self.assertIn("campaign 'doomed' purged", r.stdout)
        self.assertEqual(self.status(config)["doomed"]["cancelled"], s["cancelled"])

        # Errors come back from the daemon with their exit codes.
        r = self.salvo("pause", "nope", config=config, check=66)
        self.assertIn("no campaign 'nope'", r.stderr)
        r = self.salvo("resume", "doomed", config=config, check=65)
        self.assertIn("campaign 'doomed' is cancelled", r.stderr)
        # Resubmitting is idempotent; the same id with other content is refused.
        r = self.salvo("submit", small, config=config, check=0)
        self.assertIn("campaign 'small' (#2) was already submitted with these 50 recipient(s)",
                      r.stdout)
        self.assertEqual(self.status(config)["small"]["jobs"], 50)
        with open(small) as f:
            changed = f.read().replace("Hi ", "Hello ")
        r = self.salvo("submit", self.write("small2.yaml", changed), config=config, check=65)
        self.assertIn("campaign 'small' already exists with different content", r.stderr)

        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        sink.stop()
        self.assertEqual(os.listdir(self.path("data", "control")), [])

    def test_pause_reaches_jobs_held_in_memory(self):
        # One fast destination: the dispatcher holds up to max_in_flight / 4 (2,000) jobs on
        # its loop and, while it drains fast, up to three times as many leased in its ready
        # queue. After a pause those in the ready queue and those on the loop but not yet in
        # a session go back to the queue; the bound allows the whole loop's share.
        sink = harness.Sink(self.dir, maildir=False)
        self.addCleanup(sink.proc.kill)  # also ends it if it is still stopped
        port = harness.free_port()
        config = self.config_with_window(sink.port, 8000, metrics=f"127.0.0.1:{port}")
        total, on_loop = 100000, 2000
        self.salvo("submit", self.make_campaign("fast", total), config=config, check=0)
        daemon = self.start("run", config=config)
        # Once the first results have set the drain rate (the ready queue forms then), the
        # sink is stopped: the jobs held in memory stay held, however long `salvo pause` takes
        # to start (seconds on a busy machine under ASan, where an unstopped sink finished all
        # 100,000 first). Deliveries are watched on the metrics endpoint, which answers in
        # milliseconds, not with `salvo status`, which opens the store.
        harness.wait_for(
            lambda: harness.metric(harness.scrape(port), "salvo_messages_total",
                                   result="delivered") >= 1000,
            what="deliveries to start")
        sink.proc.send_signal(signal.SIGSTOP)
        r = self.salvo("pause", "fast", config=config, check=0)
        answered = utc_now()
        self.assertIn("campaign 'fast' paused", r.stdout)
        sink.proc.send_signal(signal.SIGCONT)
        harness.wait_for(lambda: self.status(config)["fast"]["in_flight"] == 0,
                         what="the jobs already handed out to finish")
        s = self.status(config)["fast"]
        self.assertLess(s["delivered"], total)
        self.assertEqual(s["delivered"] + s["queued"], total)  # nothing lost, nothing doubled
        resuming = utc_now()
        self.salvo("resume", "fast", config=config, check=0)
        harness.wait_for(lambda: self.status(config)["fast"]["delivered"] == total,
                         timeout=240, what="every job delivered after resume")
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        self.assertEqual(sink.stop()["messages"], total)  # each one sent exactly once
        # Event times are commit times (UTC, ISO 8601 with milliseconds): compared as text.
        with open(self.path("data", "events", "events.jsonl")) as f:
            events = [json.loads(line) for line in f]
        after = sum(1 for e in events
                    if e["type"] == "delivered" and answered < e["time"] < resuming)
        print(f"delivered after the pause answered and before the resume: {after} (at most "
              f"{on_loop} on the loop, plus outcomes not yet committed when it answered)")
        self.assertLessEqual(after, on_loop + 1000)

    def test_pause_reaches_jobs_waiting_on_a_throttled_destination(self):
        # 20 messages a second: every job is handed to the destination's loop at once (far
        # under its cap), where they wait for the throttle. After a pause only the few
        # already in a session may go out; the rest come back to the queue unsent.
        sink = harness.Sink(self.dir, maildir=False)
        config = self.write_config(sink.port, extra="""\
limits:
  - match: "*.example"
    messages_per_second: 20
""")
        total = 400
        self.salvo("submit", self.make_campaign("slow", total), config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: self.status(config)["slow"]["delivered"] >= 10,
                         what="deliveries to start")
        self.salvo("pause", "slow", config=config, check=0)
        answered = utc_now()
        harness.wait_for(lambda: self.status(config)["slow"]["in_flight"] == 0,
                         what="the jobs in sessions to finish")
        s = self.status(config)["slow"]
        self.assertEqual(s["delivered"] + s["queued"], total)  # nothing lost, nothing doubled
        r = self.salvo("cancel", "slow", config=config, check=0)
        self.assertIn(f"{s['queued']} waiting job(s) cancelled", r.stdout)
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        self.assertEqual(sink.stop()["messages"], s["delivered"])
        with open(self.path("data", "events", "events.jsonl")) as f:
            after = sum(1 for e in map(json.loads, f)
                        if e["type"] == "delivered" and e["time"] > answered)
        # At most two envelopes queued in each of the (up to 4) sessions, and the one
        # each is sending; without the withdrawal every job would still go out, 20 a second.
        print(f"delivered after the pause answered: {after} of {total}")
        self.assertLessEqual(after, 12)

    def test_retention_purges_finished_campaigns_on_a_running_daemon(self):
        sink = harness.Sink(self.dir, maildir=False)
        config = self.write_config(sink.port, extra="queue:\n  retention: 1s\n")
        done = self.make_campaign("done", 20)
        waiting = self.make_campaign("waiting", 20)
        self.salvo("submit", done, config=config, check=0)
        self.salvo("submit", waiting, config=config, check=0)
        self.salvo("pause", "waiting", config=config, check=0)
        daemon = self.start("run", config=config)

        def purged():
            with open(self.path("proc-0.log")) as f:
                return "purged the job records of finished campaign 'done'" in f.read()
        harness.wait_for(purged, timeout=30, what="the retention sweep to purge 'done'")
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        with open(self.path("proc-0.log")) as f:
            self.assertNotIn("'waiting'", f.read())  # paused with jobs waiting: not finished
        status = self.status(config)
        # Counters and the campaign record stay after the purge.
        self.assertEqual((status["done"]["delivered"], status["done"]["queued"]), (20, 0))
        self.assertEqual(status["waiting"]["queued"], 20)
        sink.stop()

    def test_commands_without_a_daemon(self):
        config = self.write_config(harness.free_port())
        self.salvo("submit", self.make_campaign("c", 20), config=config, check=0)
        self.salvo("pause", "c", config=config, check=0)
        self.assertEqual(self.status(config)["c"]["state"], "paused")
        self.salvo("resume", "c", config=config, check=0)
        r = self.salvo("cancel", "c", config=config, check=0)
        self.assertIn("20 waiting job(s) cancelled", r.stdout)
        s = self.status(config)["c"]
        self.assertEqual((s["state"], s["queued"], s["cancelled"]), ("cancelled", 0, 20))
        r = self.salvo("purge", "c", config=config, check=0)
        self.assertIn("campaign 'c' purged", r.stdout)
        # Suppressed before submit: skipped and counted.
        self.write("suppress.txt", "# complaints\ng3@d3.example,complaint\n\nG4@D4.example\n")
        r = self.salvo("suppress", "import", "suppress.txt", config=config, check=0)
        self.assertIn("2 address(es) suppressed", r.stdout)
        r = self.salvo("submit", self.make_campaign("g", 10), config=config, check=0)
        self.assertIn("8 recipient(s) queued", r.stdout)
        self.assertIn("2 suppressed recipient(s) skipped", r.stdout)
        s = self.status(config)["g"]
        self.assertEqual((s["queued"], s["suppressed"], s["jobs"]), (8, 2, 10))
        # Same id, other recipients: refused.
        r = self.salvo("submit", self.make_campaign("g", 11), config=config, check=65)
        self.assertIn("already exists with different content", r.stderr)
        r = self.salvo("suppress", "remove", "nobody@x.example", config=config, check=66)
        self.assertIn("'nobody@x.example' is not suppressed", r.stderr)
        self.salvo("suppress", "remove", "g3@d3.example", config=config, check=0)
        r = self.salvo("suppress", "import", "missing.txt", config=config, check=66)
        self.assertIn("cannot read", r.stderr)
        self.write("bad.txt", "ok@x.example\nnot-an-address\n")
        r = self.salvo("suppress", "import", "bad.txt", config=config, check=65)
        self.assertIn("bad.txt:2: 'not-an-address' is not an email address", r.stderr)
        r = self.salvo("cancel", "missing", config=config, check=66)
        self.assertIn("no campaign 'missing'", r.stderr)


if __name__ == "__main__":
    harness.main()
