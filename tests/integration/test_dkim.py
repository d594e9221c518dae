"""DKIM signatures (RFC 6376, relaxed/relaxed) made by the real binary and checked by an
independent verifier, Debian's python3-dkim (dkimpy), with the public key given locally:
rsa-sha256 and ed25519-sha256 (RFC 8463), a non-ASCII subject and a long HTML body, and
a signature that breaks when a signed header is altered or added. Also: a key file
readable by others is refused at validate time."""
import base64
import email
import email.policy
import os
import subprocess

import dkim

import harness

LONG_HTML = "<html><body>" + "".join(
    f"<p>Paragraph {i}: Grüße, ünïcode and plain words to make a long body.</p>\n" for i in range(2000)
) + "</body></html>\n"


class Dkim(harness.Workspace):
    def make_key(self, algorithm):
        path = self.path(f"{algorithm}.pem")
        args = ["openssl", "genpkey", "-out", path]
        args += ["-algorithm", "ed25519"] if algorithm == "ed25519" else \
                ["-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:2048"]
        subprocess.run(args, check=True, capture_output=True)
        os.chmod(path, 0o600)
        der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        if algorithm == "ed25519":
            return path, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
        return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)

    def signed_messages(self, algorithm):
        key, record = self.make_key(algorithm)
        secret = self.path("unsub.key")
        with open(secret, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        os.chmod(secret, 0o600)
        self.write("body.html", LONG_HTML)
        name = "rsa-sha256" if algorithm == "rsa" else "ed25519-sha256"
        campaign = self.write("campaign.yaml", f"""\
id: signed-{algorithm}
from: "Zoë from Shop <news@shop.example>"
subject: "Grüße {{{{name}}}} — a subject long enough to be folded over several lines, surely"
text: "Hallo {{{{name}}}}\\n"
html_file: body.html
headers: {{X-Campaign: "Herbst – Grüße"}}
unsubscribe: {{url: "https://shop.example/u", mailto: unsub@shop.example, secret_file: unsub.key}}
dkim: {{domain: shop.example, selector: s2026, key_file: {algorithm}.pem, algorithm: {name}}}
recipients:
  - {{email: ann@one.example, name: Änn}}
  - {{email: bob@two.example, name: Bob}}
""")
        sink = harness.Sink(self.dir)
        config = self.write_config(sink.port)
        self.salvo("submit", campaign, config=config, check=0)
        self.salvo("run", "--until-idle", config=config, check=0)
        sink.stop()
        messages = sink.messages()
        self.assertEqual(len(messages), 2)
        return messages, record

    def check(self, algorithm):
        messages, record = self.signed_messages(algorithm)
        lookups = []

        def dns(name, timeout=5):
            lookups.append(name)
            return record
        for raw in messages:
            self.assertTrue(raw.startswith(b"Return-Path: "))
            self.assertIn(b"\r\nDKIM-Signature: v=1; a=" + (b"rsa-sha256" if algorithm == "rsa"
                                                            else b"ed25519-sha256"), raw)
            self.assertGreater(len(raw), 100_000)
            self.assertTrue(dkim.verify(raw, dnsfunc=dns), raw[:2000])
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            sig = str(msg["DKIM-Signature"])
            tags = dict(t.strip().split("=", 1) for t in "".join(sig.split()).split(";") if t)
            self.assertEqual((tags["c"], tags["d"], tags["s"]), ("relaxed/relaxed", "shop.example", "s2026"))
            self.assertEqual(tags["h"], "from:from:to:to:subject:subject:date:date:message-id:message-id:"
                                        "mime-version:mime-version:list-unsubscribe:list-unsubscribe:"
                                        "list-unsubscribe-post:list-unsubscribe-post")
            # Altering a signed header, or adding a second From, breaks the signature.
            tampered = raw.replace(b"\r\nTo: ", b"\r\nTo: x", 1)
            self.assertFalse(dkim.verify(tampered, dnsfunc=dns))
            added = raw.replace(b"\r\nMIME-Version: ", b"\r\nFrom: evil@attacker.example\r\nMIME-Version: ", 1)
            self.assertFalse(dkim.verify(added, dnsfunc=dns))
            # Re-folding a header in transit does not (relaxed canonicalization).
            refolded = raw.replace(b"\r\nMIME-Version: 1.0", b"\r\nMIME-Version:   1.0 ", 1)
            self.assertTrue(dkim.verify(refolded, dnsfunc=dns))
        self.assertEqual(set(lookups), {b"s2026._domainkey.shop.example."})

    def test_rsa_sha256_verifies(self):
        self.check("rsa")

    def test_ed25519_sha256_verifies(self):
        self.check("ed25519")

    def test_connections_closing_while_messages_sign_lose_no_job(self):
        # Signing campaigns render on the render pool while their connection goes on. The
        # sink drops every connection at the MAIL after two messages, often while the next job
        # is still signing: that job goes back unsent and out on another connection, so
        # every recipient gets one verifiable message (a lost job is never delivered).
        key, record = self.make_key("rsa")
        n = 90
        inline = "\n".join(f"  - email: r{i}@d{i % 3}.example" for i in range(n))
        campaign = self.write("campaign.yaml", f"""\
id: closing
from: news@shop.example
subject: s
text: "Hello"
dkim: {{domain: shop.example, selector: s2026, key_file: rsa.pem, algorithm: rsa-sha256}}
recipients:
{inline}
""")
        sink = harness.Sink(self.dir, extra=["--drop-after", "2"])
        config = self.write_config(sink.port, extra=harness.RETRY_FAST)
        self.salvo("submit", campaign, config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: self.status(config)["closing"]["delivered"] == n, timeout=60,
                         what="every message delivered despite the drops")
        daemon.terminate()
        daemon.wait(timeout=30)
        sink.stop()
        messages = sink.messages()
        self.assertEqual(len(messages), n)
        recipients = set()
        for raw in messages:
            self.assertTrue(dkim.verify(raw, dnsfunc=lambda name, timeout=5: record), raw[:2000])
            recipients.add(email.message_from_bytes(raw)["To"])
        self.assertEqual(len(recipients), n)

    def test_key_readable_by_others_is_refused(self):
        key, _ = self.make_key("ed25519")
        os.chmod(key, 0o644)
        campaign = self.write("campaign.yaml", """\
id: open-key
from: news@shop.example
subject: s
text: t
dkim: {domain: shop.example, selector: s1, key_file: ed25519.pem, algorithm: ed25519-sha256}
recipients:
  - {email: ann@one.example}
""")
        r = self.salvo("validate", campaign, check=65)
        self.assertEqual(r.stderr.strip(),
                         f"{campaign}:5:54: DKIM key file '{key}' is readable by group or others "
                         "(mode 0644): run chmod 600 on it")


if __name__ == "__main__":
    harness.main()
