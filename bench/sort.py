#!/usr/bin/env python3
"""Sort benchmark: mr's total-order sort against GNU sort and mrsequential.

Makes gensort -a records (tools/gensort; cached under --data-dir), --gib GiB in --files
files, then measures, --runs rounds with the order of the contenders rotated each round,
wall time, CPU time and peak RSS of every process:
  1. LC_ALL=C sort --parallel=2 -S 50%      (GNU sort, also a total order; one output)
  2. mrsequential sort                       (one process, the same app code)
  3. coordinator --partition range -r 10 + 2 workers, sharing a directory
and with --tcp also
  4. the same over TCP with TLS (nothing shared: every record crosses the network 3 times)
  5. the same with --insecure-plaintext
Every output is validated by tools/valsort against the input (order across the files in
partition order, record count, checksum). Prints medians, ratios to GNU sort, the share
of the job spent sampling, and the balance of the partitions; writes JSON.

Usage: bench/run.sh --sort [--gib 1] [--runs 3] [--skew] [--tcp] [--json FILE]
A benchmark, not a test: it prints figures and never fails on speed.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, ROOT, fresh, median_of, run_cluster, run_single, run_tcp_cluster  # noqa: E402

RECORD = 100


def make_input(data_dir, gib, files, skew):
    records = int(gib * (1 << 30)) // RECORD
    per_file = records // files
    name = f"{int(gib * 1024)}mib-{files}{'-skew' if skew else ''}"
    d = os.path.join(data_dir, name)
    inputs = sorted(glob.glob(os.path.join(d, "part-*.dat")))
    if len(inputs) == files:
        return inputs
    print(f"bench: generating {per_file * files} records in {files} files under {d}", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i in range(files):
        cmd = [f"{BIN}/gensort", "-a", "-b", str(i * per_file)]
        if skew:
            cmd.append("--skew")
        subprocess.run(cmd + [str(per_file), os.path.join(d, f"part-{i:02}.dat")], check=True)
    return sorted(glob.glob(os.path.join(d, "part-*.dat")))


def valsort(inputs, outputs):
    cmd = [f"{BIN}/valsort"]
    for i in inputs:
        cmd += ["--input", i]
    p = subprocess.run(cmd + outputs, capture_output=True, text=True)
    ok = p.returncode == 0
    if not ok:
        print(f"bench: valsort FAILED: {p.stdout.strip()} {p.stderr.strip()}", flush=True)
    return ok


def report_of(cwd):
    with open(os.path.join(cwd, "report.json")) as fh:
        return json.load(fh)


def mr_sort(inputs, cwd, tcp=None, reduce=10):
    """The range-partitioned sort: on a Unix socket sharing cwd, or over TCP (tcp = True
    for TLS, False for plaintext) with nothing shared."""
    outs = [os.path.join(cwd, "out", f"mr-out-{y}") for y in range(reduce)]
    fresh(os.path.join(cwd, "out"))
    app = f"{BIN}/libsort.so"
    extra = ["--partition", "range", "--report", "report.json"]
    if tcp is None:
        r = run_cluster(app, inputs, cwd, reduce=reduce, extra=extra + ["--no-journal", "--output", "out"])
    else:
        r = run_tcp_cluster(app, inputs, cwd, tcp, reduce=reduce, extra=extra)
    rep = report_of(cwd)
    part = rep["partitioning"]
    r["sample_s"] = part["sample"]["wall_secs"] if part.get("sample") else 0.0
    r["largest_over_mean"] = part["largest_over_mean"]
    r["heavy_keys"] = len(part["heavy_keys"])
    r["valid"] = valsort(inputs, outs)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=1.0, help="input size in GiB (1; 4 for the big run)")
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skew", action="store_true", help="Zipf-skewed key prefixes (gensort --skew)")
    ap.add_argument("--tcp", action="store_true", help="also over TCP, with TLS and with --insecure-plaintext")
    ap.add_argument("--no-sequential", action="store_true", help="skip mrsequential (it holds all in memory)")
    ap.add_argument("--data-dir", default=os.environ.get("MR_BENCH_SORT_DATA", "/tmp/mr-bench-sort"))
    ap.add_argument("--work-dir", default=os.environ.get("MR_BENCH_WORK", "/tmp/mr-bench-work"))
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "out", "sort.json"))
    args = ap.parse_args()

    inputs = make_input(args.data_dir, args.gib, args.files, args.skew)
    size = sum(os.path.getsize(f) for f in inputs)
    contenders = ["gnu", "mr"]
    if not args.no_sequential:
        contenders.insert(1, "mrsequential")
    if args.tcp:
        contenders += ["tcp_tls", "tcp_plain"]
    results = {k: [] for k in contenders}
    valid = {k: True for k in contenders}
    for i in range(args.runs):
        order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
        print(f"bench: round {i + 1} of {args.runs}: {', '.join(order)}", flush=True)
        for k in order:
            d = fresh(os.path.join(args.work_dir, f"sort-{k}"))
            if k == "gnu":
                out = os.path.join(d, "sorted.dat")
                r = run_single(["env", "LC_ALL=C", "sort", "--parallel=2", "-S", "50%", "-T", d,
                                "-o", out, *inputs], d)
                r["valid"] = valsort(inputs, [out])
            elif k == "mrsequential":
                out = os.path.join(d, "mr-out-0")
                r = run_single([f"{BIN}/mrsequential", "--output", out, f"{BIN}/libsort.so", *inputs], d)
                r["valid"] = valsort(inputs, [out])
            else:
                r = mr_sort(inputs, d, tcp={"mr": None, "tcp_tls": True, "tcp_plain": False}[k])
            valid[k] &= r["valid"]
            results[k].append(r)
            shutil.rmtree(d, ignore_errors=True)
            print(f"bench:   {k}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU", flush=True)

    med = {k: median_of(v) for k, v in results.items()}
    mr_runs = results["mr"]
    sample_share = statistics.median(r["sample_s"] / r["wall_s"] for r in mr_runs)
    balance = max(r["largest_over_mean"] for r in mr_runs)
    ratios = {"mr_over_gnu": med["mr"]["wall_s"] / med["gnu"]["wall_s"],
              "mr_over_gnu_per_round": [round(a["wall_s"] / b["wall_s"], 3)
                                        for a, b in zip(results["mr"], results["gnu"])]}
    if args.tcp:
        ratios["tls_over_plaintext"] = med["tcp_tls"]["wall_s"] / med["tcp_plain"]["wall_s"]
        ratios["tls_over_plaintext_per_round"] = [
            round(a["wall_s"] / b["wall_s"], 3) for a, b in zip(results["tcp_tls"], results["tcp_plain"])]
    mibs = size / (1 << 20)
    labels = {"gnu": "1 LC_ALL=C sort --parallel=2", "mrsequential": "2 mrsequential sort",
              "mr": "3 mr range sort, 2 workers", "tcp_tls": "4 mr over TCP, TLS", "tcp_plain": "5 mr over TCP, plaintext"}
    print()
    print(f"input: {len(inputs)} files, {mibs:.0f} MiB, {size // RECORD} records"
          f"{' (skewed keys)' if args.skew else ''}; {args.runs} rounds, medians")
    print(f"{'measurement':32} {'wall s':>8} {'cpu s':>8} {'MiB/s':>8}  valid  peak RSS MiB")
    for k in contenders:
        m = med[k]
        rss = ", ".join(f"{n} {v:.0f}" for n, v in m["rss_mib"].items())
        print(f"{labels[k]:32} {m['wall_s']:8.2f} {m['cpu_s']:8.2f} {mibs / m['wall_s']:8.0f}  {str(valid[k]):5}  {rss}")
    print(f"ratio (3)/(1) wall: {ratios['mr_over_gnu']:.3f} (per round: "
          f"{', '.join(str(r) for r in ratios['mr_over_gnu_per_round'])})")
    print(f"sampling: {sample_share * 100:.1f}% of the mr job's wall (median); largest partition "
          f"{balance:.3f}x the mean (worst run)")
    if args.tcp:
        print(f"ratio (4)/(5) wall: {ratios['tls_over_plaintext']:.3f} (per round: "
              f"{', '.join(str(r) for r in ratios['tls_over_plaintext_per_round'])})")
    worker_rss = max(v for n, v in med["mr"]["rss_mib"].items() if n.startswith("worker"))
    targets = [
        ("mr sort wall <= 0.5 x GNU sort", f"{ratios['mr_over_gnu']:.3f}x", ratios["mr_over_gnu"] <= 0.5),
        ("sampling <= 5% of the job", f"{sample_share * 100:.1f}%", sample_share <= 0.05),
        ("peak RSS of each worker <= 512 MiB", f"{worker_rss:.0f} MiB", worker_rss <= 512),
        ("largest partition <= 1.5x mean (skew) / 1.2x (uniform)", f"{balance:.3f}x",
         balance <= (1.5 if args.skew else 1.2)),
        ("every output valid (valsort)", str(all(valid.values())), all(valid.values())),
    ]
    print()
    print("targets (figures, not a test):")
    for name, got, ok in targets:
        print(f"  {'met   ' if ok else 'MISSED'} {name:56} {got}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump({"input_files": len(inputs), "input_bytes": size, "skew": args.skew, "runs": args.runs,
                   "results": results, "medians": med, "ratios": ratios, "sample_share": sample_share,
                   "largest_over_mean": balance, "valid": valid,
                   "targets": [{"target": n, "measured": g, "met": ok} for n, g, ok in targets]},
                  fh, indent=2)
    print(f"figures written to {args.json}")
    return 0 if all(valid.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
