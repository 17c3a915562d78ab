#!/usr/bin/env python3
"""How long the disk took for each request while a command ran (Linux block tracepoints).

Usage (as root; tracefs is mounted if it is not):
    scripts/block-latency.py -- ./target/release/stockpool bench --database sqlite:///work/benchdb/b.db --clients 256 --rate 5000

Prints, per kind of request (W write, S sync, M metadata, FF flush, D discard, R read),
the count and the median, 99th percentile and largest time from issue to completion,
then every request slower than --slow milliseconds with its time from the first request.
BENCHMARKS.md used it to find what held SQLite's commits: a flush queued behind a
checkpoint's writes, and (before HAVE_POSIX_FALLOCATE) 4 MiB writes of zeros growing
the database file.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

TRACING = "/sys/kernel/tracing"
LINE = re.compile(
    r"\s(\d+\.\d+): block_rq_(issue|complete): \S+ (\S+) (?:\d+ )?\(\)\s*(\d*)(?: \+ (\d+))?"
)


def write(path, value):
    with open(os.path.join(TRACING, path), "w") as f:
        f.write(value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=float, default=15.0, help="list requests slower than this (ms)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("give the command to run after --")
    if not os.path.exists(os.path.join(TRACING, "trace")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACING], check=True)
    write("tracing_on", "0")
    write("trace", "")
    write("buffer_size_kb", "65536")
    for event in ("block_rq_issue", "block_rq_complete"):
        write(f"events/block/{event}/enable", "1")
    write("tracing_on", "1")
    try:
        status = subprocess.run(command).returncode
    finally:
        write("tracing_on", "0")
        for event in ("block_rq_issue", "block_rq_complete"):
            write(f"events/block/{event}/enable", "0")
    with open(os.path.join(TRACING, "trace")) as f:
        lines = f.read().splitlines()

    # A request is known by its first sector and length (a flush by its kind): pair each
    # completion with the oldest issue of the same key.
    waiting = collections.defaultdict(list)
    done = []
    for line in lines:
        m = LINE.search(line)
        if not m:
            continue
        t, what, rwbs, sector, sectors = float(m[1]), m[2], m[3], m[4], int(m[5] or 0)
        key = (sector, sectors) if sector else ("flush", rwbs)
        if what == "issue":
            waiting[key].append((t, rwbs, sectors))
        elif waiting[key]:
            t0, kind, n = waiting[key].pop(0)
            done.append((t0, (t - t0) * 1000, kind, sector, n))
    if not done:
        sys.exit("no block requests traced")
    first = min(d[0] for d in done)
    by_kind = collections.defaultdict(list)
    for _, ms, kind, _, _ in done:
        by_kind[kind].append(ms)
    print(f"{'kind':6} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        ms.sort()
        n = len(ms)
        print(f"{kind:6} {n:9} {ms[n // 2]:8.2f} {ms[n * 99 // 100]:8.2f} {ms[-1]:8.1f}")
    print(f"slower than {args.slow} ms:")
    for t0, ms, kind, sector, n in sorted(done):
        if ms > args.slow:
            print(f"  at {t0 - first:7.3f} s  {kind:4} {ms:7.1f} ms  sector {sector or '-'} +{n}")
    sys.exit(status)


if __name__ == "__main__":
    main()
