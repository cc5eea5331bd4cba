#!/usr/bin/env python3
"""Two benchmarks of issue 17 that bench.py's word count does not cover.

--small: 10,000 input files of 1 KB (random words of the bundled books), word count with
         a coordinator and 2 workers on the Unix socket, one map task per file: the cost
         of a task, not of a record. Wall time from coordinator start to its exit, and the
         CPU of each process. Output checked against mrsequential.
--tiny-splits: issue 18's job of many small maps: the corpus (default 640 MiB) cut into
         4 KiB splits (about 164,000 maps), R=10, word count with a coordinator and 2
         workers. It must be bound by the workers: the coordinator's CPU at most a quarter
         of one worker's. Output checked against mrsequential.
--hotkey: the onekey app (every line of the input to one key, no combiner, reduce reading
         its values as a stream) over the benchmark corpus with a coordinator and 2
         workers: the reducing worker's peak RSS must stay bounded whatever the key's
         size. Output checked against mrsequential.

Usage: bench/run.sh --tasks [--small] [--tiny-splits] [--hotkey] [--runs 3] [--gib 1]
A benchmark, not a test: it prints figures and never fails on speed.
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (its process helpers and the corpus)

BIN = bench.BIN


def settle(dirs):
    """Deletes `dirs` and writes the deletion out (see the small-tasks comment)."""
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    os.sync()


def small_inputs(root, n=10_000, size=1000):
    """n files of about `size` bytes of the books' words, made once under root."""
    d = os.path.join(root, f"small-{n}x{size}")
    if os.path.isdir(d) and len(os.listdir(d)) == n:
        return d
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    words = []
    for name in sorted(os.listdir(os.path.join(bench.ROOT, "data"))):
        with open(os.path.join(bench.ROOT, "data", name), encoding="utf-8", errors="replace") as fh:
            words.extend(fh.read().split())
    rng = random.Random(1)
    for i in range(n):
        out, length = [], 0
        while length < size:
            w = rng.choice(words)
            out.append(w)
            length += len(w) + 1
        with open(os.path.join(d, f"f{i:05d}.txt"), "w", encoding="utf-8") as fh:
            fh.write(" ".join(out)[:size - 1] + "\n")
    return d


def reference(work, name, app, inputs):
    """mrsequential's sorted output lines for `app` over `inputs` (run in work/name)."""
    ref_dir = bench.fresh(os.path.join(work, name))
    bench.run_single([f"{BIN}/mrsequential", "--output", "mr-out-0", app, *inputs], ref_dir)
    return bench.sorted_output(ref_dir, "mr-out-*")


def check(cwd, ref):
    got = bench.sorted_output(cwd, "mr-out-*")
    if got != ref:
        sys.exit(f"tasks: the output in {cwd} differs from mrsequential's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--hotkey", action="store_true")
    ap.add_argument("--tiny-splits", action="store_true")
    ap.add_argument("--tiny-gib", type=float, default=0.625, help="the --tiny-splits corpus")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gib", type=float, default=1)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--corpus-dir", default="/tmp/mr-bench-corpus")
    ap.add_argument("--work", default="/tmp/mr-bench-tasks")
    args = ap.parse_args()
    if not (args.small or args.hotkey or args.tiny_splits):
        args.small = args.hotkey = args.tiny_splits = True
    os.makedirs(args.work, exist_ok=True)
    wc, onekey = f"{BIN}/libwc.so", f"{BIN}/libonekey.so"

    if args.small:
        d = small_inputs(args.work)
        inputs = [os.path.join(d, f) for f in sorted(os.listdir(d))]
        ref = reference(args.work, "small-ref", wc, inputs)
        # Each round in a directory of its own, all deleted after the last. On ext4
        # without a journal (these VMs' root), creating a file skips every inode
        # freed in the last 5 s, or 305 s while its inode table block is dirty
        # (`recently_deleted`), and after tens of thousands of deletes that scan took
        # half a job's CPU: a round that first deleted the last round's files measured
        # the filesystem's allocator, not the job. Nor is a round charged for the
        # writeback of the last one's files (a sync and 5 s before each).
        jobs = [os.path.join(args.work, f"small-job-{r}") for r in range(args.runs)]
        settle([os.path.join(args.work, "small-job"), *jobs])
        walls = []
        for r, cwd in enumerate(jobs):
            os.sync()
            time.sleep(5)
            os.makedirs(cwd)
            m = bench.run_cluster(wc, inputs, cwd)
            check(cwd, ref)
            walls.append(m["wall_s"])
            print(f"small tasks, round {r + 1}: {m['wall_s']:.2f} s wall, {m['cpu_s']:.2f} s CPU in all, "
                  f"peak RSS {m['rss_mib']}", flush=True)
        settle(jobs)
        med = statistics.median(walls)
        print(f"10,000 files of 1 KB, coordinator + 2 workers: median {med:.2f} s "
              f"({med / 10_000 * 1e3:.2f} ms a task); target at most 5 s: {'met' if med <= 5 else 'missed'}")

    if args.tiny_splits:
        tiny = argparse.Namespace(**{**vars(args), "gib": args.tiny_gib})
        inputs = bench.make_corpus(tiny)
        ref = reference(args.work, "tiny-ref", wc, inputs)
        shares = []
        for r in range(args.runs):
            cwd = bench.fresh(os.path.join(args.work, "tiny-job"))
            m = bench.run_cluster(wc, inputs, cwd, extra=("--split-size", "4096"))
            check(cwd, ref)
            cpu = m["cpu_by"]
            busiest = max(v for k, v in cpu.items() if k != "coordinator")
            shares.append(cpu["coordinator"] / busiest)
            print(f"{args.tiny_gib * 1024:.0f} MiB in 4 KiB splits, round {r + 1}: {m['wall_s']:.2f} s wall, "
                  f"CPU coordinator {cpu['coordinator']:.2f} s, workers "
                  + ", ".join(f"{v:.2f}" for k, v in cpu.items() if k != "coordinator")
                  + f" s: the coordinator at {shares[-1]:.3f} of the busiest worker's", flush=True)
        med = statistics.median(shares)
        print(f"4 KiB splits: the coordinator's CPU is {med:.3f} of a worker's (median); "
              f"target at most 0.25: {'met' if med <= 0.25 else 'missed'}")

    if args.hotkey:
        inputs = bench.make_corpus(args)
        ref = reference(args.work, "hot-ref", onekey, inputs)
        for r in range(args.runs):
            cwd = bench.fresh(os.path.join(args.work, "hot-job"))
            m = bench.run_cluster(onekey, inputs, cwd)
            check(cwd, ref)
            print(f"one hot key ({args.gib:g} GiB of values), round {r + 1}: {m['wall_s']:.2f} s wall, "
                  f"peak RSS {m['rss_mib']}", flush=True)


if __name__ == "__main__":
    main()
