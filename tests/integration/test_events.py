"""The per-recipient event log: `salvo run` appends one event per committed outcome to
<data_dir>/events/events.jsonl, and `salvo events CAMPAIGN` exports one campaign's events
as JSON Lines or CSV."""
import csv
import io
import json

import harness


class Events(harness.Workspace):
    def test_events_exported_per_campaign(self):
        good = [f"ok{i}@d{i % 3}.example" for i in range(7)]
        bad = ["reject-me1@d1.example", "reject-me2@d2.example"]
        soft = ["defer-me1@d0.example"]
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--reject-rcpt", "reject-me", "--defer-rcpt", "defer-me"])
        config = self.write_config(sink.port)
        self.salvo("submit", self.write("a.yaml", harness.campaign_yaml("alpha", good + bad + soft)),
                   config=config, check=0)
        self.salvo("submit", self.write("b.yaml", harness.campaign_yaml("beta", ["ok-b@d0.example"])),
                   config=config, check=0)
        self.salvo("run", "--until-idle", config=config, check=0)
        sink.stop()

        out = self.salvo("events", "alpha", config=config, check=0).stdout
        events = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(events), len(good) + len(bad) + len(soft))
        by_recipient = {e["recipient"]: e for e in events}
        self.assertEqual(set(by_recipient), set(good + bad + soft))
        for e in events:
            self.assertEqual(e["campaign"], "alpha")
            self.assertEqual(e["attempt"], 1)
        for r in good:
            self.assertEqual(by_recipient[r]["type"], "delivered")
            self.assertEqual(by_recipient[r]["code"], 250)
        for r in bad:
            e = by_recipient[r]
            self.assertEqual((e["type"], e["code"], e["enhanced"], e["category"], e["hard"]),
                             ("bounced", 550, "5.1.1", "bad-mailbox", True))
            self.assertEqual(e["mx"], "127.0.0.1")
        e = by_recipient[soft[0]]
        self.assertEqual((e["type"], e["code"], e["hard"]), ("deferred", 451, False))
        self.assertNotEqual(e["category"], "")

        beta = self.salvo("events", "beta", "--format", "csv", config=config, check=0).stdout
        rows = list(csv.DictReader(io.StringIO(beta)))
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["campaign"], rows[0]["recipient"], rows[0]["type"]),
                         ("beta", "ok-b@d0.example", "delivered"))

        # `salvo status`: per provider (latest event per recipient) and top deferral reasons.
        alpha = self.status(config)["alpha"]
        self.assertEqual(alpha["providers"],
                         {"other": {"delivered": len(good), "bounced": len(bad),
                                    "deferred": len(soft)}})
        self.assertEqual(alpha["top_deferrals"],
                         [{"reason": "451 4.3.0 <>: try again later (RCPT TO rejected)", "jobs": 1}])
        text = self.salvo("status", config=config, check=0).stdout
        self.assertIn("alpha by provider", text)
        self.assertIn("451 4.3.0 <>: try again later", text)

        self.assertEqual(self.salvo("events", "nobody", config=config, check=0).stdout, "")
        r = self.salvo("events", "alpha", "--format", "xml", config=config)
        self.assertEqual(r.returncode, 64)
        self.assertIn("unknown format 'xml'", r.stderr)

    def test_recipients_suppressed_at_submit_are_events(self):
        """Both ways a submit runs: on its own (no daemon) and handed to a running daemon.
        Either way the submit writes its own events file (the daemon's log has one writer)
        and `salvo events` / `salvo status` read it with the log."""
        sink = harness.Sink(self.dir, maildir=False)
        config = self.write_config(sink.port)
        self.salvo("suppress", "add", "gone@d1.example", "complaint", config=config, check=0)
        self.salvo("suppress", "add", "left@d2.example", config=config, check=0)
        recipients = ["ok1@d0.example", "gone@d1.example", "left@d2.example"]
        r = self.salvo("submit", self.write("a.yaml", harness.campaign_yaml("alone", recipients)),
                       config=config, check=0)
        self.assertIn("2 suppressed recipient(s) skipped", r.stdout)
        daemon = self.start("run", config=config)
        try:
            harness.wait_for(lambda: self.status(config)["alone"]["delivered"] == 1,
                             timeout=60, what="the first campaign delivered")
            r = self.salvo("submit", self.write("b.yaml", harness.campaign_yaml("via-daemon", recipients)),
                           config=config, check=0)
            self.assertIn("2 suppressed recipient(s) skipped", r.stdout)
            harness.wait_for(lambda: self.status(config)["via-daemon"]["delivered"] == 1,
                             timeout=60, what="the second campaign delivered")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        sink.stop()
        self.assertEqual(daemon.returncode, 0)
        for cid in ("alone", "via-daemon"):
            out = self.salvo("events", cid, config=config, check=0).stdout
            events = [json.loads(line) for line in out.splitlines()]
            self.assertEqual([(e["type"], e["recipient"]) for e in events],
                             [("suppressed", "gone@d1.example"),
                              ("suppressed", "left@d2.example"),
                              ("delivered", "ok1@d0.example")], cid)
            self.assertEqual(events[0]["reply"], "suppressed: complaint (skipped at submit)")
            self.assertEqual(events[1]["reply"], "suppressed: manual (skipped at submit)")
            self.assertEqual((events[0]["attempt"], events[0]["queued_at"]), (0, ""))
            status = self.status(config)[cid]
            self.assertEqual(status["suppressed"], 2)
            self.assertEqual(status["providers"], {"other": {"delivered": 1, "suppressed": 2}})


if __name__ == "__main__":
    harness.main()
