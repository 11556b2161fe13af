#!/usr/bin/env python3
"""Sync benchmark: initial sync of 10k small files and of one 1 GiB file into a fresh repository
(`noisefs sync add` + `noisefs sync run --once`), then out again to an empty second folder, against `cp -r`
of the same data on the same filesystem in the same run.

Usage: scripts/bench-sync.sh [--quick] [--dir DIR]   (--quick: 2k files and 256 MiB; DIR default: a tmpfs)
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "noisefs")
QUICK = "--quick" in sys.argv
MIB = 1 << 20


def scratch():
    if "--dir" in sys.argv:
        return tempfile.mkdtemp(dir=sys.argv[sys.argv.index("--dir") + 1], prefix="noisefs-bench-sync-")
    with open("/proc/mounts") as m:
        if any(line.split()[1] == "/dev/shm" and line.split()[2] == "tmpfs" for line in m):
            return tempfile.mkdtemp(dir="/dev/shm", prefix="noisefs-bench-sync-")
    return tempfile.mkdtemp(prefix="noisefs-bench-sync-")


def timed(args, env=None):
    t0 = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def case(base, name, make):
    src = os.path.join(base, name, "src")
    os.makedirs(src)
    files, size = make(src)
    cp = timed(["cp", "-r", src, os.path.join(base, name, "cp-copy")])
    env = dict(os.environ, NOISEFS_HOME=os.path.join(base, name, "repo"))
    out = os.path.join(base, name, "out")
    os.makedirs(out)
    subprocess.run([BIN, "-q", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([BIN, "-q", "sync", "add", src, "/data"], env=env, check=True, stdout=subprocess.DEVNULL)
    up = timed([BIN, "-q", "sync", "run", "--once", "1"], env)
    subprocess.run([BIN, "-q", "sync", "add", out, "/data"], env=env, check=True, stdout=subprocess.DEVNULL)
    down = timed([BIN, "-q", "sync", "run", "--once", "2"], env)
    diff = subprocess.run(["diff", "-rq", src, out], stdout=subprocess.PIPE)
    if diff.returncode != 0:
        sys.exit(f"bench-sync: {name}: the synced copy differs:\n{diff.stdout.decode()[:2000]}")
    return {
        "case": name, "files": files, "bytes": size,
        "up_s": round(up, 2), "up_files_per_s": round(files / up, 1), "up_mb_per_s": round(size / up / 1e6, 1),
        "down_s": round(down, 2), "down_files_per_s": round(files / down, 1), "down_mb_per_s": round(size / down / 1e6, 1),
        "cp_s": round(cp, 3), "cp_files_per_s": round(files / cp, 1), "cp_mb_per_s": round(size / cp / 1e6, 1),
    }


def small_files(count):
    def make(src):
        rnd = random.Random(7)
        total = 0
        for i in range(count):
            d = os.path.join(src, f"dir{i // 500:03}")
            os.makedirs(d, exist_ok=True)
            data = rnd.randbytes(rnd.randint(1024, 8192))
            with open(os.path.join(d, f"file{i:05}.txt"), "wb") as f:
                f.write(data)
            total += len(data)
        return count, total
    return make


def one_file(size):
    def make(src):
        rnd = random.Random(8)
        chunk = bytearray(rnd.randbytes(MIB))
        with open(os.path.join(src, "big.bin"), "wb") as f:
            for i in range(size // MIB):
                chunk[:8] = i.to_bytes(8, "little")
                f.write(chunk)
        return 1, size
    return make


def main():
    base = scratch()
    try:
        results = [
            case(base, "small-files", small_files(2000 if QUICK else 10000)),
            case(base, "one-big-file", one_file((256 if QUICK else 1024) * MIB)),
        ]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for r in results:
        print(f"{r['case']}: {r['files']} files, {r['bytes'] / MIB:.0f} MiB: "
              f"up {r['up_s']} s ({r['up_files_per_s']} files/s, {r['up_mb_per_s']} MB/s), "
              f"down {r['down_s']} s ({r['down_files_per_s']} files/s, {r['down_mb_per_s']} MB/s); "
              f"cp -r {r['cp_s']} s ({r['cp_files_per_s']} files/s, {r['cp_mb_per_s']} MB/s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
