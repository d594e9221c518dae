"""The spine end to end: a 1,000-recipient campaign over 10 domains, submitted, delivered
by the `salvo run` daemon to Salvo's sink over real sockets, counted by the sink one file
per message, and reported on the metrics endpoint scraped over HTTP."""
import re
import signal

import harness

DOMAINS = [f"d{i}.example" for i in range(10)]


class EndToEnd(harness.Workspace):
    def test_thousand_recipients_over_ten_domains(self):
        rows = ["email,name,token"]
        expected = {}
        for i in range(1000):
            email = f"user{i:04d}@{DOMAINS[i % 10]}"
            name, token = f"Name{i}", f"tok-{i * 7919 % 100003}"
            rows.append(f"{email},{name},{token}")
            expected[email] = (name, token)
        self.write("rcpts.csv", "\n".join(rows) + "\n")
        campaign = self.write("campaign.yaml", """\
id: e2e
from: "E2E Test <sender@origin.example>"
subject: "Hello {{name}}"
text: |
  Dear {{name}}, your token is {{token}}.
recipients_csv: rcpts.csv
""")
        sink = harness.Sink(self.dir)
        metrics_port = harness.free_port()
        config = self.write_config(sink.port, metrics=f"127.0.0.1:{metrics_port}")
        r = self.salvo("submit", campaign, config=config, check=0)
        self.assertIn("1000 recipient(s) queued", r.stdout)

        daemon = self.start("run", config=config)
        harness.wait_for(lambda: sink.count() >= 1000, timeout=120, what="1000 messages at the sink")

        def delivered():
            return harness.metric_value(harness.scrape(metrics_port), "salvo_messages_total",
                                        'result="delivered"') == 1000
        harness.wait_for(delivered, timeout=60, what="salvo_messages_total{result=delivered} == 1000")
        text = harness.scrape(metrics_port)
        self.assertEqual(harness.metric_value(text, "salvo_messages_total", 'result="bounced"'), 0)
        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(timeout=60), 0)

        stats = sink.stop()
        self.assertEqual(stats["messages"], 1000)
        messages = sink.messages()
        self.assertEqual(len(messages), 1000)
        seen = {}
        for raw in messages:
            text = raw.decode()
            self.assertNotRegex(text, r"(?<!\r)\n", "bare LF in a delivered message")
            rcpt = re.search(r"^Delivered-To: (.+?)\r$", text, re.M).group(1)
            self.assertNotIn(rcpt, seen, f"{rcpt} received twice")
            name, token = expected[rcpt]
            self.assertIn(f"\r\nTo: {rcpt}\r\n", text)
            self.assertIn(f"\r\nSubject: Hello {name}\r\n", text)
            self.assertIn(f"Dear {name}, your token is {token}.", text)
            self.assertRegex(text, r"\r\nMessage-ID: <[^>]+@origin\.example>\r\n")
            seen[rcpt] = True
        self.assertEqual(set(seen), set(expected))

        status = self.status(config)["e2e"]
        self.assertEqual((status["delivered"], status["queued"], status["deferred"],
                          status["bounced"], status["in_flight"]), (1000, 0, 0, 0, 0))


if __name__ == "__main__":
    harness.main()
