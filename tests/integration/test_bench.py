"""`salvo bench` measures honestly: its report's counts add up (no timing assertions)."""
import json

import harness


class Bench(harness.Workspace):
    def test_report_counts_add_up(self):
        r = self.salvo("bench", "--recipients", "2000", "--domains", "20", "--size", "2048",
                       "--json", check=0, timeout=300)
        report = json.loads(r.stdout)
        self.assertEqual(report["recipients"], 2000)
        self.assertEqual(report["delivered"] + report["deferred"] + report["bounced"] +
                         report["expired"], 2000)
        self.assertEqual(report["delivered"], 2000)
        # The sink, a separate process, counted exactly what Salvo says it delivered.
        self.assertEqual(report["sink_messages"], report["delivered"])
        self.assertGreater(report["outcome_batches"], 0)
        self.assertLessEqual(report["outcome_batches"], 2000)
        for key in ("submit_per_second", "messages_per_second", "cpu_seconds", "peak_rss_mib"):
            self.assertGreater(report[key], 0, key)

    def test_text_report_and_bad_target(self):
        r = self.salvo("bench", "--recipients", "50", check=0, timeout=120)
        self.assertIn("50 delivered, 0 deferred, 0 bounced", r.stdout)
        r = self.salvo("bench", "--recipients", "5", "--target", "nonsense", check=64)
        self.assertIn("--target must be HOST:PORT", r.stderr)


if __name__ == "__main__":
    harness.main()
