"""MX resolution through the real binary and a tiny DNS server on loopback (a Python UDP
responder in this test; config dns.servers points at it, delivery.mx_port at the sink):
delivery through the MX, failover to the second MX when the first refuses connections or
answers 421 at the greeting, implicit MX (A only), null MX and NXDOMAIN bounced, SERVFAIL
deferred."""
import socket
import struct
import threading

import harness

SOA = ("ns.test", "hostmaster.test", 1, 3600, 600, 86400, 300)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class DnsServer:
    """Answers from `zone`: {(name, type): [rdata...]}, `nx`: names that do not exist,
    `servfail`: names answered SERVFAIL. Anything else that exists gets NOERROR/no data."""

    TYPES = {"A": 1, "MX": 15, "AAAA": 28, "SOA": 6}

    def __init__(self, zone, nx=(), servfail=()):
        self.zone = zone
        self.nx = set(nx)
        self.servfail = set(servfail)
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.sock.close()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(data), peer)
            except (OSError, ValueError, IndexError, struct.error):
                continue

    def answer(self, query):
        qid, flags = struct.unpack("!HH", query[:4])
        labels, i = [], 12
        while query[i]:
            n = query[i]
            labels.append(query[i + 1:i + 1 + n].decode().lower())
            i += 1 + n
        qtype, qclass = struct.unpack("!HH", query[i + 1:i + 5])
        question = query[12:i + 5]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        rcode = 0
        answers = []
        authority = []
        if name in self.servfail:
            rcode = 2
        elif name in self.nx:
            rcode = 3
            authority.append(self.soa())
        else:
            kind = {v: k for k, v in self.TYPES.items()}.get(qtype)
            for rdata in self.zone.get((name, kind), []):
                answers.append(self.rr(qtype, self.rdata(kind, rdata)))
            if not answers:
                authority.append(self.soa())
        header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                             len(answers), len(authority), 0)
        return header + question + b"".join(answers) + b"".join(authority)

    @staticmethod
    def rr(rtype, rdata, name=b"\xc0\x0c", ttl=300):
        return name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata

    @staticmethod
    def rdata(kind, value):
        if kind == "A":
            return socket.inet_aton(value)
        if kind == "MX":
            preference, host = value
            return struct.pack("!H", preference) + encode_name(host)
        raise ValueError(kind)

    def soa(self):
        mname, rname, serial, refresh, retry, expire, minimum = SOA
        rdata = encode_name(mname) + encode_name(rname) + struct.pack(
            "!IIIII", serial, refresh, retry, expire, minimum)
        return self.rr(6, rdata, name=encode_name("test"))


class Busy421:
    """Answers every connection on (ip, port) with "421" and closes it."""

    def __init__(self, ip, port):
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind((ip, port))
        self.sock.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(b"421 4.3.2 mx-busy.test too busy, try another MX\r\n")

    def stop(self):
        self.sock.close()


class Mx(harness.Workspace):
    def deliver_via_dns(self, cid, recipients, dns, sink, delivery_extra):
        """Submits `recipients` as campaign `cid` and runs until idle, resolving MX through
        `dns` and delivering to `sink`'s port; returns the run's CompletedProcess and the
        configuration file."""
        campaign = self.write("c.yaml", harness.campaign_yaml(cid, recipients))
        config = self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "off"
dns:
  servers: ["127.0.0.1:{dns.port}"]
delivery:
  threads: 1
  helo_name: salvo.test
  mx_port: {sink.port}
{delivery_extra}""")
        self.salvo("submit", campaign, config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        return r, config

    def test_mx_resolution_failover_and_failures(self):
        sink = harness.Sink(self.dir)
        busy = Busy421("127.0.0.3", sink.port)  # same port as the sink, another address
        zone = {
            # good.test: the first MX refuses connections (nothing listens on 127.0.0.2).
            ("good.test", "MX"): [(10, "mx1.good.test"), (20, "mx2.good.test")],
            ("mx1.good.test", "A"): ["127.0.0.2"],
            ("mx2.good.test", "A"): ["127.0.0.1"],
            # busy.test: the first MX answers 421 at the greeting.
            ("busy.test", "MX"): [(5, "mx-busy.test"), (50, "mx-ok.test")],
            ("mx-busy.test", "A"): ["127.0.0.3"],
            ("mx-ok.test", "A"): ["127.0.0.1"],
            # implicit.test: no MX, an A record.
            ("implicit.test", "A"): ["127.0.0.1"],
            # nullmx.test: RFC 7505.
            ("nullmx.test", "MX"): [(0, ".")],
        }
        dns = DnsServer(zone, nx=["nx.test"], servfail=["servfail.test"])
        try:
            recipients = ([f"g{i}@good.test" for i in range(3)] +
                          [f"b{i}@busy.test" for i in range(3)] +
                          [f"i{i}@implicit.test" for i in range(2)] +
                          ["n@nx.test", "z@nullmx.test", "s@servfail.test"])
            r, config = self.deliver_via_dns("mx", recipients, dns, sink,
                                             "  max_connections_per_destination: 2\n")
            out = r.stdout + r.stderr
            self.assertIn("8 delivered, 1 deferred, 2 bounced", r.stdout, out)
            received = b"\n".join(sink.messages())
            for rcpt in recipients[:8]:
                self.assertIn(rcpt.encode(), received)
            self.assertGreaterEqual(busy.connections, 1)  # the 421 MX was tried first
            self.assertIn("421", out)
            self.assertIn("connection refused", out)
            s = self.status(config)["mx"]
            self.assertEqual((s["delivered"], s["deferred"], s["bounced"]), (8, 1, 2))
            self.assertIn(("good.test", 15), dns.queries)
            self.assertIn(("implicit.test", 1), dns.queries)
        finally:
            dns.stop()
            busy.stop()
            sink.stop()

    def test_domains_served_by_the_same_mx_hosts_share_one_destination(self):
        # Two domains, the same two MX hosts at equal preference (so their order comes back
        # shuffled): one site, one connection limit for both.
        sink = harness.Sink(self.dir, maildir=False, extra=["--threads", "1", "--delay-ms", "3", "--measure-rate"])
        zone = {}
        for domain in ("one.test", "two.test"):
            zone[(domain, "MX")] = [(10, "mx-a.shared.test"), (10, "MX-B.shared.test.")]
        zone[("mx-a.shared.test", "A")] = ["127.0.0.1"]
        zone[("mx-b.shared.test", "A")] = ["127.0.0.1"]
        dns = DnsServer(zone)
        try:
            recipients = [f"u{i}@{d}" for i in range(40) for d in ("one.test", "two.test")]
            r, _ = self.deliver_via_dns("site", recipients, dns, sink,
                                        "  max_connections_per_destination: 1\n"
                                        "  messages_per_connection: 10\n")
            self.assertIn("80 delivered", r.stdout, r.stdout + r.stderr)
        finally:
            dns.stop()
            stats = sink.stop()
        self.assertEqual(stats["messages"], 80)
        # Per-domain destinations would have held two connections at once.
        self.assertEqual(stats["peak_connections"], 1, stats)
        self.assertGreaterEqual(stats["connections"], 8, stats)


if __name__ == "__main__":
    harness.main()
