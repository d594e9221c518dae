"""Mixed outcomes: the sink rejects some recipients with 550 and defers others with 451;
after `salvo run --until-idle` the counts in `salvo status` match exactly."""
import harness


class Rejections(harness.Workspace):
    def test_status_counts_match_sink_decisions(self):
        recipients = []
        for i in range(40):
            if i % 8 == 0:
                local = f"reject-me{i}"
            elif i % 5 == 0:
                local = f"defer-me{i}"
            else:
                local = f"ok{i}"
            recipients.append(f"{local}@d{i % 3}.example")
        n_reject = sum("reject-me" in r for r in recipients)
        n_defer = sum("defer-me" in r for r in recipients)
        n_ok = len(recipients) - n_reject - n_defer
        self.assertTrue(n_reject and n_defer and n_ok)
        inline = "\n".join(f"  - email: {r}\n    name: N{i}" for i, r in enumerate(recipients))
        campaign = self.write("c.yaml", f"""\
id: mixed
from: sender@origin.example
subject: "Hi {{{{name}}}}"
text: "Hello {{{{name}}}}"
recipients:
{inline}
""")
        sink = harness.Sink(self.dir, extra=["--reject-rcpt", "reject-me", "--defer-rcpt", "defer-me"])
        config = self.write_config(sink.port)
        self.salvo("submit", campaign, config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        self.assertIn(f"{n_ok} delivered, {n_defer} deferred, {n_reject} bounced", r.stdout)
        stats = sink.stop()
        self.assertEqual(stats["messages"], n_ok)
        self.assertEqual(stats["rejected"], n_reject)
        self.assertEqual(stats["deferred"], n_defer)
        s = self.status(config)["mixed"]
        self.assertEqual((s["delivered"], s["bounced"], s["deferred"], s["queued"], s["in_flight"]),
                         (n_ok, n_reject, n_defer, 0, 0))
        self.assertEqual(s["attempts"], len(recipients))

        # Nothing is due before the retry delay, so a second run is idle at once and the
        # counts do not move.
        self.salvo("run", "--until-idle", config=config, check=0)
        self.assertEqual(self.status(config)["mixed"]["deferred"], n_defer)


if __name__ == "__main__":
    harness.main()
