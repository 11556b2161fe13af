#!/usr/bin/env python3
"""Network benchmarks on 127.0.0.1, each against a baseline measured in the same run.

- throughput: a file put into repository A (its daemon runs the node) is fetched cold by repository B
  (`noisefs get`, B knowing only A's address), against a plain libp2p stream (same TCP, noise, yamux)
  copying the same number of bytes (net/examples/stream_baseline.rs). Target: file >= 70% of the stream.
- ttfb: B mounts a folder of A's holding a 100 MiB file (`mount --root LINK`, nothing of it local) and
  reads its first byte: the time from open to the byte (median of 5 files), against the same link
  mounted on A, where the blocks are. Target: <= 100 ms.
- memory: 1,000 peers' want lists, each flooded to twice its cap (net/examples/want_memory.rs).

Usage: scripts/bench-net.sh [--quick] [--only throughput|ttfb|memory]
  --quick: 256 MiB instead of 1 GiB
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
BIN = os.path.join(REL, "noisefs")
QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
MIB = 1 << 20
SIZE = (256 if QUICK else 1024) * MIB


def write_file(path, size, seed):
    with open("/dev/urandom", "rb") as r, open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(r.read(n))
            left -= n


class Repo:
    def __init__(self, base, name):
        self.home = os.path.join(base, name)
        self.daemon = None
        self.run("init")

    def env(self):
        e = dict(os.environ)
        e["NOISEFS_HOME"] = self.home
        e.pop("RUST_LOG", None)
        return e

    def run(self, *args, check=True):
        p = subprocess.run([BIN, "-q", *args], env=self.env(), capture_output=True, text=True)
        if check and p.returncode != 0:
            sys.exit(f"bench-net: noisefs {' '.join(args)} failed: {p.stderr}")
        return p.stdout.strip()

    def net_on(self, *peers):
        args = ["net", "on", "--listen", "/ip4/127.0.0.1/tcp/0", "--dht", "server"]
        for p in peers:
            args += ["--peer", p]
        self.run(*args)

    def start_daemon(self):
        self.daemon = subprocess.Popen([BIN, "daemon"], env=self.env(), stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(self.home, "..", "daemon.log"), "ab"))
        sock = os.path.join(self.home, "daemon.sock")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("bench-net: the daemon did not start")

    def stop_daemon(self):
        if self.daemon:
            self.daemon.terminate()
            self.daemon.wait(timeout=60)
            self.daemon = None

    def address(self):
        for line in self.run("id").splitlines():
            if line.startswith("/ip4/127.0.0.1/"):
                return line
        sys.exit("bench-net: no loopback address in `noisefs id`")


def stream_baseline(size):
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "--locked", "-p", "noisefs-net", "--example", "stream_baseline", "--", str(size)],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(work):
    a, b = Repo(work, "a"), Repo(work, "b")
    src = os.path.join(work, "file.bin")
    write_file(src, SIZE, 1)
    link = a.run("put", src)
    a.net_on()
    a.start_daemon()
    addr = a.address()
    b.net_on(addr)
    out = os.path.join(work, "got.bin")
    t0 = time.perf_counter()
    b.run("get", link, "-o", out)
    secs = time.perf_counter() - t0
    if subprocess.run(["cmp", "-s", src, out]).returncode != 0:
        sys.exit("bench-net: the fetched file differs")
    a.stop_daemon()
    base = stream_baseline(SIZE)
    file_mb = SIZE / secs / 1e6
    print(f"throughput: {SIZE // MIB} MiB cold from one peer: get {file_mb:.0f} MB/s ({secs:.2f} s); "
          f"plain libp2p stream {base['mb_per_s']:.0f} MB/s ({base['secs']:.2f} s); "
          f"ratio {file_mb / base['mb_per_s']:.2f} (target >= 0.70)")
    for p in (src, out):
        os.remove(p)
    shutil.rmtree(a.home)
    shutil.rmtree(b.home)


def ttfb(work):
    a, b = Repo(work, "ta"), Repo(work, "tb")
    folder = os.path.join(work, "share")
    os.makedirs(folder)
    for i in range(5):
        write_file(os.path.join(folder, f"f{i}.bin"), 100 * MIB, 10 + i)
    link = a.run("put", folder)
    shutil.rmtree(folder)
    a.net_on()
    a.start_daemon()
    b.net_on(a.address())
    mnt = os.path.join(work, "mnt")
    os.makedirs(mnt)

    def first_bytes(repo):
        repo.run("mount", "--root", link, mnt)
        try:
            times = []
            for i in range(5):
                t0 = time.perf_counter()
                with open(os.path.join(mnt, f"f{i}.bin"), "rb") as f:
                    first = f.read(1)
                times.append((time.perf_counter() - t0) * 1000)
                assert len(first) == 1
            return times
        finally:
            repo.run("unmount", mnt, check=False)

    try:
        remote = first_bytes(b)
    finally:
        a.stop_daemon()
    # Baseline: the same link mounted where its blocks are (the holder, A).
    local = first_bytes(a)
    print(f"ttfb: first byte of a 100 MiB file through `mount --root`: remote (from one peer) median "
          f"{statistics.median(remote):.1f} ms, max {max(remote):.1f} ms (target <= 100 ms); "
          f"local (on the holder) median {statistics.median(local):.1f} ms, max {max(local):.1f} ms; 5 files each")
    shutil.rmtree(a.home)
    shutil.rmtree(b.home)


def memory():
    out = subprocess.run(
        ["cargo", "run", "-q", "--release", "--locked", "-p", "noisefs-net", "--example", "want_memory", "--", "1000"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"memory: {m['peers']} peers x {m['wants_per_peer']} wants (each flooded to twice its cap, "
          f"{m['refused']} refused): {m['rss_growth_bytes'] / MIB:.1f} MiB resident, "
          f"{m['bytes_per_want']:.0f} bytes per want")


def main():
    if not os.path.exists(BIN):
        sys.exit("bench-net: build first (scripts/bench-net.sh does)")
    work = tempfile.mkdtemp(prefix="noisefs-bench-net-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        if ONLY in (None, "throughput"):
            throughput(work)
        if ONLY in (None, "ttfb"):
            ttfb(work)
        if ONLY in (None, "memory"):
            memory()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
