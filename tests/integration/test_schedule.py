"""`start_at`: a scheduled campaign's jobs are not due before their time."""
import harness


class Schedule(harness.Workspace):
    def submit(self, cid, start_at):
        campaign = self.write(f"{cid}.yaml", f"""\
id: {cid}
from: sender@origin.example
subject: "Hi"
text: "Hello {{{{email}}}}"
start_at: "{start_at}"
recipients:
  - email: a@d0.example
  - email: b@d1.example
""")
        self.salvo("submit", campaign, config=self.config, check=0)

    def test_future_start_waits_and_past_start_sends(self):
        sink = harness.Sink(self.dir)
        self.config = self.write_config(sink.port)
        self.submit("later", "2099-01-01T00:00:00Z")
        self.submit("now", "2000-01-01T00:00:00Z")
        r = self.salvo("run", "--until-idle", config=self.config, check=0)
        self.assertIn("2 delivered, 0 deferred", r.stdout)
        status = self.status(self.config)
        self.assertEqual((status["later"]["queued"], status["later"]["delivered"]), (2, 0))
        self.assertEqual((status["now"]["queued"], status["now"]["delivered"]), (0, 2))
        self.assertEqual(sink.stop()["messages"], 2)


if __name__ == "__main__":
    harness.main()
