"""Faults in the data directory, through the real binary: a full disk (a small tmpfs, or a
loop-mounted ext4 file where tmpfs cannot be mounted) during `salvo submit` and during
`salvo run`, a corrupt store (garbage over CURRENT, the MANIFEST, a table file), a data
directory that cannot be used even by root (a file in its place, a read-only file
system), and a second daemon on a data directory in use. Each failure exits with its
sysexits code (74 I/O, 75 temporary, 66 missing) and a message naming the directory;
none crashes, none loses an acknowledged job. test_bad_input.py covers bad campaigns and
configurations; test_control.py the control commands next to a daemon.

Mounting needs root (CI runs as root): where no file system can be mounted, the tests
fail and say why; they are never skipped."""
import collections
import errno
import os
import re
import shutil
import subprocess
import tempfile

import harness


def campaign_yaml(cid, csv):
    return f"""\
id: {cid}
from: "Disk <sender@origin.example>"
subject: "Hi {{{{n}}}}"
text: |
  Number {{{{n}}}} {{{{pad}}}}.
recipients_csv: {csv}
"""


def fill(directory):
    """Writes zeros into `directory` until its file system is full; returns the files."""
    paths = [os.path.join(directory, "filler"), os.path.join(directory, "filler2")]
    chunk = b"\0" * 65536
    with open(paths[0], "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    # What is left is less than a page or a block: the next write that needs one fails.
    try:
        with open(paths[1], "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 512)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
    return [p for p in paths if os.path.exists(p)]


class DataDir(harness.Workspace):
    def mount_small_fs(self, size_mib=6):
        """A fresh file system of `size_mib` MiB, unmounted after the test: a tmpfs, else an
        ext4 image on a loop device. Fails (never skips) when neither can be mounted."""
        base = tempfile.mkdtemp(prefix="salvo-fs-")
        mnt = os.path.join(base, "mnt")
        os.mkdir(mnt)
        self.addCleanup(shutil.rmtree, base, True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            image = os.path.join(base, "disk.img")
            with open(image, "wb") as f:
                f.truncate(size_mib << 20)
            tmpfs_error = r.stderr.strip()
            r = subprocess.run(["mkfs.ext2", "-q", "-F", "-m", "0", image],
                               capture_output=True, text=True)
            if r.returncode == 0:
                r = subprocess.run(["mount", "-o", "loop", image, mnt],
                                   capture_output=True, text=True)
            if r.returncode != 0:
                self.fail(f"cannot mount a small file system to fill (euid {os.geteuid()}; "
                          f"these tests need root): tmpfs: {tmpfs_error}; loop-mounted ext4: "
                          f"{r.stderr.strip()}")
        self.addCleanup(self.unmount, mnt)
        return mnt

    def unmount(self, mnt):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)

    def remount_read_only(self, mnt):
        r = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, f"cannot remount {mnt} read-only: {r.stderr}")

    def config_for(self, data_dir, sink_port=None, extra=""):
        route = "" if sink_port is None else f"""\
routes:
  - match: "*.example"
    host: 127.0.0.1
    port: {sink_port}
"""
        return self.write("salvo.yaml", f"""\
data_dir: {data_dir}
metrics:
  listen: "off"
delivery:
  threads: 2
  helo_name: salvo.test
  max_connections_per_destination: 4
{extra}{route}""")

    def make_campaign(self, cid, n, pad=0):
        rows = ["email,n,pad"] + [f"{cid}{i}@d{i % 5}.example,{i},{'x' * pad}" for i in range(n)]
        self.write(f"{cid}.csv", "\n".join(rows) + "\n")
        return self.write(f"{cid}.yaml", campaign_yaml(cid, f"{cid}.csv"))

    def sink(self, name, extra=()):
        workdir = self.path(name)
        os.makedirs(workdir)
        sink = harness.Sink(workdir, extra=extra)
        self.addCleanup(self.kill, sink.proc)
        return sink

    def kill(self, proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def assert_fails(self, config, args, code, *needles):
        r = self.salvo(*args, config=config, check=code)
        for needle in needles:
            self.assertIn(needle, r.stderr, f"salvo {' '.join(args)}")
        self.assertNotIn("Assertion", r.stderr)
        return r

    def received(self, *sinks):
        counts = collections.Counter()
        for sink in sinks:
            for raw in sink.messages():
                m = re.search(rb"^Delivered-To: (.+?)\r$", raw, re.M)
                self.assertIsNotNone(m, "a message without Delivered-To")
                counts[m.group(1).decode()] += 1
        return counts

    # --- a full disk ---

    def test_submit_too_big_for_the_disk_leaves_nothing(self):
        mnt = self.mount_small_fs(8)
        data = os.path.join(mnt, "data")
        config = self.config_for(data)
        # Other files take part of the disk: the operator deletes them after the failure.
        ballast = os.path.join(mnt, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (3 << 20))
        # About 12 MiB of jobs for the 5 MiB left.
        big = self.make_campaign("big", 100_000, pad=100)
        r = self.assert_fails(config, ["submit", big], 74, data, "No space left on device",
                              "submit failed; nothing was queued")
        self.assertNotIn("recipient(s) queued", r.stdout)
        # A failed submit never becomes deliverable: at most a 'loading' leftover, which
        # the next writer to open the store removes.
        leftover = self.status(config).get("big")
        self.assertIn(leftover and leftover["state"], (None, "loading"))
        # Once space is freed, the same directory takes a campaign that fits, and the big
        # one is gone.
        os.remove(ballast)
        small = self.make_campaign("small", 2000, pad=100)
        r = self.salvo("submit", small, config=config, check=0)
        self.assertIn("2000 recipient(s) queued", r.stdout)
        s = self.status(config)
        self.assertEqual(list(s), ["small"])
        self.assertEqual((s["small"]["state"], s["small"]["queued"]), ("active", 2000))

    def test_disk_full_while_committing_outcomes_loses_nothing(self):
        mnt = self.mount_small_fs()
        data = os.path.join(mnt, "data")
        # 10 ms per message and sink thread: the run is still delivering when the disk fills.
        slow = self.sink("slow", extra=["--delay-ms", "10"])
        config = self.config_for(data, slow.port)
        n = 1000
        self.salvo("submit", self.make_campaign("c", n, pad=20), config=config, check=0)
        daemon = self.start("run", config=config)
        harness.wait_for(lambda: slow.count() >= 50 or daemon.poll() is not None,
                         what="the first deliveries")
        self.assertIsNone(daemon.poll(), "the daemon exited before the disk was filled")
        fillers = fill(mnt)
        self.assertEqual(daemon.wait(timeout=60), 74)
        with open(self.path("proc-0.log")) as f:
            log = f.read()
        self.assertRegex(log, re.escape(data) + r".*No space left on device")
        self.assertNotIn("Assertion", log)
        self.assertLess(slow.count(), n, "the run finished before the disk filled")
        slow.stop()

        # Space freed: a rerun delivers every recipient at least once.
        for path in fillers:
            os.remove(path)
        fast = self.sink("fast")
        config = self.config_for(data, fast.port)
        self.salvo("run", "--until-idle", config=config, check=0)
        fast.stop()
        received = self.received(slow, fast)
        expected = {f"c{i}@d{i % 5}.example" for i in range(n)}
        self.assertEqual(set(received), expected)
        # Only messages accepted before the failure, whose outcome was not committed, may
        # arrive twice.
        duplicates = sum(c - 1 for c in received.values())
        print(f"\ndisk full while committing: {slow.count()} delivered before, "
              f"{duplicates} duplicate(s) after the rerun")
        self.assertLessEqual(duplicates, slow.count())
        s = self.status(config)["c"]
        self.assertEqual((s["delivered"], s["queued"], s["deferred"], s["in_flight"]),
                         (n, 0, 0, 0))

    # --- a corrupt store ---

    def pristine_store(self):
        data = self.path("pristine")
        config = self.config_for(data)
        self.salvo("submit", self.make_campaign("c", 2000, pad=20), config=config, check=0)
        # Opening for writing again replays the log into table files.
        self.salvo("suppress", "list", config=config, check=0)
        tables = [f for f in os.listdir(data) if f.endswith(".sst")]
        self.assertTrue(tables, f"no table files in {data}: {os.listdir(data)}")
        return data

    def corrupted(self, pristine, name, corrupt):
        data = self.path(name)
        shutil.copytree(pristine, data)
        corrupt(data)
        return data, self.config_for(data)

    def test_corrupt_store_is_refused_with_its_directory(self):
        pristine = self.pristine_store()
        campaign = self.path("c.yaml")

        def garbage_over(pattern, offset=0, length=None):
            def corrupt(data):
                names = [f for f in os.listdir(data) if re.fullmatch(pattern, f)]
                self.assertTrue(names, f"no {pattern} in {data}")
                # The largest match: for table files, the one holding the job records.
                path = os.path.join(data, max(names,
                                              key=lambda f: os.path.getsize(os.path.join(data, f))))
                size = os.path.getsize(path)
                with open(path, "r+b") as f:
                    f.seek(offset)
                    f.write(bytes((i * 37 + 11) % 256 for i in range((length or size) - offset)))
            return corrupt

        # CURRENT and the MANIFEST are read by every open, read-only ones included.
        for name, corrupt in (("current", garbage_over("CURRENT")),
                              ("manifest", garbage_over(r"MANIFEST-\d+"))):
            data, config = self.corrupted(pristine, name, corrupt)
            for args in (["status"], ["run", "--until-idle"], ["submit", campaign],
                         ["pause", "c"]):
                self.assert_fails(config, args, 74, f"salvo: queue: {data}: corrupt: ")

        # A whole table file overwritten: refused when the store opens for writing.
        data, config = self.corrupted(pristine, "table", garbage_over(r"\d+\.sst"))
        for args in (["run", "--until-idle"], ["submit", campaign]):
            self.assert_fails(config, args, 74, f"salvo: queue: {data}: corrupt: ")

        # A damaged block inside the job records: found when the jobs are read, and the run
        # stops instead of delivering from a queue it cannot trust.
        data, config = self.corrupted(pristine, "block", garbage_over(r"\d+\.sst", 1024, 5120))
        sink = self.sink("sink")
        config = self.config_for(data, sink.port)
        r = self.salvo("run", "--until-idle", config=config, check=74)
        self.assertRegex(r.stderr, re.escape(f"queue: {data}: corrupt: ") + r".*\.sst")
        self.assertNotIn("Assertion", r.stderr)
        sink.stop()

    # --- a directory even root cannot use ---

    def test_file_in_place_of_the_data_directory(self):
        data = self.write("data", "not a directory\n")
        config = self.config_for(data)
        campaign = self.make_campaign("c", 5)
        for args in (["status"], ["run", "--until-idle"], ["submit", campaign], ["pause", "c"],
                     ["suppress", "add", "a@b.example"]):
            self.assert_fails(config, args, 74, f"salvo: queue: {data}: not a directory")
        # Below a file: the directory cannot be created or reached.
        below = os.path.join(data, "store")
        config = self.config_for(below)
        self.assert_fails(config, ["submit", campaign], 74, f"salvo: queue: {below}: ",
                          "Not a directory")
        self.assert_fails(config, ["run", "--until-idle"], 74, f"salvo: queue: {below}: ",
                          "Not a directory")
        with open(data) as f:
            self.assertEqual(f.read(), "not a directory\n")

    def test_read_only_file_system(self):
        mnt = self.mount_small_fs(2)
        data = os.path.join(mnt, "data")
        config = self.config_for(data)
        campaign = self.make_campaign("c", 20)
        self.salvo("submit", campaign, config=config, check=0)
        self.remount_read_only(mnt)
        # Reading still works; every writer is refused and names the directory.
        self.assertEqual(self.status(config)["c"]["queued"], 20)
        for args in (["run", "--until-idle"], ["submit", campaign], ["cancel", "c"]):
            self.assert_fails(config, args, 74, f"salvo: queue: {data}: ",
                              "Read-only file system")
        # A data directory still to be created on a read-only file system.
        fresh = os.path.join(mnt, "fresh")
        config = self.config_for(fresh)
        self.assert_fails(config, ["submit", campaign], 74,
                          f"salvo: queue: {fresh}: cannot create the directory: "
                          "Read-only file system")
        self.assert_fails(config, ["status"], 66, f"salvo: queue: {fresh}: no such directory")

    # --- a second daemon ---

    def test_second_daemon_refused_while_the_first_delivers(self):
        # test_control.py refuses one `run --until-idle` next to an idle-ish daemon; here both
        # forms are refused mid-delivery, and the first daemon's counts come out exact.
        sink = self.sink("sink", extra=["--delay-ms", "5"])
        data = self.path("data")
        config = self.config_for(data, sink.port)
        n = 1000
        self.salvo("submit", self.make_campaign("c", n), config=config, check=0)
        daemon = self.start("run", "--until-idle", config=config)
        harness.wait_for(lambda: sink.count() >= 20 or daemon.poll() is not None,
                         what="the first deliveries")
        self.assertIsNone(daemon.poll(), "the first daemon finished before the second started")
        for args in (["run"], ["run", "--until-idle"]):
            self.assert_fails(config, args, 75,
                              f"salvo: queue: {data}: in use by another salvo process")
        self.assertLess(sink.count(), n, "the first daemon finished before the second started")
        self.assertEqual(daemon.wait(timeout=60), 0)
        sink.stop()
        received = self.received(sink)
        self.assertEqual(set(received), {f"c{i}@d{i % 5}.example" for i in range(n)})
        self.assertEqual(sum(received.values()), n, "duplicates without any crash")
        s = self.status(config)["c"]
        self.assertEqual((s["delivered"], s["queued"], s["in_flight"], s["attempts"]),
                         (n, 0, 0, n))


if __name__ == "__main__":
    harness.main()
