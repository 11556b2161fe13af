#!/usr/bin/env python3
"""Mount benchmark: NoiseFS through FUSE against gocryptfs and bindfs mounted on the same base filesystem,
and the base filesystem itself, in one run (fio job files in scripts/fio/):

- sequential write of a 1 GiB file (1 MiB requests, fsync at the end);
- cold sequential read of it after a remount (NoiseFS: after the file is sealed, so it is read from blocks);
- create + write 4 KiB + stat + unlink of 10k small files;
- the same small-file work by another user (uid 65534, through setpriv) on NoiseFS and gocryptfs mounted
  with allow_other (the kernel checks every caller against the modes).

Each figure is the median of RUNS runs. Usage: scripts/bench-mount.sh [--quick] [--dir BASE] [--runs N]
  --quick: 256 MiB and 2k files; BASE: where everything lives (default: a tmpfs under /dev/shm)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
QUICK = "--quick" in sys.argv
SIZE = (256 if QUICK else 1024) << 20
FILES = 2000 if QUICK else 10000
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
PASSWORD = "bench-password"


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def wait(cond, what, timeout=300):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            sys.exit(f"bench-mount: timed out waiting for {what}")
        time.sleep(0.05)


def fio(job, file, size):
    env = dict(os.environ, FILE=file, SIZE=str(size))
    out = run(["fio", "--output-format=json", os.path.join(ROOT, "scripts", "fio", job)], env=env).stdout
    j = json.loads(out)["jobs"][0]
    side = j["write"] if j["write"]["io_bytes"] else j["read"]
    return side["bw_bytes"] / 1e6


def small_files(d, n):
    data = os.urandom(4096)
    t = time.perf_counter()
    for i in range(n):
        p = os.path.join(d, f"f{i:05}")
        with open(p, "wb") as f:
            f.write(data)
        os.stat(p)
        os.unlink(p)
    return n / (time.perf_counter() - t)


SMALL_AS = """
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(4096)
t = time.perf_counter()
for i in range(n):
    p = os.path.join(d, f"f{i:05}")
    with open(p, "wb") as f:
        f.write(data)
    os.stat(p)
    os.unlink(p)
