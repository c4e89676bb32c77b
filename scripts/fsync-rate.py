#!/usr/bin/env python3
"""The disk's sync rate: the ceiling of one synced write stream without batching.

Usage: scripts/fsync-rate.py DIR [SECONDS] [--json] [--grow] [--writers N]

Writes a 16 MiB file in DIR (zero-filled and synced first, so no block allocation happens later), then for SECONDS
(default 5) overwrites it 4 KiB at a time, sequentially and wrapping around, with an fdatasync after every write:
what a write-ahead log on preallocated segments does per commit. Prints syncs/s and latency percentiles; --json
prints one JSON object instead. The file is removed afterwards.

--grow appends to an empty file instead (what RocksDB's write-ahead log does: each sync also writes the file's
new size). --writers N runs N such streams at once, each on its own file (three nodes on one disk), and reports
each; with --json, an object {"writers": [...]} of the per-writer objects.
"""
import json
import multiprocessing
import os
import sys
import time

BLOCK = 4096
FILE_SIZE = 16 * 1024 * 1024


def measure(directory, seconds, grow, writer):
    """One stream: the sorted sync latencies (seconds) and the elapsed time."""
    path = os.path.join(directory, "fsync-rate.%d.%d.tmp" % (os.getpid(), writer))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if not grow:
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
            if grow:
                os.write(fd, block)
            else:
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
    return samples, elapsed


def summary(directory, samples, elapsed):
    def pct(q):
        return samples[max(0, min(len(samples) - 1, int(-(-q * len(samples) // 1)) - 1))] * 1000

    return {
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


def main():
    argv = sys.argv[1:]
    as_json = "--json" in argv
    grow = "--grow" in argv
    writers = 1
    args = []
    position = 0
    while position < len(argv):
        arg = argv[position]
        if arg == "--writers" and position + 1 < len(argv) and argv[position + 1].isdigit():
            writers = max(1, int(argv[position + 1]))
            position += 2
            continue
        if arg not in ("--json", "--grow"):
            args.append(arg)
        position += 1
    if not args or len(args) > 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    directory = args[0]
    seconds = float(args[1]) if len(args) > 1 else 5.0
    os.makedirs(directory, exist_ok=True)
    jobs = [(directory, seconds, grow, writer) for writer in range(writers)]
    if writers == 1:
        outcomes = [measure(*jobs[0])]
    else:
        with multiprocessing.Pool(writers) as pool:
            outcomes = pool.starmap(measure, jobs)
    results = [summary(directory, samples, elapsed) for samples, elapsed in outcomes]
    if as_json:
        print(json.dumps(results[0] if writers == 1 else {"writers": results}))
        return
    kind = "4 KiB append + fdatasync, growing file" if grow else "4 KiB pwrite + fdatasync"
    for writer, result in enumerate(results):
        lat = result["latency_ms"]
        prefix = "fsync-rate" if writers == 1 else "fsync-rate writer %d of %d" % (writer + 1, writers)
        print(
            "%s: %d x (%s) in %.2f s on %s: %.0f syncs/s, mean %.3f ms, p50 %.3f ms, p99 %.3f ms, max %.3f ms"
            % (prefix, result["syncs"], kind, result["duration_s"], result["directory"], result["syncs_per_sec"],
               lat["mean"], lat["p50"], lat["p99"], lat["max"])
        )


if __name__ == "__main__":
    main()
