"""`salvo sink --tls` and `salvo bench --tls` through the real binary: a TLS benchmark run
where every connection of the sink used TLS, independent clients (swaks, Python's
smtplib verifying a certificate made by `openssl req`) completing STARTTLS against the
sink, a --target without STARTTLS refused up front, and unusable certificate files
named with exit 78."""
import json
import os
import smtplib
import ssl
import subprocess

import harness


def stop(sink):
    """Stops the sink and returns its stats, closing the pipe the harness left open."""
    stats = sink.stop()
    sink.proc.stdout.close()
    return stats


class SinkTls(harness.Workspace):
    def test_bench_tls_sends_everything_over_tls(self):
        keep = self.path("bench")
        r = self.salvo("bench", "--tls", "--recipients", "300", "--domains", "3", "--keep", keep,
                       "--json", check=0, timeout=300)
        report = json.loads(r.stdout)
        self.assertTrue(report["tls"])
        self.assertEqual(report["delivered"], 300, r.stderr)
        self.assertEqual(report["sink_messages"], 300)
        with open(os.path.join(keep, "sink-stats.json")) as f:
            stats = json.load(f)
        # Every connection the sink accepted completed a TLS handshake.
        self.assertGreater(stats["connections"], 0)
        self.assertEqual(stats["tls"], stats["connections"], stats)
        self.assertEqual(stats["tlsFailed"], 0, stats)
        self.assertEqual(report["sink_tls_sessions"], stats["tls"])
        r = self.salvo("bench", "--tls", "--recipients", "20", check=0, timeout=120)
        self.assertIn("tls       on (STARTTLS required", r.stdout)
        self.assertIn("20 delivered, 0 deferred", r.stdout)

    def test_swaks_over_starttls(self):
        sink = harness.Sink(self.dir, extra=["--tls"])
        try:
            r = subprocess.run(["swaks", "--server", f"127.0.0.1:{sink.port}", "--tls",
                                "--from", "a@sender.example", "--to", "b@rcpt.example",
                                "--body", "sent by swaks over TLS"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("220 2.0.0 ready to start TLS", r.stdout)
            self.assertIn("TLS started with cipher", r.stdout)
        finally:
            stats = stop(sink)
        self.assertEqual(stats["tls"], 1)
        self.assertEqual(stats["messages"], 1)
        self.assertIn(b"sent by swaks over TLS", sink.messages()[0])

    def test_smtplib_verifies_a_given_certificate(self):
        cert, key = self.path("sink.pem"), self.path("sink.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-keyout", key,
                        "-out", cert, "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        sink = harness.Sink(self.dir, extra=["--tls-cert", cert, "--tls-key", key])
        try:
            context = ssl.create_default_context(cafile=cert)  # verifies name and chain
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
                smtp.ehlo("client.example")
                self.assertTrue(smtp.has_extn("starttls"))
                code, _ = smtp.starttls(context=context)
                self.assertEqual(code, 220)
                smtp.ehlo("client.example")
                self.assertFalse(smtp.has_extn("starttls"))  # not offered twice
                smtp.sendmail("a@sender.example", ["b@rcpt.example"],
                              "Subject: hi\r\n\r\nover verified TLS\r\n")
        finally:
            stats = stop(sink)
        self.assertEqual((stats["tls"], stats["messages"]), (1, 1))

    def test_without_tls_starttls_is_not_offered_and_bench_refuses_the_target(self):
        sink = harness.Sink(self.dir, maildir=False)
        try:
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
                smtp.ehlo("client.example")
                self.assertFalse(smtp.has_extn("starttls"))
                self.assertEqual(smtp.docmd("STARTTLS")[0], 502)
            r = self.salvo("bench", "--tls", "--recipients", "5", "--target",
                           f"127.0.0.1:{sink.port}", check=78)
            self.assertIn(f"--tls: 127.0.0.1:{sink.port} does not offer STARTTLS", r.stderr)
        finally:
            stop(sink)

    def test_unusable_certificate_files_exit_78(self):
        missing = self.path("missing.pem")
        r = self.salvo("sink", "--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key",
                       missing, check=78)
        self.assertEqual(r.stderr, f"salvo sink: TLS certificate file {missing}: cannot read: "
                                   "No such file or directory\n")
        junk = self.write("junk.pem", "not a certificate\n")
        r = self.salvo("sink", "--listen", "127.0.0.1:0", "--tls-cert", junk, "--tls-key", junk,
                       check=78)
        self.assertIn(f"TLS certificate file {junk}: not a PEM certificate", r.stderr)
        r = self.salvo("sink", "--listen", "127.0.0.1:0", "--tls-cert", junk, check=78)
        self.assertIn("--tls-cert needs --tls-key", r.stderr)


if __name__ == "__main__":
    harness.main()
