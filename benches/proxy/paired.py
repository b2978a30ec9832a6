#!/usr/bin/env python3
"""Paired comparison of two running proxies under the same wrk load.

    benches/proxy/paired.py URL_A URL_B [--connections 64] [--pairs 20] [--duration 2]

Runs wrk against A and B alternately (A then B, then B then A, ...), so that each pair of runs
meets the machine in the same state, and prints each pair's ratio of requests/s and of p50
latency, then their geometric means with a 95% interval. On a shared machine whose speed swings
from minute to minute this resolves differences of a few percent that medians of separate runs
(run.sh) cannot. Start the proxies first (run.sh --keep leaves their configs in its temp dir).
"""

import argparse
import math
import re
import statistics
import subprocess
import sys


def run(url, connections, duration):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    if not rps or not p50 or "Non-2xx" in out:
        sys.exit(f"paired.py: wrk against {url} failed:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    return float(rps.group(1)), float(p50.group(1)) * scale


def interval(logs):
    mean = statistics.mean(logs)
    half = 2 * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--duration", type=int, default=2)
    args = parser.parse_args()
    if args.pairs < 2:
        sys.exit("paired.py: --pairs must be at least 2")
    rps_logs, p50_logs = [], []
    for i in range(args.pairs):
        if i % 2 == 0:
            a = run(args.a, args.connections, args.duration)
            b = run(args.b, args.connections, args.duration)
        else:
            b = run(args.b, args.connections, args.duration)
            a = run(args.a, args.connections, args.duration)
        rps_logs.append(math.log(a[0] / b[0]))
        p50_logs.append(math.log(a[1] / b[1]))
        print(
            f"{i + 1:3d}  A {a[0]:9.0f} req/s p50 {a[1]:6.2f} ms   "
            f"B {b[0]:9.0f} req/s p50 {b[1]:6.2f} ms   A/B {a[0] / b[0]:.3f}",
            flush=True,
        )
    print(
        "A/B req/s  %.3f  (95%%: %.3f-%.3f)" % interval(rps_logs)
        + f"   {args.pairs} pairs of {args.duration} s at {args.connections} connections"
    )
    print("A/B p50    %.3f  (95%%: %.3f-%.3f)" % interval(p50_logs))


if __name__ == "__main__":
    main()
