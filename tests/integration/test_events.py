"""The per-recipient event log: `salvo run` appends one event per committed outcome to
<data_dir>/events/events.jsonl, and `salvo events CAMPAIGN` exports one campaign's events
as JSON Lines or CSV."""
import csv
import io
import json

import harness


def campaign_yaml(name, recipients):
    inline = "\n".join(f"  - email: {r}" for r in recipients)
    return f"""\
id: {name}
from: sender@origin.example
subject: "Hi"
text: "Hello"
recipients:
{inline}
"""


class Events(harness.Workspace):
    def test_events_exported_per_campaign(self):
        good = [f"ok{i}@d{i % 3}.example" for i in range(7)]
        bad = ["reject-me1@d1.example", "reject-me2@d2.example"]
        soft = ["defer-me1@d0.example"]
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--reject-rcpt", "reject-me", "--defer-rcpt", "defer-me"])
        config = self.write_config(sink.port)
        self.salvo("submit", self.write("a.yaml", campaign_yaml("alpha", good + bad + soft)),
                   config=config, check=0)
        self.salvo("submit", self.write("b.yaml", campaign_yaml("beta", ["ok-b@d0.example"])),
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


if __name__ == "__main__":
    harness.main()
