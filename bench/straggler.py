#!/usr/bin/env python3
"""Straggler benchmark: what one slow machine costs a job, with and without backup tasks.

A straggler is a real slow machine: a worker that heartbeats normally but computes slowly,
held to --quota percent of one CPU by a cgroup CPU quota (cgroup v2 cpu.max, or v1
cpu.cfs_quota_us; without either, or with --sleep, a worker that sleeps --sleep-s before
each task stands in, which is weaker: it does no work slowly, it only starts late).
Measured, --runs rounds with the order rotated each round, coordinator start to exit:
  1. two       coordinator + 2 workers                         (the job without a straggler)
  2. strag     coordinator + 2 workers + the straggler          (backups on: the default)
  3. nospec    the same with --no-speculation                  (the gap backups close)
  4. two-nospec  2 workers, --no-speculation                   (what speculation costs alone)
Word count over the 1 GiB corpus of bench/bench.py by default; --sort: the sort app with
--partition range over gensort records (bench/sort.py's data), checked by valsort.
Prints medians, the ratios to (1) and the backups each run started, won and wasted (from
the coordinator's report); writes JSON. Target: strag / two <= 1.15.

Usage: bench/run.sh --straggler [--sort] [--gib 1] [--runs 3] [--quota 3] [--json FILE]
A benchmark, not a test: it prints figures and never fails on speed.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, MAKE_CORPUS, ROOT, fresh, reap, sorted_output  # noqa: E402

CGROUP_V2 = "/sys/fs/cgroup"
CGROUP_V1 = "/sys/fs/cgroup/cpu"
NAME = "mr-straggler"


def make_cgroup(percent):
    """A cgroup holding its processes to `percent` of one CPU: its cgroup.procs path, or
    None if this machine has no cgroup CPU controller we can use."""
    period = 100_000
    quota = max(1000, period * percent // 100)
    v2 = os.path.join(CGROUP_V2, "cgroup.controllers")
    try:
        if os.path.exists(v2) and "cpu" in open(v2).read().split():
            with open(os.path.join(CGROUP_V2, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
            d = os.path.join(CGROUP_V2, NAME)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "cpu.max"), "w") as f:
                f.write(f"{quota} {period}")
            return os.path.join(d, "cgroup.procs")
        if os.path.exists(os.path.join(CGROUP_V1, "cpu.cfs_quota_us")):
            d = os.path.join(CGROUP_V1, NAME)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                f.write(str(period))
            with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota))
            return os.path.join(d, "cgroup.procs")
    except OSError as e:
        print(f"bench: no cgroup CPU quota ({e}); the straggler sleeps instead", flush=True)
    return None


def throttled(procs):
    """The cgroup's throttled time so far, in seconds (None if unknown)."""
    stat = os.path.join(os.path.dirname(procs), "cpu.stat")
    try:
        for line in open(stat):
            k, v = line.split()
            if k == "throttled_time":  # v1, ns
                return int(v) / 1e9
            if k == "throttled_usec":  # v2
                return int(v) / 1e6
    except OSError:
        pass
    return None


def into(procs):
    """A preexec_fn that moves the child into the cgroup before it runs anything."""
    def move():
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    return move


