"""Crash safety: a 3,000-recipient campaign is delivered to Salvo's sink while the daemon
is killed with SIGKILL at random moments (at least five times) and restarted each time;
a final `salvo run --until-idle` finishes the work. Every recipient must reach the sink
at least once. Duplicates are possible only for messages whose 250 arrived but whose
outcome was not yet committed when the process died, so each kill may add at most the
in-flight window (max_in_flight) of them; the test prints how many there were."""
import collections
import os
import random
import re
import signal

import harness

RECIPIENTS = 3000
DOMAINS = [f"d{i}.example" for i in range(7)]
KILLS = 6
MAX_IN_FLIGHT = 500


class Crash(harness.Workspace):
    def test_sigkill_at_random_moments_loses_nothing(self):
        seed = int(os.environ.get("SALVO_CRASH_SEED", random.randrange(1 << 30)))
        rnd = random.Random(seed)
        print(f"\ncrash test seed {seed} (set SALVO_CRASH_SEED to repeat)")
        rows = ["email,n"]
        expected = set()
        for i in range(RECIPIENTS):
            email = f"r{i:05d}@{DOMAINS[i % len(DOMAINS)]}"
            rows.append(f"{email},{i}")
            expected.add(email)
        self.write("rcpts.csv", "\n".join(rows) + "\n")
        campaign = self.write("campaign.yaml", """\
id: crash
from: "Crash <sender@origin.example>"
subject: "Message {{n}}"
text: |
  Number {{n}}.
recipients_csv: rcpts.csv
""")
        # A sink that takes 2 ms per message keeps the run slow enough for six kills to land
        # before the campaign is done, however fast the engine gets.
        sink = harness.Sink(self.dir, extra=["--delay-ms", "2"])
        config = self.write_config(sink.port)
        # max_in_flight bounds the duplicates a kill may cause: set it small and explicit.
        with open(config) as f:
            text = f.read()
        text = text.replace("delivery:\n", f"delivery:\n  max_in_flight: {MAX_IN_FLIGHT}\n", 1)
        with open(config, "w") as f:
            f.write(text)
        self.salvo("submit", campaign, config=config, check=0)

        kills = 0
        while kills < KILLS:
            before = sink.count()
            if before >= RECIPIENTS:
                break
            daemon = self.start("run", config=config)
            # Kill after a random number of new deliveries (or at once, before any), so
            # the kills land while connections, leases and commits are all in motion.
            target = min(RECIPIENTS, before + rnd.randrange(0, RECIPIENTS // (KILLS + 1)))
            harness.wait_for(lambda: sink.count() >= target or daemon.poll() is not None,
                             timeout=60, what=f"{target} messages at the sink")
            self.assertIsNone(daemon.poll(), "the daemon exited on its own")
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
            kills += 1
        self.assertGreaterEqual(kills, 5, "the campaign finished before five kills")

        self.salvo("run", "--until-idle", config=config, check=0, timeout=120)
        stats = sink.stop()

        received = collections.Counter()
        for raw in sink.messages():
            m = re.search(rb"^Delivered-To: (.+?)\r$", raw, re.M)
            self.assertIsNotNone(m, "a message without Delivered-To")
            received[m.group(1).decode()] += 1
        missing = expected - set(received)
        self.assertFalse(missing, f"{len(missing)} recipient(s) lost, e.g. {sorted(missing)[:5]}")
        self.assertFalse(set(received) - expected, "messages for unknown recipients")
        duplicates = sum(n - 1 for n in received.values())
        print(f"crash test: {kills} kills, {RECIPIENTS} recipients, "
              f"{sum(received.values())} messages, {duplicates} duplicate(s) "
              f"(bound {kills} x {MAX_IN_FLIGHT})")
        self.assertLessEqual(duplicates, kills * MAX_IN_FLIGHT)
        self.assertEqual(stats["messages"], sum(received.values()))

        status = self.status(config)["crash"]
        self.assertEqual((status["delivered"], status["queued"], status["deferred"],
                          status["in_flight"]), (RECIPIENTS, 0, 0, 0))


if __name__ == "__main__":
    harness.main()
