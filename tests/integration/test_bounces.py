"""Bounce classification: every 5xx is classified and counted by category, hard bounces land
in the suppression list (and a later campaign skips those addresses), and a temporary
failure is retried on a short schedule and finally expires as `expired`."""

import harness


class Bounces(harness.Workspace):
    def test_hard_bounces_are_classified_counted_and_suppressed(self):
        bad = [f"reject-me{i}@d{i % 2}.example" for i in range(6)]
        good = [f"ok{i}@d{i % 2}.example" for i in range(10)]
        soft = [f"defer-me{i}@d0.example" for i in range(3)]
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--reject-rcpt", "reject-me", "--defer-rcpt", "defer-me"])
        port = harness.free_port()
        config = self.write_config(sink.port, metrics=f"127.0.0.1:{port}")
        self.salvo("submit", self.write("a.yaml", harness.campaign_yaml("first", bad + good + soft)),
                   config=config, check=0)
        daemon = self.start("run", config=config)

        def settled():
            s = self.status(config)["first"]
            return s["delivered"] == len(good) and s["bounced"] == len(bad) and \
                s["deferred"] == len(soft)
        harness.wait_for(settled, timeout=60, what="every first attempt committed")
        # The suppression list is written right after the outcome batch commits.
        harness.wait_for(
            lambda: harness.metric(harness.scrape(port), "salvo_bounces_total", category="bad-mailbox",
                           severity="hard") == len(bad),
            timeout=30, what="bounces by category")
        text = harness.scrape(port)
        self.assertEqual(harness.metric(text, "salvo_deferrals_total"), len(soft))
        self.assertEqual(harness.metric(text, "salvo_messages_total", result="bounced"), len(bad))
        self.assertEqual(harness.metric(text, "salvo_smtp_replies_total", **{"class": "5xx"}), len(bad))
        self.assertEqual(harness.metric(text, "salvo_smtp_replies_total", **{"class": "4xx"}), len(soft))
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)

        listed = self.salvo("suppress", "list", config=config, check=0).stdout
        for address in bad:
            self.assertIn(address, listed)
        self.assertIn("bad-mailbox", listed)
        for address in good + soft:
            self.assertNotIn(address, listed)

        # A later campaign to the same people skips the hard-bounced addresses.
        self.salvo("submit", self.write("b.yaml", harness.campaign_yaml("second", bad + good)),
                   config=config, check=0)
        self.salvo("run", "--until-idle", config=config, check=0)
        s = self.status(config)["second"]
        self.assertEqual((s["delivered"], s["bounced"], s["suppressed"]),
                         (len(good), 0, len(bad)))
        stats = sink.stop()
        self.assertEqual(stats["rejected"], len(bad))

    def test_temporary_failure_retries_then_expires(self):
        sink = harness.Sink(self.dir, maildir=False, extra=["--defer-rcpt", "defer-me"])
        config = self.write_config(sink.port, extra="""\
retry:
  first_delay: 1s
  max_delay: 1s
  max_age: 2s
""")
        self.salvo("submit", self.write("c.yaml", harness.campaign_yaml("late", ["defer-me@d0.example"])),
                   config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: self.status(config)["late"]["expired"] == 1, timeout=60,
                         what="the deferred job to expire")
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        s = self.status(config)["late"]
        self.assertGreaterEqual(s["attempts"], 2)  # retried at least once before expiring
        stats = sink.stop()
        self.assertEqual(stats["deferred"], s["attempts"])


if __name__ == "__main__":
    harness.main()