def run(cwd, app, inputs, straggler, speculation, cgroup, sleep_s, extra):
    coordinator = [f"{BIN}/coordinator", "--reduce", "10", "--report", "report.json", "--no-journal",
                   *([] if speculation else ["--no-speculation"]), *extra, *inputs]
    with open(os.path.join(cwd, "log.txt"), "ab") as log:
        t0 = time.monotonic()
        procs = [subprocess.Popen(coordinator, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)]
        procs += [subprocess.Popen([f"{BIN}/worker", app], cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
                  for _ in range(2)]
        if straggler:
            if cgroup:
                procs.append(subprocess.Popen([f"{BIN}/worker", app], cwd=cwd, stdout=subprocess.DEVNULL,
                                              stderr=log, preexec_fn=into(cgroup)))
            else:
                procs.append(subprocess.Popen([f"{BIN}/worker", "--task-delay", str(sleep_s), app], cwd=cwd,
                                              stdout=subprocess.DEVNULL, stderr=log))
        rc, _, _ = reap(procs[0])
        wall = time.monotonic() - t0
        rest = [reap(p)[0] for p in procs[1:]]
    if rc != 0 or any(r != 0 for r in rest):
        sys.exit(f"bench: a run failed (coordinator {rc}, workers {rest}); log in {cwd}/log.txt")
    with open(os.path.join(cwd, "report.json")) as f:
        report = json.load(f)
    sp = report.get("speculation", {})
    return {"wall_s": wall, "backups": [sp.get("started", 0), sp.get("won", 0), sp.get("wasted", 0)],
            "slow_workers": len(sp.get("slow_workers", []))}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quota", type=int, default=3, help="the straggler's share of one CPU, percent (3)")
    ap.add_argument("--sleep", action="store_true", help="a sleeping straggler even if cgroups are there")
    ap.add_argument("--sleep-s", type=float, default=8.0, help="its sleep before each task (8)")
    ap.add_argument("--sort", action="store_true", help="the sort app, range-partitioned, on gensort data")
    ap.add_argument("--corpus-dir", default=os.environ.get("MR_BENCH_CORPUS", "/tmp/mr-bench-corpus"))
    ap.add_argument("--data-dir", default=os.environ.get("MR_BENCH_SORT_DATA", "/tmp/mr-bench-sort"))
    ap.add_argument("--work-dir", default=os.environ.get("MR_BENCH_WORK", "/tmp/mr-bench-work"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    if args.sort:
        from sort import make_input, valsort
        inputs = make_input(args.data_dir, args.gib, args.files, False)
        app = os.path.join(BIN, "libsort.so")
        extra = ["--partition", "range"]
    else:
        mib = int(args.gib * 1024)
        corpus = os.path.join(args.corpus_dir, f"{mib}mib-{args.files}")
        inputs = sorted(glob.glob(os.path.join(corpus, "part-*.txt")))
        if len(inputs) != args.files:
            print(f"bench: making a {mib} MiB corpus in {corpus}", flush=True)
            subprocess.run([sys.executable, MAKE_CORPUS, "--out", corpus, "--total-mb", str(mib),
                            "--files", str(args.files), "--src", os.path.join(ROOT, "data")], check=True)
            inputs = sorted(glob.glob(os.path.join(corpus, "part-*.txt")))
        app = os.path.join(BIN, "libwc.so")
        extra = []
    cgroup = None if args.sleep else make_cgroup(args.quota)
    kind = f"a cgroup quota of {args.quota}% of one CPU" if cgroup else f"a {args.sleep_s} s sleep before each task"
    print(f"bench: the straggler is a worker held to {kind}", flush=True)

    configs = [("two", False, True), ("strag", True, True), ("nospec", True, False), ("two-nospec", False, False)]
    results = {name: [] for name, _, _ in configs}
    reference = None
    for i in range(args.runs):
        order = configs[i % len(configs):] + configs[:i % len(configs)]
        for name, straggler, speculation in order:
            d = fresh(os.path.join(args.work_dir, "straggler-" + name))
            before = throttled(cgroup) if cgroup else None
            r = run(d, app, inputs, straggler, speculation, cgroup, args.sleep_s, extra)
            after = throttled(cgroup) if cgroup else None
            if before is not None and after is not None and straggler:
                r["straggler_throttled_s"] = round(after - before, 2)
            results[name].append(r)
            print(f"bench: round {i + 1}: {name:10} {r['wall_s']:6.2f} s  backups started/won/wasted "
                  f"{r['backups']}  slow workers {r['slow_workers']}", flush=True)
            if i == 0:
                if args.sort:
                    outs = [os.path.join(d, f"mr-out-{y}") for y in range(10)]
                    if not valsort(inputs, outs):
                        sys.exit(f"bench: {name}: the output is not the sorted input")
                else:
                    out = sorted_output(d, "mr-out-*")
                    reference = reference or out
                    if out != reference:
                        sys.exit(f"bench: {name}: the output differs from the 2-worker run's")

    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in results.items()}
    ratios = {f"{k}_over_two": med[k] / med["two"] for k in med if k != "two"}
    # Same-round ratios: each round's runs saw the same machine.
    per_round = {f"{k}_over_two": [round(a["wall_s"] / b["wall_s"], 3) for a, b in zip(results[k], results["two"])]
                 for k in med if k != "two"}
    print()
    print(f"{'app':6} {'sort' if args.sort else 'wc'}; input {len(inputs)} files, {args.gib} GiB; "
          f"{args.runs} rounds, medians; straggler: {kind}")
    labels = {"two": "1 2 workers", "strag": "2 2 workers + straggler", "nospec": "3 the same, --no-speculation",
              "two-nospec": "4 2 workers, --no-speculation"}
    for k, label in labels.items():
        runs = ", ".join(f"{r['wall_s']:.2f}" for r in results[k])
        ratio = "" if k == "two" else f"{ratios[k + '_over_two']:6.3f}x"
        print(f"{label:32} {med[k]:7.2f} s {ratio:>8}   runs {runs}")
    print(f"per-round ratios to (1): {json.dumps(per_round)}")
    target = ratios["strag_over_two"] <= 1.15
    print(f"target strag/two <= 1.15: {'met' if target else 'NOT met'} ({ratios['strag_over_two']:.3f})")
    out = args.json or os.path.join(ROOT, "bench", "out", "straggler-sort.json" if args.sort else "straggler.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"app": "sort" if args.sort else "wc", "gib": args.gib, "files": len(inputs),
                   "straggler": kind, "runs": results, "median_wall_s": med, "ratios": ratios,
                   "per_round": per_round}, f, indent=2)
    print(f"bench: results in {out}")


if __name__ == "__main__":
    main()
