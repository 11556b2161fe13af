#!/usr/bin/env python3
"""Announcement latency on 127.0.0.1, three nodes in a chain: A (publisher) - B - C (subscriber that
knows only B). Each round A's CLI announces a file on media/books and C's `subscribe --follow --json`
prints it; the figure is from before A's command starts to the line on C (so it includes starting the
CLI and its round trip to A's daemon). Baseline in the same run: the same CLI's `noisefs status`
round trip to A's daemon, the part of each figure that is not the network. Target: p99 <= 1 s.

Usage: scripts/bench-announce.sh [--rounds N]   (default 50)
"""
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "noisefs")
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 50


def run(home, *args, check=True):
    env = dict(os.environ, NOISEFS_HOME=home)
    env.pop("RUST_LOG", None)
    r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"noisefs {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, round((len(v) - 1) * p))]


def main():
    tmp = tempfile.mkdtemp(prefix="noisefs-bench-announce-")
    homes = {n: os.path.join(tmp, n) for n in "abc"}
    daemons = []
    try:
        addr = None
        for n in "abc":
            h = homes[n]
            run(h, "init", "--block-size", "64K")
            args = ["net", "on", "--listen", "/ip4/127.0.0.1/tcp/0", "--dht", "client"]
            if addr:
                args += ["--peer", addr]
            run(h, *args)
            if n != "a":
                run(h, "subscribe", "media/**")
            env = dict(os.environ, NOISEFS_HOME=h)
            env.pop("RUST_LOG", None)
            daemons.append(subprocess.Popen([BIN, "daemon"], env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            for _ in range(200):
                if os.path.exists(os.path.join(h, "daemon.sock")):
                    break
                time.sleep(0.05)
            addr = run(h, "id").splitlines()[1]
        f = os.path.join(tmp, "file.txt")
        with open(f, "w") as w:
            w.write("content\n")
        link = run(homes["a"], "put", f).strip()
        env = dict(os.environ, NOISEFS_HOME=homes["c"])
        env.pop("RUST_LOG", None)
        follow = subprocess.Popen([BIN, "subscribe", "--follow", "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        follow.stderr.readline()  # "following …": listening from here on
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in follow.stdout], daemon=True).start()
        # Warm-up: until C sees one (the meshes form on gossipsub's heartbeats).
        for i in range(60):
            run(homes["a"], "announce", link, "--topic", "media/books", "--title", f"warm {i}", "--wait", "1s",
                "--as", f"w{i}")
            try:
                lines.get(timeout=1)
                break
            except queue.Empty:
                continue
        else:
            sys.exit("C never received an announcement")
        while not lines.empty():
            lines.get()
        lat, base = [], []
        for i in range(ROUNDS):
            t = time.monotonic()
            run(homes["a"], "status")
            base.append(time.monotonic() - t)
            t = time.monotonic()
            # One pseudonym per round: receivers hold each publisher to 30 at once, then 10 a minute.
            run(homes["a"], "announce", link, "--topic", "media/books", "--title", f"round {i}", "--as", f"r{i}")
            while True:
                line = lines.get(timeout=10)
                if json.loads(line)["title"] == f"round {i}":
                    break
            lat.append(time.monotonic() - t)
        follow.kill()
        ms = lambda v: f"{v * 1000:.0f}"
        print(f"announce on A to visible on C (A - B - C, {ROUNDS} rounds): "
              f"p50 {ms(statistics.median(lat))} ms, p99 {ms(pct(lat, 0.99))} ms, max {ms(max(lat))} ms "
              f"(target p99 <= 1000 ms)")
        print(f"baseline, `noisefs status` round trip to A's daemon: p50 {ms(statistics.median(base))} ms, "
              f"p99 {ms(pct(base, 0.99))} ms")
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            d.wait(timeout=60)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
