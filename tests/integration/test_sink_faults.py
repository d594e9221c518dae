"""Salvo against a sink that misbehaves (docs/sink.md): a fraction of recipients deferred
(451 4.7.1) or rejected (550 5.1.1), connections dropped at the greeting and after a few
messages. Once Salvo has retried everything, `salvo status --json` adds up: every
recipient is delivered or bounced, nothing is lost or left in the queue, and the counts
agree with what the sink says it did."""
import harness

SEED = 7


def fault_hash(seed, text):
    """bench/sink_session.cpp's faultHash: FNV-1a 64 of the text, mixed with SplitMix64."""
    mask = (1 << 64) - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
        return z ^ (z >> 31)

    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & mask
    return (mix(h ^ mix(seed)) >> 11) * 2.0 ** -53



class SinkFaults(harness.Workspace):
    def deliver_all(self, sink, name, recipients):
        """Runs the daemon until every recipient has a final outcome; returns the status."""
        config = self.write_config(sink.port, extra=harness.RETRY_FAST)
        self.salvo("submit", self.write(f"{name}.yaml", harness.campaign_yaml(name, recipients)),
                   config=config, check=0)
        daemon = self.start("run", config=config)
        n = len(recipients)
        harness.wait_for(
            lambda: (lambda s: s["delivered"] + s["bounced"] == n)(self.status(config)[name]),
            timeout=90, what="every recipient delivered or bounced")
        daemon.terminate()
        self.assertEqual(daemon.wait(timeout=60), 0)
        return self.status(config)[name]

    def assert_adds_up(self, s, n):
        self.assertEqual(s["delivered"] + s["bounced"], n)
        self.assertEqual((s["queued"], s["in_flight"], s["deferred"], s["expired"]), (0, 0, 0, 0))

    def test_fractions_and_drops_add_up(self):
        recipients = [f"user{i}@d{i % 3}.example" for i in range(300)]
        n = len(recipients)
        expected_bounces = sum(fault_hash(SEED, r) < 0.1 for r in recipients)
        sink = harness.Sink(self.dir, maildir=False, extra=[
            "--seed", str(SEED), "--defer-fraction", "0.2", "--reject-fraction", "0.1",
            "--drop-fraction", "0.1", "--drop-after", "5"])
        s = self.deliver_all(sink, "faults", recipients)
        stats = sink.stop()
        print(f"\nsink: {stats}\nstatus: {s}")
        self.assert_adds_up(s, n)
        # 550s are decided by the address: the same recipients bounce in every run.
        self.assertEqual(s["bounced"], expected_bounces)
        self.assertEqual(stats["faults5xx"], expected_bounces)
        # Each delivered recipient reached the sink exactly once: a drop happens before
        # a MAIL is answered, never between a message's data and its 250.
        self.assertEqual(stats["messages"], s["delivered"])
        self.assertEqual(stats["recipients"], s["delivered"])
        self.assertGreater(stats["faults4xx"], 0)
        self.assertGreater(stats["dropped"], 0)
        self.assertGreater(s["attempts"], n)  # the deferrals and drops were retried

    def test_realistic_profile_adds_up(self):
        domains = ["gmail.example", "yahoo.example", "outlook.example", "other.example"]
        recipients = [f"user{i}@{domains[i % 4]}" for i in range(200)]
        sink = harness.Sink(self.dir, maildir=False,
                            extra=["--profile", "realistic", "--seed", str(SEED)])
        s = self.deliver_all(sink, "realistic", recipients)
        stats = sink.stop()
        print(f"\nsink: {stats}\nstatus: {s}")
        self.assert_adds_up(s, len(recipients))
        self.assertEqual(stats["messages"], s["delivered"])
        self.assertEqual(stats["faults5xx"], s["bounced"])
        self.assertGreater(stats["delayedGreetings"], 0)


if __name__ == "__main__":
    harness.main()
