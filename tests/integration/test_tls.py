"""STARTTLS through the real binary against an in-test SMTP server (Python's ssl module on
127.0.0.1) with certificates generated at test time by `openssl req`: opportunistic TLS
with a self-signed certificate, `verify` with a trusted certificate, `verify` refusing a
self-signed or wrong-name certificate, `required` against a server without STARTTLS, bytes
injected after "220 ready", and the plaintext retry after a failed opportunistic
handshake."""
import os
import socketserver
import ssl
import subprocess
import threading

import harness


def make_cert(directory, name, san):
    """A self-signed certificate and key; `san` like "IP:127.0.0.1" or "DNS:mx.example"."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=" + san.split(":", 1)[1],
                    "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True)
    return cert, key


class SmtpServer:
    """A small pipelining-capable SMTP server. `starttls`: advertise STARTTLS; `inject`:
    bytes sent right after "220 Ready" (same write); `break_tls`: answer STARTTLS with 220
    and then garbage instead of a TLS handshake."""

    def __init__(self, cert=None, key=None, starttls=True, inject=b"", break_tls=False):
        self.lock = threading.Lock()
        self.messages = []  # (tls, recipient)
        self.connections = 0
        self.after_tls = []  # first command after each handshake
        self.errors = []
        self.context = None
        if cert:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, key)
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.connections += 1
                try:
                    outer.serve(self.request, starttls, inject, break_tls)
                except (OSError, ssl.SSLError) as e:
                    with outer.lock:
                        outer.errors.append(repr(e))

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def serve(self, sock, starttls, inject, break_tls):
        buf = b""
        tls = False

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
            text, buf = buf.split(b"\r\n", 1)
            return text

        try:
            sock.sendall(b"220 tls-test ESMTP\r\n")
            rcpt = None
            first_after_tls = False
            while True:
                cmd = line()
                if cmd is None:
                    return
                verb = cmd.split(b" ", 1)[0].upper()
                if first_after_tls:
                    first_after_tls = False
                    with self.lock:
                        self.after_tls.append(cmd.decode())
                if verb in (b"EHLO", b"HELO"):
                    offer = starttls and not tls and self.context is not None
                    sock.sendall(b"250-tls-test\r\n250-PIPELINING\r\n" +
                                 (b"250-STARTTLS\r\n" if offer else b"") + b"250 8BITMIME\r\n")
                elif verb == b"STARTTLS":
                    if buf:
                        self.errors.append("client pipelined after STARTTLS")
                    sock.sendall(b"220 2.0.0 Ready to start TLS\r\n" + inject)
                    if break_tls:
                        sock.sendall(b"this is not a TLS handshake\r\n" * 20)
                        return
                    sock = self.context.wrap_socket(sock, server_side=True)
                    tls = True
                    first_after_tls = True
                elif verb == b"MAIL":
                    rcpt = None
                    sock.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpt = cmd.decode().split("<", 1)[1].split(">", 1)[0]
                    sock.sendall(b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    sock.sendall(b"354 go ahead\r\n")
                    while True:
                        data = line()
                        if data is None:
                            return
                        if data == b".":
                            break
                    with self.lock:
                        self.messages.append((tls, rcpt))
                    sock.sendall(b"250 2.0.0 queued\r\n")
                elif verb == b"RSET" or verb == b"NOOP":
                    sock.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    sock.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    sock.sendall(b"502 5.5.2 unknown command\r\n")
        finally:
            sock.close()


class Tls(harness.Workspace):
    COUNT = 20

    def setUp(self):
        super().setUp()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        super().tearDown()

    def server(self, **kwargs):
        s = SmtpServer(**kwargs)
        self.servers.append(s)
        return s

    def deliver(self, port, route_tls=None, ca_file=None):
        """Submits COUNT recipients routed to 127.0.0.1:port and runs until idle."""
        inline = "\n".join(f"  - email: user{i}@tls.example" for i in range(self.COUNT))
        campaign = self.write("c.yaml", f"""\
