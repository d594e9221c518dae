"""Shared helpers for Salvo's integration tests: the real `salvo` binary, real sockets on
127.0.0.1, Salvo's own sink. Each test gets a fresh temporary directory."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SALVO = None


def main():
    global SALVO
    parser = argparse.ArgumentParser()
    parser.add_argument("--salvo", required=True)
    args, rest = parser.parse_known_args()
    SALVO = os.path.abspath(args.salvo)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# Configuration lines for tests that wait for retries: a deferred job is retried a second
# later, and a destination is never declared dead by failed connection cohorts.
RETRY_FAST = """\
retry:
  first_delay: 1s
  max_delay: 1s
limits:
  - match: "*.example"
    failed_cohort_limit: 0
"""


def campaign_yaml(name, recipients):
    """A minimal campaign: id `name`, the given recipient addresses inline."""
    inline = "\n".join(f"  - email: {r}" for r in recipients)
    return f"""\
id: {name}
from: sender@origin.example
subject: "Hi"
text: "Hello"
recipients:
{inline}
"""


class Sink:
    """`salvo sink` on a free loopback port, optionally writing a maildir."""

    def __init__(self, workdir, maildir=True, extra=()):
        self.maildir = os.path.join(workdir, "maildir") if maildir else None
        self.stats = os.path.join(workdir, "sink-stats.json")
        self.log = open(os.path.join(workdir, "sink.log"), "w+")
        cmd = [SALVO, "sink", "--listen", "127.0.0.1:0", "--stats-json", self.stats]
        if self.maildir:
            cmd += ["--maildir", self.maildir]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"sink did not start: {line!r}")
        self.port = int(m.group(1))

    def messages(self):
        if not self.maildir:
            return []
        new = os.path.join(self.maildir, "new")
        if not os.path.isdir(new):
            return []
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def count(self):
        new = os.path.join(self.maildir, "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()
        with open(self.stats) as f:
            return json.load(f)


class Workspace(unittest.TestCase):
    """A TestCase with a temp dir, a config writer and a `salvo` runner."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="salvo-it-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("SALVO_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def write_config(self, sink_port, metrics="off", extra=""):
        return self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "{metrics}"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 4
routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {sink_port}
{extra}""")

    def salvo(self, *args, config=None, check=None, timeout=120):
        cmd = [SALVO] + (["--config", config] if config else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if check is not None:
            self.assertEqual(r.returncode, check,
                             f"{' '.join(cmd)} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def quick_shaping_rules(self, duration="3s"):
        """The shipped shaping rules (examples/policy/shaping-rules.yaml) with every
        30-minute duration shortened, so a test sees a cut and the recovery after it."""
        shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "examples", "policy", "shaping-rules.yaml")
        with open(shipped) as f:
            text = f.read()
        self.assertIn("duration: 30m", text)
        return self.write("quick-shaping.yaml", text.replace("duration: 30m",
                                                             f"duration: {duration}"))

    def start(self, *args, config=None):
        cmd = [SALVO] + (["--config", config] if config else []) + list(args)
        log = open(self.path(f"proc-{len(self.procs)}.log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def status(self, config):
        r = self.salvo("status", "--json", config=config, check=0)
        return {c["campaign"]: c for c in json.loads(r.stdout)}


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric(text, name, **labels):
    """The value of the series of `name` carrying at least `labels` (summed), else 0."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(re.escape(name) + r"\{([^}]*)\} ([0-9.e+]+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def metric_value(text, name, labels):
    pattern = re.escape(name) + r"\{" + re.escape(labels) + r"\} ([0-9.e+]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None
