"""SMTP AUTH against a real server: `salvo sink --auth USER:PASSWORD_FILE` offers AUTH
PLAIN LOGIN and refuses MAIL before AUTH. The sink has no TLS, so the routes set
allow_plaintext_auth: true (or leave it off, to check that credentials are withheld).
Also checks the config-load refusals (a password file others may read, a missing
environment variable) and that the password never appears in salvo's output."""
import os

import harness

PASSWORD = "s3cret-Pa55"
COUNT = 5


class Auth(harness.Workspace):
    def setUp(self):
        super().setUp()
        self.password_file = self.write("sink-password", PASSWORD + "\n")
        self.sink = harness.Sink(self.dir, extra=["--auth", f"mailer:{self.password_file}"])
        inline = "\n".join(f"  - email: r{i}@d.example" for i in range(COUNT))
        self.campaign = self.write("c.yaml", f"""\
id: authc
from: sender@origin.example
subject: "Hi"
text: "Hello"
recipients:
{inline}
""")

    def tearDown(self):
        self.sink.stop()
        super().tearDown()

    def config(self, route_auth):
        return self.write("salvo.yaml", f"""\
data_dir: {self.path('data')}
metrics:
  listen: "off"
delivery:
  threads: 1
  helo_name: salvo.test
routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {self.sink.port}
{route_auth}""")

    def client_password(self, text, mode=0o600):
        path = self.write("client-password", text)
        os.chmod(path, mode)
        return path

    def run_campaign(self, config):
        self.salvo("submit", self.campaign, config=config, check=0)
        r = self.salvo("run", "--until-idle", config=config, check=0)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)
        return r

    def test_password_file_delivers(self):
        path = self.client_password(PASSWORD + "\n")
        r = self.run_campaign(self.config(f"""\
    auth_user: mailer
    password_file: {path}
    allow_plaintext_auth: true
"""))
        self.assertIn(f"{COUNT} delivered, 0 deferred, 0 bounced", r.stdout)
        self.assertEqual(self.sink.count(), COUNT)

    def test_password_env_delivers(self):
        config = self.config("""\
    auth_user: mailer
    password_env: SALVO_TEST_SMTP_PASSWORD
    allow_plaintext_auth: true
""")
        os.environ["SALVO_TEST_SMTP_PASSWORD"] = PASSWORD
        try:
            r = self.run_campaign(config)
        finally:
            del os.environ["SALVO_TEST_SMTP_PASSWORD"]
        self.assertIn(f"{COUNT} delivered, 0 deferred, 0 bounced", r.stdout)

    def test_wrong_password_defers(self):
        path = self.client_password("wrong\n")
        r = self.run_campaign(self.config(f"""\
    auth_user: mailer
    password_file: {path}
    allow_plaintext_auth: true
"""))
        self.assertIn(f"0 delivered, {COUNT} deferred, 0 bounced", r.stdout)
        self.assertIn("authentication failed: 535 5.7.8", r.stdout + r.stderr)
        self.assertEqual(self.sink.count(), 0)

    def test_no_credentials_in_plaintext(self):
        path = self.client_password(PASSWORD)
        r = self.run_campaign(self.config(f"""\
    auth_user: mailer
    password_file: {path}
"""))
        self.assertIn(f"0 delivered, {COUNT} deferred, 0 bounced", r.stdout)
        self.assertIn("refusing to send credentials without TLS", r.stdout + r.stderr)
        self.assertEqual(self.sink.count(), 0)

    def test_without_auth_the_sink_refuses_mail(self):
        # The sink answers MAIL with 530 5.7.0 (permanent): what a smarthost does to a
        # client that skips AUTH, and why a failed AUTH must defer rather than carry on.
        r = self.run_campaign(self.config(""))
        self.assertIn(f"0 delivered, 0 deferred, {COUNT} bounced", r.stdout)
        self.assertEqual(self.sink.count(), 0)

    def test_config_refusals(self):
        path = self.client_password(PASSWORD, mode=0o644)
        config = self.config(f"""\
    auth_user: mailer
    password_file: {path}
""")
        r = self.salvo("status", config=config)
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("lets others read it", r.stderr)
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)

        config = self.config("""\
    auth_user: mailer
    password_env: SALVO_TEST_UNSET_VARIABLE
""")
        r = self.salvo("status", config=config)
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("'SALVO_TEST_UNSET_VARIABLE' is not set", r.stderr)

        config = self.config("""\
    password_env: HOME
""")
        r = self.salvo("status", config=config)
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertIn("'password_env' needs 'auth_user'", r.stderr)


if __name__ == "__main__":
    harness.main()