print(n / (time.perf_counter() - t))
"""
OTHER = 65534


def small_files_as(d, n, uid):
    """small_files run by user uid (a folder of its own, made by root)."""
    os.chown(d, uid, uid)
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", SMALL_AS,
           d, str(n)]
    return float(run(cmd).stdout.decode().strip())


class NoiseFS:
    name = "noisefs"
    tag = "nfs"
    opts = []

    def __init__(self, base):
        self.repo, self.mnt = os.path.join(base, f"{self.tag}-repo"), os.path.join(base, f"{self.tag}-mnt")
        os.makedirs(self.mnt)
        self.env = dict(os.environ, NOISEFS_HOME=self.repo)
        run([os.path.join(REL, "noisefs"), "-q", "init"], env=self.env)

    def mount(self):
        run([os.path.join(REL, "mount-noisefs"), self.repo, self.mnt, *self.opts], env=self.env)

    def unmount(self):
        run([os.path.join(REL, "noisefs"), "unmount", self.mnt], env=self.env)

    def settle(self, path):
        # The cold read must come from sealed blocks, not from staging.
        wait(lambda: has_link(path), "the file to be sealed")


def has_link(path):
    try:
        os.getxattr(path, "user.noisefs.link")
        return True
    except OSError:
        return False


class NoiseFSOther(NoiseFS):
    name = "noisefs allow_other"
    tag = "nfs-other"
    opts = ["-o", "allow_other"]
    user = OTHER


class GocryptFS:
    name = "gocryptfs"
    tag = "gc"
    opts = []

    def __init__(self, base):
        self.cipher, self.mnt = os.path.join(base, f"{self.tag}-cipher"), os.path.join(base, f"{self.tag}-mnt")
        os.makedirs(self.cipher)
        os.makedirs(self.mnt)
        self.pw = os.path.join(base, f"{self.tag}-pw")
        with open(self.pw, "w") as f:
            f.write(PASSWORD)
        run(["gocryptfs", "-init", "-q", "-passfile", self.pw, self.cipher])

    def mount(self):
        run(["gocryptfs", "-q", *self.opts, "-passfile", self.pw, self.cipher, self.mnt])

    def unmount(self):
        run(["fusermount3", "-u", self.mnt])
        wait(lambda: not mounted(self.mnt), "gocryptfs to unmount")

    def settle(self, path):
        pass


class GocryptFSOther(GocryptFS):
    name = "gocryptfs allow_other"
    tag = "gc-other"
    opts = ["-allow_other"]
    user = OTHER


class BindFS:
    name = "bindfs"

    def __init__(self, base):
        self.src, self.mnt = os.path.join(base, "bind-src"), os.path.join(base, "bind-mnt")
        os.makedirs(self.src)
        os.makedirs(self.mnt)

    def mount(self):
        run(["bindfs", self.src, self.mnt])

    def unmount(self):
        run(["fusermount3", "-u", self.mnt])
        wait(lambda: not mounted(self.mnt), "bindfs to unmount")

    def settle(self, path):
        pass


class Native:
    name = "base filesystem"

    def __init__(self, base):
        self.mnt = os.path.join(base, "native")
        os.makedirs(self.mnt)

    def mount(self):
        pass

    def unmount(self):
        pass

    def settle(self, path):
        pass


def measure_other(fs):
    """Only the small-file work, by another user, on a mount made with allow_other."""
    smalls = []
    for r in range(RUNS):
        fs.mount()
        os.chmod(fs.mnt, 0o755)
        d = os.path.join(fs.mnt, f"small{r}")
        os.makedirs(d)
        smalls.append(small_files_as(d, FILES, fs.user))
        os.rmdir(d)
        fs.unmount()
    return {"fs": fs.name, "small_files_per_s": round(statistics.median(smalls), 1),
            "runs": {"small": [round(x) for x in smalls]}}


def measure(fs):
    if getattr(fs, "user", None) is not None:
        return measure_other(fs)
    writes, reads, smalls = [], [], []
    for r in range(RUNS):
        fs.mount()
        f = os.path.join(fs.mnt, f"big{r}.bin")
        writes.append(fio("seq-write.fio", f, SIZE))
        fs.settle(f)
        fs.unmount()
        fs.mount()
        reads.append(fio("seq-read.fio", f, SIZE))
        d = os.path.join(fs.mnt, f"small{r}")
        os.makedirs(d)
        smalls.append(small_files(d, FILES))
        os.unlink(f)
        fs.unmount()
    return {
        "fs": fs.name, "seq_write_mb_s": round(statistics.median(writes), 1),
        "cold_seq_read_mb_s": round(statistics.median(reads), 1),
        "small_files_per_s": round(statistics.median(smalls), 1),
        "runs": {"write": [round(x) for x in writes], "read": [round(x) for x in reads],
                 "small": [round(x) for x in smalls]},
    }


def main():
    for tool in ("fio", "gocryptfs", "bindfs", "fusermount3", "setpriv"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-mount: {tool} is needed (apt-get install fio gocryptfs bindfs fuse3)")
    base = arg("--dir", None)
    base = tempfile.mkdtemp(dir=base or "/dev/shm", prefix="noisefs-bench-mount-")
    os.chmod(base, 0o755)  # the allow_other rows reach their mount points as another user
    results = []
    try:
        for cls in (NoiseFS, GocryptFS, BindFS, Native, NoiseFSOther, GocryptFSOther):
            fs = cls(base)
            results.append(measure(fs))
            print(json.dumps(results[-1]), flush=True)
    finally:
        for m in ("nfs-mnt", "gc-mnt", "bind-mnt", "nfs-other-mnt", "gc-other-mnt"):
            p = os.path.join(base, m)
            if os.path.isdir(p) and mounted(p):
                subprocess.run(["fusermount3", "-uz", p])
        shutil.rmtree(base, ignore_errors=True)
    n, g, no, go = results[0], results[1], results[4], results[5]
    print(f"\n{SIZE >> 20} MiB file, {FILES} small files, median of {RUNS} runs, base {os.path.dirname(base)}")
    print(f"{'':22} {'seq write MB/s':>15} {'cold read MB/s':>15} {'small files/s':>14}")
    for r in results:
        w, c = r.get("seq_write_mb_s", "-"), r.get("cold_seq_read_mb_s", "-")
        print(f"{r['fs']:22} {w:>15} {c:>15} {r['small_files_per_s']:>14}")
    print(f"allow_other, uid {OTHER}: small files {no['small_files_per_s'] / go['small_files_per_s']:.2f}x "
          "gocryptfs allow_other")
    print(f"noisefs / gocryptfs: write {n['seq_write_mb_s'] / g['seq_write_mb_s']:.2f}x (target 1.5x), "
          f"read {n['cold_seq_read_mb_s'] / g['cold_seq_read_mb_s']:.2f}x (target 1x), "
          f"small files {n['small_files_per_s'] / g['small_files_per_s']:.2f}x (target 1.5x)")


if __name__ == "__main__":
    main()
