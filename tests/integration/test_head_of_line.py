"""Head-of-line blocking: one slow destination (a sink that stalls 50 ms per message) holds
most of the due jobs, and is first in due order, while three fast destinations share the
rest. The fast ones must finish while the slow one is still draining: the dispatcher
caps the jobs one destination may hold, so the slow one cannot fill the in-flight
window."""
import os
import signal

import harness

SLOW = 3000
FAST_PER_SINK = 500


class HeadOfLine(harness.Workspace):
    def test_fast_destinations_finish_while_a_slow_one_drains(self):
        slow = harness.Sink(self.path(), extra=["--delay-ms", "50"])
        fast = []
        for i in range(3):
            os.makedirs(self.path(f"fast{i}"))
            fast.append(harness.Sink(self.path(f"fast{i}")))
        routes = [f'  - match: "*.slow.example"\n    host: 127.0.0.1\n    port: {slow.port}']
        for i, sink in enumerate(fast):
            routes.append(f'  - match: "*.fast{i}.example"\n    host: 127.0.0.1\n    port: {sink.port}')
        # The slow destination alone could fill the whole window (max_in_flight).
        self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "off"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 2
  max_in_flight: 2000
routes:
""" + "\n".join(routes) + "\n")
        config = self.path("salvo.yaml")
        # Slow recipients first: they are the head of the due index.
        rows = ["email,n"]
        rows += [f"s{i}@slow.example,{i}" for i in range(SLOW)]
        rows += [f"f{i}@fast{i % 3}.example,{i}" for i in range(3 * FAST_PER_SINK)]
        self.write("rcpts.csv", "\n".join(rows) + "\n")
        campaign = self.write("campaign.yaml", """\
id: hol
from: "HOL <sender@origin.example>"
subject: "Hi {{n}}"
text: |
  Number {{n}}.
recipients_csv: rcpts.csv
""")
        self.salvo("submit", campaign, config=config, check=0)
        daemon = self.start("run", config=config)

        def fast_done():
            return all(s.count() >= FAST_PER_SINK for s in fast)

        harness.wait_for(fast_done, timeout=90, what="every fast destination to finish")
        slow_done = slow.count()
        print(f"\nhead-of-line: fast destinations done ({3 * FAST_PER_SINK} messages) while "
              f"the slow one had delivered {slow_done} of {SLOW}")
        self.assertLess(slow_done, SLOW, "the slow destination was not still draining")

        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(timeout=60), 0)
        for s in fast:
            self.assertEqual(s.stop()["messages"], FAST_PER_SINK)
        slow.stop()


if __name__ == "__main__":
    harness.main()
