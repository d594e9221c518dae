"""Interop over real sockets with Postfix.

1. A private Postfix instance started by the test (its own config_directory, queue and
   data directories in the test's temp dir; `postfix -c DIR start`): smtpd on
   127.0.0.1:PORT with STARTTLS (a certificate made by `openssl req` at test time) and
   PIPELINING, relaying everything from 127.0.0.0/8 to Salvo's sink. Salvo delivers a few
   hundred messages with `tls: required`; every one reaches the sink, and every one
   carries the Received header Postfix writes for a TLS session.
2. Postfix's `smtp-sink` (pipelining, no TLS): every message is dumped to a file.
3. Salvo's own sink, the same way.
Needs root (Postfix's master) and the postfix package (scripts/install-deps)."""
import glob
import os
import shutil
import socket
import subprocess

import harness

COUNT = 300

MASTER_CF = """\
{listen} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.7
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.interop.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_peername_lookup = no
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
default_destination_concurrency_limit = 10
"""


class PostfixInstance:
    """A private Postfix under `root`, relaying to 127.0.0.1:relay_port."""

    def __init__(self, root, relay_port, cert, key):
        self.root = root
        self.etc = os.path.join(root, "etc")
        self.port = harness.free_port()
        for d in ("etc", "spool", "data"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        # Postfix daemons run as the postfix user: the tree must be reachable, the data
        # directory theirs.
        os.chmod(os.path.dirname(root), 0o755)
        os.chmod(root, 0o755)
        shutil.chown(os.path.join(root, "data"), user="postfix")
        for path in (cert, key):
            os.chmod(path, 0o644)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(root=root, relay_port=relay_port, cert=cert, key=key))
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        r = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"postfix start failed ({r.returncode}): {r.stderr}\n{self.log()}")
        harness.wait_for(self.listening, timeout=30, what="Postfix smtpd to listen")

    def listening(self):
        return listening(self.port)

    def log(self):
        try:
            with open(os.path.join(self.root, "maillog")) as f:
                return f.read()
        except OSError:
            return ""

    def queue_empty(self):
        for sub in ("incoming", "active", "deferred"):
            d = os.path.join(self.root, "spool", sub)
            for _, _, files in os.walk(d):
                if files:
                    return False
        return True

    def stop(self):
        pidfile = os.path.join(self.root, "spool", "pid", "master.pid")
        pid = None
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            pass
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
        if pid:
            harness.wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30,
                             what="Postfix master to exit")


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def make_cert(directory):
    cert = os.path.join(directory, "postfix.pem")
    key = os.path.join(directory, "postfix.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-keyout", key,
                    "-out", cert, "-subj", "/CN=postfix.interop.invalid"],
                   check=True, capture_output=True)
    return cert, key


class PostfixInterop(harness.Workspace):
    def campaign(self):
        inline = "\n".join(f"  - email: user{i}@d{i % 5}.example\n    name: N{i}"
                           for i in range(COUNT))
        return self.write("c.yaml", f"""\
id: interop
from: sender@origin.example
subject: "Interop {{{{name}}}}"
text: "Hello {{{{name}}}}, this is message for an interop test."
recipients:
{inline}
""")

    def config(self, port, tls=None):
        return self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "off"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 4
routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {port}
""" + (f"    tls: {tls}\n" if tls else ""))

    def run_salvo(self, port, tls=None):
        config = self.config(port, tls)
        self.salvo("submit", self.campaign(), config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        self.assertIn(f"{COUNT} delivered, 0 deferred, 0 bounced", r.stdout, r.stderr)
        return r

    def test_postfix_smtpd_with_starttls_and_pipelining(self):
        sink = harness.Sink(self.dir)
        cert, key = make_cert(self.dir)
        postfix = PostfixInstance(self.path("postfix"), sink.port, cert, key)
        try:
            self.run_salvo(postfix.port, tls="required")
            harness.wait_for(lambda: sink.count() >= COUNT, timeout=120,
                             what=f"{COUNT} messages relayed by Postfix to the sink")
            harness.wait_for(postfix.queue_empty, timeout=30, what="Postfix queue to drain")
        finally:
            postfix.stop()
        log = postfix.log()
        stats = sink.stop()
        self.assertEqual(stats["messages"], COUNT, log[-4000:])
        self.assertIn("TLS connection established from", log)
        self.assertNotIn("improper command pipelining", log)
        # Postfix's Received header records the TLS session of each message it took.
        messages = sink.messages()
        self.assertEqual(len(messages), COUNT)
        for m in messages:
            head = m.split(b"\r\n\r\n", 1)[0]
            self.assertIn(b"from salvo.test", head)
            self.assertRegex(head, rb"\(using TLSv1\.[23] with cipher")
        recipients = sorted(set(
            m.split(b"\r\n\r\n", 1)[1].split(b",", 1)[0] for m in messages))
        self.assertEqual(len(recipients), COUNT)  # each personalised message once

    def test_postfix_smtp_sink(self):
        port = harness.free_port()
        dump = self.path("smtp-sink")
        os.makedirs(dump)
        os.chmod(self.dir, 0o755)
        shutil.chown(dump, user="nobody")
        proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", dump + "/m.",
                                 f"127.0.0.1:{port}", "100"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        harness.wait_for(lambda: listening(port), timeout=30, what="smtp-sink to listen")
        self.run_salvo(port)
        harness.wait_for(lambda: len(glob.glob(dump + "/m.*")) >= COUNT, timeout=30,
                         what="smtp-sink dump files")
        self.assertEqual(len(glob.glob(dump + "/m.*")), COUNT)
        proc.terminate()
        proc.wait(timeout=30)

    def test_salvo_sink(self):
        sink = harness.Sink(self.dir, maildir=False)
        self.run_salvo(sink.port)
        self.assertEqual(sink.stop()["messages"], COUNT)


if __name__ == "__main__":
    harness.main()
