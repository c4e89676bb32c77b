#!/usr/bin/env python3
"""The disk's sync rate: the ceiling of one synced write stream without batching.

Usage: scripts/fsync-rate.py DIR [SECONDS] [--json]

Writes a 16 MiB file in DIR (zero-filled and synced first, so no block allocation happens later), then for SECONDS
(default 5) overwrites it 4 KiB at a time, sequentially and wrapping around, with an fdatasync after every write:
what a write-ahead log on preallocated segments does per commit. Prints syncs/s and latency percentiles; --json
prints one JSON object instead. The file is removed afterwards.
"""
import json
import os
import sys
import time

BLOCK = 4096
FILE_SIZE = 16 * 1024 * 1024


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    as_json = "--json" in sys.argv[1:]
    if not args or len(args) > 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    directory = args[0]
    seconds = float(args[1]) if len(args) > 1 else 5.0
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "fsync-rate.%d.tmp" % os.getpid())
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        zeros = bytes(1024 * 1024)
        for _ in range(FILE_SIZE // len(zeros)):
            os.write(fd, zeros)
        os.fsync(fd)
        block = bytes(range(256)) * (BLOCK // 256)
        blocks = FILE_SIZE // BLOCK
        samples = []
        i = 0
        start = time.perf_counter()
        deadline = start + seconds
        now = start
        while now < deadline:
            os.pwrite(fd, block, (i % blocks) * BLOCK)
            os.fdatasync(fd)
            after = time.perf_counter()
            samples.append(after - now)
            now = after
            i += 1
        elapsed = now - start
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()

    def pct(q):
        return samples[max(0, min(len(samples) - 1, int(-(-q * len(samples) // 1)) - 1))] * 1000

    result = {
        "tool": "fsync-rate",
        "directory": os.path.abspath(directory),
        "block_bytes": BLOCK,
        "syncs": len(samples),
        "duration_s": round(elapsed, 3),
        "syncs_per_sec": round(len(samples) / elapsed, 1),
        "latency_ms": {
            "mean": round(sum(samples) / len(samples) * 1000, 3),
            "p50": round(pct(0.50), 3),
            "p99": round(pct(0.99), 3),
            "max": round(samples[-1] * 1000, 3),
        },
    }
    if as_json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(
            "fsync-rate: %d x (4 KiB pwrite + fdatasync) in %.2f s on %s: %.0f syncs/s, "
            "mean %.3f ms, p50 %.3f ms, p99 %.3f ms, max %.3f ms"
            % (len(samples), elapsed, result["directory"], result["syncs_per_sec"], lat["mean"], lat["p50"], lat["p99"], lat["max"])
        )


if __name__ == "__main__":
    main()