id: tls
from: sender@origin.example
subject: "TLS test"
text: "Hello over TLS"
recipients:
{inline}
""")
        delivery = "  tls_ca_file: " + ca_file + "\n" if ca_file else ""
        route = f"    tls: {route_tls}\n" if route_tls else ""
        config = self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "off"
delivery:
  threads: 1
  helo_name: salvo.test
  max_connections_per_destination: 2
{delivery}routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {port}
{route}""")
        self.salvo("submit", campaign, config=config, check=0)
        return self.salvo("run", "--until-idle", config=config, check=0)

    def test_opportunistic_uses_tls_with_self_signed_certificate(self):
        cert, key = make_cert(self.dir, "self", "DNS:mx.tls.example")
        s = self.server(cert=cert, key=key)
        r = self.deliver(s.port)
        self.assertIn(f"{self.COUNT} delivered, 0 deferred, 0 bounced", r.stdout)
        self.assertEqual(len(s.messages), self.COUNT)
        self.assertTrue(all(tls for tls, _ in s.messages), s.messages)
        # EHLO again right after every handshake (RFC 3207 §4.2).
        self.assertTrue(s.after_tls)
        self.assertTrue(all(c.upper().startswith("EHLO ") for c in s.after_tls), s.after_tls)

    def test_verify_delivers_with_trusted_certificate_matching_the_host(self):
        cert, key = make_cert(self.dir, "ip", "IP:127.0.0.1")
        s = self.server(cert=cert, key=key)
        r = self.deliver(s.port, route_tls="verify", ca_file=cert)
        self.assertIn(f"{self.COUNT} delivered, 0 deferred, 0 bounced", r.stdout)
        self.assertTrue(all(tls for tls, _ in s.messages))

    def test_verify_refuses_self_signed_certificate(self):
        cert, key = make_cert(self.dir, "ip", "IP:127.0.0.1")
        s = self.server(cert=cert, key=key)
        r = self.deliver(s.port, route_tls="verify")  # not trusted: no CA file
        self.assertIn(f"0 delivered, {self.COUNT} deferred, 0 bounced", r.stdout)
        self.assertEqual(s.messages, [])
        self.assertIn("certificate verification failed", r.stderr + r.stdout)

    def test_verify_refuses_wrong_name(self):
        cert, key = make_cert(self.dir, "other", "DNS:mx.elsewhere.example")
        s = self.server(cert=cert, key=key)
        r = self.deliver(s.port, route_tls="verify", ca_file=cert)  # trusted, wrong name
        self.assertIn(f"0 delivered, {self.COUNT} deferred, 0 bounced", r.stdout)
        self.assertEqual(s.messages, [])
        self.assertIn("IP address mismatch", r.stderr + r.stdout)

    def test_required_defers_when_starttls_not_offered(self):
        s = self.server(starttls=False)
        r = self.deliver(s.port, route_tls="required")
        self.assertIn(f"0 delivered, {self.COUNT} deferred, 0 bounced", r.stdout)
        self.assertEqual(s.messages, [])
        self.assertIn("does not offer STARTTLS", r.stderr + r.stdout)

    def test_bytes_injected_after_220_are_not_replies(self):
        cert, key = make_cert(self.dir, "self", "DNS:mx.tls.example")
        # Were these read as replies, the client would answer its EHLO/MAIL with them (or
        # hand them to TLS and fail the handshake, then fall back to plaintext).
        s = self.server(cert=cert, key=key,
                        inject=b"250-injected\r\n250 PIPELINING\r\n554 5.7.0 injected\r\n")
        r = self.deliver(s.port)
        self.assertIn(f"{self.COUNT} delivered, 0 deferred, 0 bounced", r.stdout)
        self.assertTrue(all(tls for tls, _ in s.messages), s.messages)
        self.assertTrue(all(c.upper().startswith("EHLO ") for c in s.after_tls), s.after_tls)
        self.assertEqual(s.errors, [])

    def test_failed_opportunistic_handshake_retries_in_plaintext(self):
        cert, key = make_cert(self.dir, "self", "DNS:mx.tls.example")
        s = self.server(cert=cert, key=key, break_tls=True)
        r = self.deliver(s.port)
        self.assertIn(f"{self.COUNT} delivered, 0 deferred, 0 bounced", r.stdout)
        self.assertEqual(len(s.messages), self.COUNT)
        self.assertFalse(any(tls for tls, _ in s.messages))
        self.assertIn("retrying without TLS", r.stderr + r.stdout)


if __name__ == "__main__":
    harness.main()
