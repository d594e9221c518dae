"""Rendered messages, through the real binary: campaigns submitted and delivered to Salvo's
sink, whose maildir files are parsed by Python's `email` package (an independent MIME
parser). Checks the parts, their encodings and decoded content, the headers (RFC 2047
display names and subjects, Reply-To, custom headers, RFC 8058 List-Unsubscribe with its
HMAC token), VERP Return-Paths, and the wire rules (CRLF only, lines <= 998 octets)."""
import base64
import email
import email.policy
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import urllib.parse

import harness

SECRET = b"s3cret-for-unsubscribe-tokens-0123456789"
SHORT_PARA = ("Our autumn offers are here: everything you liked last year,\n"
              "and a few new things we think you will like too.")


class Messages(harness.Workspace):
    def deliver(self, campaign_yaml, files=None):
        """Writes the campaign (and `files`), submits it, runs until idle and returns the
        sink's messages parsed, keyed by recipient, with the raw bytes."""
        for name, content in (files or {}).items():
            self.write(name, content)
        secret = self.path("unsub.key")
        with open(secret, "wb") as f:
            f.write(SECRET + b"\n")
        os.chmod(secret, 0o600)
        campaign = self.write("campaign.yaml", campaign_yaml)
        sink = harness.Sink(self.dir)
        config = self.write_config(sink.port)
        self.salvo("validate", campaign, config=config, check=0)
        self.salvo("submit", campaign, config=config, check=0)
        self.salvo("run", "--until-idle", config=config, check=0)
        sink.stop()
        out = {}
        for raw in sink.messages():
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            out[msg["Delivered-To"]] = (msg, raw)
        return out

    def assert_wire_rules(self, raw):
        self.assertNotRegex(raw, rb"(?<!\r)\n", "bare LF")
        self.assertNotRegex(raw, rb"\r(?!\n)", "bare CR")
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)

    def test_multipart_alternative_with_every_header(self):
        rows = [
            "email,name,city",
            'ann@one.example,"Ann <Admin> & Co",Oslo',
            "bob@two.example,,Köln",
            '"""quoted..local""@three.example","Zoë ""Z"" Ünïcode","Zürich, CH"',
        ]
        long_para = " ".join(f"word{i}" for i in range(400))
        messages = self.deliver("""\
id: autumn-sale
from: "Ünïcode Shop <news@shop.example>"
reply_to: {name: "Help Désk", address: help@shop.example}
subject: "Grüße, {{name | default: \\"friend\\"}}: autumn offers"
text_file: body.txt
html_file: body.html
headers:
  X-Campaign: autumn
  X-City: "{{city}}"
tags: [newsletter]
unsubscribe: {url: "https://shop.example/unsubscribe?list=7", mailto: unsub@shop.example, secret_file: unsub.key}
bounce_domain: bounces.shop.example
recipients_csv: rcpts.csv
""", files={
            "rcpts.csv": "\ufeff" + "\r\n".join(rows) + "\r\n",
            "body.txt": "Hello {{name | default: \"friend\"}} in {{city}}!\n\n" + SHORT_PARA + "\n",
            "body.html": "<html><body><p>Hello <b>{{name | default: \"friend\"}}</b> in "
                         "{{city}}</p>\n<p>" + long_para + "</p></body></html>\n",
        })
        self.assertEqual(sorted(messages), ['"quoted..local"@three.example', "ann@one.example",
                                            "bob@two.example"])
        expected = {
            "ann@one.example": ("Ann <Admin> & Co", "Oslo"),
            "bob@two.example": ("friend", "Köln"),
            '"quoted..local"@three.example': ('Zoë "Z" Ünïcode', "Zürich, CH"),
        }
        message_ids = set()
        for rcpt, (msg, raw) in messages.items():
            name, city = expected[rcpt]
            self.assert_wire_rules(raw)
            self.assertEqual(msg.defects, [])
            self.assertEqual(msg["From"].addresses[0].display_name, "Ünïcode Shop")
            self.assertEqual(msg["From"].addresses[0].addr_spec, "news@shop.example")
            self.assertEqual(msg["Reply-To"].addresses[0].display_name, "Help Désk")
            self.assertIn(b"\r\nTo: " + rcpt.encode() + b"\r\n", raw)
            self.assertEqual(str(msg["Subject"]), f"Grüße, {name}: autumn offers")
            self.assertEqual(str(msg["X-Campaign"]), "autumn")
            self.assertEqual(str(msg["X-City"]), city)
            self.assertEqual(str(msg["MIME-Version"]), "1.0")
            self.assertRegex(str(msg["Message-ID"]), r"^<c\d+\.\d+\.[0-9a-f]{16}@shop\.example>$")
            message_ids.add(str(msg["Message-ID"]))
            # VERP: the envelope sender names the job.
            self.assertRegex(str(msg["Return-Path"]), r"^<bounces\+c\d+-\d+@bounces\.shop\.example>$")

            # RFC 8058 one-click unsubscribe, token = HMAC-SHA256(secret, id "\n" rcpt).
            self.assertEqual(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click")
            links = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
            self.assertEqual(links[1], "mailto:unsub@shop.example?subject=unsubscribe")
            url = urllib.parse.urlsplit(links[0])
            self.assertEqual((url.scheme, url.netloc, url.path), ("https", "shop.example", "/unsubscribe"))
            query = urllib.parse.parse_qs(url.query)
            self.assertEqual(query["list"], ["7"])
            self.assertEqual(query["c"], ["autumn-sale"])
            self.assertEqual(query["r"], [rcpt])
            mac = hmac.new(SECRET, f"autumn-sale\n{rcpt}".encode(), hashlib.sha256).digest()
            self.assertEqual(query["t"], [base64.urlsafe_b64encode(mac).rstrip(b"=").decode()])

            self.assertEqual(msg.get_content_type(), "multipart/alternative")
            parts = list(msg.iter_parts())
            self.assertEqual([p.get_content_type() for p in parts], ["text/plain", "text/html"])
            text, html = parts
            self.assertEqual(text.get_content_charset(), "utf-8")
            ascii_only = all(ord(c) < 128 for c in name + city)
            self.assertEqual(text["Content-Transfer-Encoding"],
                             "7bit" if ascii_only else "quoted-printable")
            self.assertEqual(text.get_content().replace("\r\n", "\n"),
                             f"Hello {name} in {city}!\n\n{SHORT_PARA}\n")
            escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            # The HTML paragraph is longer than 998 octets: quoted-printable whatever the text.
            self.assertEqual(html["Content-Transfer-Encoding"], "quoted-printable")
            self.assertEqual(html.get_content().replace("\r\n", "\n"),
                             f"<html><body><p>Hello <b>{escaped}</b> in {city}</p>\n<p>{long_para}</p></body></html>\n")
        self.assertEqual(len(message_ids), 3)

    def test_single_part_bodies_pick_their_encoding(self):
        messages = self.deliver("""\
id: single
from: news@shop.example
subject: "{{kind}}"
html: "<p>{{body}}</p>"
recipients:
  - {email: plain@one.example, kind: plain, body: "just ascii"}
  - {email: latin@one.example, kind: latin, body: "Grüße aus der schönen Stadt am Rhein, bis bald"}
  - {email: cyrillic@one.example, kind: cyrillic, body: "Привет, как дела? Всё хорошо"}
""")
        encodings = {"plain": "7bit", "latin": "quoted-printable", "cyrillic": "base64"}
        bodies = {"plain": "just ascii", "latin": "Grüße aus der schönen Stadt am Rhein, bis bald",
                  "cyrillic": "Привет, как дела? Всё хорошо"}
        self.assertEqual(len(messages), 3)
        for rcpt, (msg, raw) in messages.items():
            self.assert_wire_rules(raw)
            kind = str(msg["Subject"])
            self.assertEqual(msg.get_content_type(), "text/html")
            self.assertEqual(msg["Content-Transfer-Encoding"], encodings[kind])
            self.assertEqual(msg.get_content().replace("\r\n", "\n"), f"<p>{bodies[kind]}</p>\n")
            self.assertIsNone(msg["List-Unsubscribe"])
            self.assertEqual(str(msg["Return-Path"]), "<news@shop.example>")

    def test_validate_reports_injection_and_template_errors(self):
        self.write("rcpts.csv", 'email,name\nann@one.example,"Ann\r\nBcc: x@evil.example"\nbad@@one.example,B\n')
        campaign = self.write("campaign.yaml", """\
id: bad
from: news@shop.example
subject: "Hi {{name}}"
text: "{{name | shout}} {{nmae}}"
recipients_csv: rcpts.csv
""")
        r = self.salvo("validate", campaign, check=65)
        csv = self.path("rcpts.csv")
        self.assertEqual(r.stderr.strip().splitlines(), [
            f"{campaign}:4:8: unknown filter 'shout' in 'name' (only 'default: \"text\"' is supported)",
            f"{csv}:2:17: row 2 (ann@one.example): value of 'name' contains a line break",
            f"{csv}:4:1: recipient 'bad@@one.example': more than one '@' (quote the local part if it contains one)",
        ])

    def test_examples_validate(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        r = self.salvo("validate", os.path.join(root, "examples", "html-campaign.yaml"), check=0)
        self.assertIn("campaign 'spring-offers' is valid: 3 recipient(s)", r.stdout)
        # The newsletter needs a key and a secret, which are never in the repository.
        copy = self.path("newsletter")
        shutil.copytree(os.path.join(root, "examples", "newsletter"), copy,
                        ignore=shutil.ignore_patterns("keys"))
        os.makedirs(os.path.join(copy, "keys"), mode=0o700)
        key = os.path.join(copy, "keys", "dkim.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        secret = os.path.join(copy, "keys", "unsubscribe.key")
        with open(secret, "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        os.chmod(secret, 0o600)
        r = self.salvo("validate", os.path.join(copy, "campaign.yaml"), check=0)
        self.assertIn("campaign 'newsletter-2026-04' is valid: 3 recipient(s)", r.stdout)


if __name__ == "__main__":
    harness.main()
