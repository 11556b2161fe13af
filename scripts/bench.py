#!/usr/bin/env python3
"""NoiseFS benchmarks, each against a baseline measured in the same run.

- put / get of a 1 GiB file on tmpfs vs `cp` of the same file on the same filesystem (median of 3 runs);
- peak RSS of put and get of a 4 GiB file;
- storage overhead and block reuse after putting a 1 GiB mixed corpus into a fresh repository;
- small files: `tree import` of 10,000 files of 1-8 KiB into a fresh repository, the repository's bytes on
  disk against the files' own bytes and against a `cp -r` of them on the same filesystem.

Usage: scripts/bench.sh [--quick] [--only throughput|memory|storage|small]
  --quick: 256 MiB / 1 GiB / ~250 MiB instead of 1 GiB / 4 GiB / ~1 GiB
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "noisefs")
QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
GIB = 1 << 30
MIB = 1 << 20


def tmpfs_dir():
    for cand in ("/dev/shm", "/run/user", "/tmp"):
        if os.path.isdir(cand):
            with open("/proc/mounts") as m:
                for line in m:
                    parts = line.split()
                    if parts[1] == cand and parts[2] == "tmpfs":
                        return tempfile.mkdtemp(dir=cand, prefix="noisefs-bench-")
    sys.exit("bench: no tmpfs found (need /dev/shm)")


def write_file(path, size, seed):
    rnd = random.Random(seed)
    chunk = bytearray(rnd.randbytes(MIB))
    with open(path, "wb") as f:
        for i in range(size // MIB):
            chunk[:8] = i.to_bytes(8, "little")
            f.write(chunk)
        f.write(bytes(chunk[: size % MIB]))


# Runs a command in a fresh Python so RUSAGE_CHILDREN's peak RSS is that command's alone.
PEAK = ("import resource, subprocess, sys\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "sys.stderr.write('PEAK_RSS_KIB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(rc)\n")


def run(args, env, stdout=subprocess.PIPE):
    """Runs a command; returns (seconds, stdout, peak RSS KiB of that command)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", PEAK, *args], env=env, stdout=stdout,
                       stderr=subprocess.PIPE, check=False)
    dt = time.perf_counter() - t0
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed: {err}")
    peak = int(err.rsplit("PEAK_RSS_KIB=", 1)[1].split()[0])
    return dt, (p.stdout or b"").decode(), peak


