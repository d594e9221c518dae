"""Bad input through the real binary: each error names file:line:column, exits 65 (bad
data) or 66 (missing input), and leaves the queue empty."""
import harness

GOOD_HEAD = """\
id: bad
from: sender@origin.example
subject: "Hi {{name}}"
"""


class BadInput(harness.Workspace):
    def check(self, name, text, code, expected_lines):
        path = self.write(name, text)
        config = self.write_config(2525)
        for command in ("validate", "submit"):
            r = self.salvo(command, path, config=config, check=code)
            for line in expected_lines:
                self.assertIn(line.format(path=path), r.stderr, f"{command}: {r.stderr}")
        # Nothing was queued: the store holds no campaign at all.
        self.assertEqual(self.status(config), {})

    def test_yaml_syntax_error(self):
        self.check("syntax.yaml", GOOD_HEAD + 'text: "hello"\n  recipients: []\n', 65,
                   ["{path}:5:3: end of map not found"])

    def test_missing_field(self):
        self.check("missing.yaml", """\
id: bad
subject: "Hi"
text: "Hello"
recipients:
  - email: a@d.example
""", 65, ["{path}:1:1: missing required field 'from'"])

    def test_invalid_address(self):
        self.check("addr.yaml", GOOD_HEAD + """\
text: "Hello {{name}}"
recipients:
  - email: ok@d.example
    name: Ok
  - email: "bob@@d.example"
    name: Bob
""", 65, ["{path}:8:12: "])

    def test_unknown_merge_field(self):
        self.check("field.yaml", GOOD_HEAD + """\
text: |
  Hello {{name}},
  your code is {{cod}}.
recipients:
  - email: a@d.example
    name: A
    code: X
""", 65, ["{path}:6:16: unknown merge field 'cod'"])

    def test_missing_csv_file(self):
        self.check("csv.yaml", GOOD_HEAD + """\
text: "Hello {{name}}"
recipients_csv: nowhere.csv
""", 66, ["cannot open recipients file", "nowhere.csv"])

    def test_all_errors_reported_at_once(self):
        path = self.write("many.yaml", """\
id: bad
from: "not an address"
subject: "Hi {{nam}}"
text: "Hello"
recipients:
  - email: a@@d.example
""")
        r = self.salvo("validate", path, check=65)
        self.assertIn(f"{path}:2:", r.stderr)
        self.assertIn(f"{path}:3:", r.stderr)
        self.assertIn(f"{path}:6:", r.stderr)

    def test_bad_row_after_written_batches_leaves_nothing(self):
        # Submit checks rows as it streams them into jobs (10,000 per batch): a bad row
        # after 25,000 good ones comes after batches were written. They are removed, and
        # the report is validate's: every bad row, by file:line:column.
        rows = ["email,name"] + [f"user{i}@d{i % 7}.example,N{i}" for i in range(25000)]
        rows += ["bob@@d.example,Bob"] + [f"late{i}@d.example,L{i}" for i in range(10)]
        rows += ["x@d.example\u0000,Nul"]
        csv = self.write("late.csv", "\n".join(rows) + "\n")
        path = self.write("late.yaml", GOOD_HEAD + 'text: "Hello {{name}}"\nrecipients_csv: late.csv\n')
        config = self.write_config(2525)
        r = self.salvo("submit", path, config=config, check=65)
        self.assertIn(f"{csv}:25002:", r.stderr)
        self.assertIn(f"{csv}:25013:", r.stderr)
        self.assertEqual(self.status(config), {})
        # The same id goes in once the file is fixed: nothing of the failed submit is left.
        rows[25001] = "bob@d.example,Bob"
        rows[-1] = "x@d.example,Nul"
        self.write("late.csv", "\n".join(rows) + "\n")
        r = self.salvo("submit", path, config=config)
        self.assertIn("25012 recipient(s) queued", r.stdout)
        self.assertEqual(self.status(config)["bad"]["queued"], 25012)

    def test_bad_config_is_exit_78(self):
        config = self.write("salvo.yaml", "delivery:\n  threads: many\n")
        r = self.salvo("status", config=config, check=78)
        self.assertIn(f"{config}:2:", r.stderr)

    def test_missing_config_is_exit_66(self):
        r = self.salvo("status", config=self.path("nope.yaml"), check=66)
        self.assertIn("nope.yaml", r.stderr)


if __name__ == "__main__":
    harness.main()
