"""Queue control with and without a running daemon: `salvo submit` while `salvo run` holds
the store (through the control spool in <data_dir>/control/), pause / resume / cancel on
a running daemon, the same commands on a stopped one, and their errors."""
import os

import harness


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

    def test_commands_reach_a_running_daemon(self):
        sink = harness.Sink(self.dir, maildir=False)
        config = self.write_config(sink.port)
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace("delivery:\n", "delivery:\n  max_in_flight: 500\n", 1))
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