def fresh_env(base, name):
    home = os.path.join(base, name)
    shutil.rmtree(home, ignore_errors=True)
    env = dict(os.environ, NOISEFS_HOME=home)
    env.pop("RUST_LOG", None)
    subprocess.run([BIN, "-q", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def throughput(base):
    size = (GIB // 4) if QUICK else GIB
    src = os.path.join(base, "file.bin")
    write_file(src, size, 1)
    cp_t, put_t, get_t, rd_t, cat_t = [], [], [], [], []
    for rep in range(3):
        dst = os.path.join(base, "copy.bin")
        t, _, _ = run(["cp", src, dst], os.environ)
        cp_t.append(t)
        os.remove(dst)
        env = fresh_env(base, "repo-tp")
        t, out, _ = run([BIN, "-q", "put", src], env)
        put_t.append(t)
        link = out.strip()
        out_path = os.path.join(base, "out.bin")
        t, _, _ = run([BIN, "-q", "get", link, "-o", out_path], env)
        get_t.append(t)
        # Reading alone: `noisefs cat` to /dev/null against `cat` of the original to /dev/null.
        t, _, _ = run(["cat", src], os.environ, stdout=subprocess.DEVNULL)
        rd_t.append(t)
        t, _, _ = run([BIN, "-q", "cat", link], env, stdout=subprocess.DEVNULL)
        cat_t.append(t)
        if rep == 0 and subprocess.run(["cmp", src, out_path]).returncode != 0:
            sys.exit("bench: round trip differs")
        os.remove(out_path)
    shutil.rmtree(os.path.join(base, "repo-tp"), ignore_errors=True)
    os.remove(src)
    mb = size / 1e6
    cp_s, put_s, get_s, rd_s, cat_s = (statistics.median(x) for x in (cp_t, put_t, get_t, rd_t, cat_t))
    return {
        "file_bytes": size,
        "cp_MBps": round(mb / cp_s),
        "put_MBps": round(mb / put_s),
        "get_MBps": round(mb / get_s),
        "put_vs_cp": round(cp_s / put_s, 3),
        "get_vs_cp": round(cp_s / get_s, 3),
        "cat_devnull_MBps": round(mb / rd_s),
        "noisefs_cat_devnull_MBps": round(mb / cat_s),
        "noisefs_cat_vs_cat": round(rd_s / cat_s, 3),
    }


def memory(base):
    size = GIB if QUICK else 4 * GIB
    src = os.path.join(base, "huge.bin")
    write_file(src, size, 2)
    env = fresh_env(base, "repo-mem")
    # Baseline: peak RSS of `cp` of the same file, measured the same way.
    _, _, cp_rss = run(["cp", src, os.path.join(base, "huge.copy")], os.environ)
    os.remove(os.path.join(base, "huge.copy"))
    _, out, put_rss = run([BIN, "-q", "put", src], env)
    os.remove(src)
    link = out.strip()
    _, _, get_rss = run([BIN, "-q", "cat", link], env, stdout=subprocess.DEVNULL)
    shutil.rmtree(env["NOISEFS_HOME"], ignore_errors=True)
    return {
        "file_bytes": size,
        "cp_peak_rss_MiB": round(cp_rss / 1024, 1),
        "put_peak_rss_MiB": round(put_rss / 1024, 1),
        "cat_peak_rss_MiB": round(get_rss / 1024, 1),
    }


def corpus(base):
    """A mixed corpus of ~1 GiB: a few videos, photos, documents and many small text files."""
    root = os.path.join(base, "corpus")
    rnd = random.Random(3)
    scale = 4 if QUICK else 1
    plan = [("video", 2, 200 * MIB, 300 * MIB), ("photo", 80, 2 * MIB, 6 * MIB),
            ("doc", 300, 100 * 1024, 600 * 1024), ("note", 600, 1024, 16 * 1024)]
    total = 0
    for kind, count, lo, hi in plan:
        d = os.path.join(root, kind)
        os.makedirs(d, exist_ok=True)
        for i in range(count // scale):
            size = rnd.randint(lo, hi) // scale if kind == "video" else rnd.randint(lo, hi)
            write_file(os.path.join(d, f"{kind}-{i}.bin"), size, rnd.randint(0, 1 << 30))
            total += size
    env = fresh_env(base, "repo-corpus")
    run([BIN, "-q", "put", root], env)
    _, out, _ = run([BIN, "repo", "stats", "--json"], env)
    stats = json.loads(out)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env["NOISEFS_HOME"], ignore_errors=True)
    return {
        "corpus_bytes": total,
        "files": sum(c // scale for _, c, _, _ in plan),
        "stored_bytes": stats["stored_bytes"],
        "overhead": round(stats["overhead"], 4),
        "reuse": round(stats["reuse"], 3),
        "blocks": stats["blocks"],
        "random_blocks": stats["random_blocks"],
        "descriptor_blocks": stats["descriptor_blocks"],
    }


def disk_bytes(root):
    """(apparent bytes, allocated bytes) of every file under root."""
    apparent = allocated = 0
    for d, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


def small(base):
    """10,000 files of 1-8 KiB (2,000 with --quick) imported into the tree."""
    root = os.path.join(base, "small")
    rnd = random.Random(7)
    count = 2000 if QUICK else 10000
    total = 0
    for i in range(count):
        d = os.path.join(root, f"d{i // 500:02}")
        os.makedirs(d, exist_ok=True)
        size = rnd.randint(1024, 8192)
        with open(os.path.join(d, f"f{i:05}.txt"), "wb") as f:
            f.write(rnd.randbytes(size))
        total += size
    copy = os.path.join(base, "small-cp")
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", root, copy], check=True)
    cp_s = time.perf_counter() - t0
    _, cp_alloc = disk_bytes(copy)
    shutil.rmtree(copy, ignore_errors=True)
    env = fresh_env(base, "repo-small")
    _, before = disk_bytes(env["NOISEFS_HOME"])
    dt, _, _ = run([BIN, "-q", "tree", "import", root, "/"], env)
    _, out, _ = run([BIN, "repo", "stats", "--json"], env)
    stats = json.loads(out)
    apparent, allocated = disk_bytes(env["NOISEFS_HOME"])
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env["NOISEFS_HOME"], ignore_errors=True)
    return {
        "files": count,
        "file_bytes": total,
        "cp_allocated_bytes": cp_alloc,
        "repo_empty_allocated_bytes": before,
        "repo_apparent_bytes": apparent,
        "repo_allocated_bytes": allocated,
        "repo_over_files": round(allocated / total, 3),
        "cp_over_files": round(cp_alloc / total, 3),
        "import_s": round(dt, 2),
        "cp_s": round(cp_s, 2),
        "stats": {k: stats[k] for k in ("blocks", "stored_bytes", "state_bytes", "tree_inline_files",
                                         "tree_inline_bytes", "kept_content_bytes", "overhead")},
    }


def main():
    if not os.path.exists(BIN):
        sys.exit("bench: build first: cargo build --release")
    base = tmpfs_dir()
    try:
        results = {"machine": f"{os.cpu_count()} cores, {os.uname().release}", "quick": QUICK}
        for name, bench in (("throughput", throughput), ("memory", memory), ("storage", corpus), ("small", small)):
            if ONLY in (None, name):
                results[name] = bench(base)
                print(json.dumps(results[name]), flush=True)
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
