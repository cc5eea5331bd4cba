#!/usr/bin/env python3
"""Word count in a peer system, for bench/bench.py --peers: Polars or DuckDB, N threads.

Usage: bench/.venv/bin/python bench/peers.py polars|duckdb --threads 2 --output FILE FILES...

Lines are rows and words are the matches of the regex \\p{L}+ (general category L, the wc
app's letters), counted per word. Writes `word count` lines sorted by the word's UTF-8
bytes (the format and order of mr-wcbase --output, and of mrsequential's output sorted),
and prints the time it took (the import included) to stderr. Runs in the venv that bench.py
makes under bench/.venv.

Invalid UTF-8: mr decodes it lossily (each invalid sequence becomes U+FFFD, not a letter).
Polars reads lines with scan_lines, which rejects it; then it reads them again with its
CSV reader's utf8-lossy encoding, which decodes as mr does. DuckDB has no lossy decoding:
it stops with an error that says so.
"""

import argparse
import os
import sys
import time

# A separator that text does not contain, so that the CSV readers give one column per line.
UNIT_SEPARATOR = "\x1f"


def polars_counts(files):
    import polars as pl

    def count(lines):
        query = (lines.select(pl.col("line").str.extract_all(r"\p{L}+").alias("word"))
                 .explode("word").drop_nulls().group_by("word").len())
        # The streaming engine: on 64 MiB of the corpus 1.6x faster than the in-memory
        # one, at a fifth of its peak RSS (which holds every word as a row: 13 GB for 1 GiB).
        try:
            return query.collect(engine="streaming")
        except TypeError:  # a Polars without engine=
            return query.collect()

    if hasattr(pl, "scan_lines"):  # unstable in Polars 1.x-2.x; faster than the CSV reader
        try:
            df = count(pl.scan_lines(files, name="line"))
            return list(zip(df["word"].to_list(), df["len"].to_list()))
        except pl.exceptions.ComputeError as e:
            if "utf8" not in str(e).lower():
                raise
            print("peers: polars: scan_lines refused invalid UTF-8; reading it lossily as CSV",
                  file=sys.stderr)
    lines = pl.scan_csv(files, has_header=False, separator=UNIT_SEPARATOR, quote_char=None,
                        schema={"line": pl.String}, encoding="utf8-lossy",
                        truncate_ragged_lines=True, empty_string_is_null=False)
    df = count(lines)
    return list(zip(df["word"].to_list(), df["len"].to_list()))


def duckdb_counts(files, threads):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    # read_csv with a separator that never occurs: one VARCHAR per line, read in parallel
    # (read_text + string_split was 8x slower: one row per file, split on one thread).
    query = rf"""
        SELECT word, count(*) FROM (
            SELECT unnest(regexp_extract_all(line, '\p{{L}}+')) AS word
            FROM read_csv($files, columns = {{'line': 'VARCHAR'}}, header = false,
                          delim = chr(31), quote = '', escape = '', auto_detect = false,
                          strict_mode = false, null_padding = false))
        GROUP BY word"""
    try:
        return con.execute(query, {"files": files}).fetchall()
    except duckdb.InvalidInputException as e:
        if "unicode" in str(e).lower() or "utf" in str(e).lower():
            lines = [l.strip() for l in str(e).splitlines()]
            where = next((l for l in lines if l.startswith("file =")), "")
            sys.exit(f"peers: duckdb: the input is not valid UTF-8, which DuckDB cannot read "
                     f"lossily as mr does ({where})")
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system", choices=["polars", "duckdb"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    # Polars reads its thread count once, at import.
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    t0 = time.monotonic()
    if args.system == "polars":
        counts = polars_counts(args.files)
    else:
        counts = duckdb_counts(args.files, args.threads)
    counts.sort(key=lambda wn: wn[0].encode())
    with open(args.output, "wb") as fh:
        fh.write(b"".join(b"%s %d\n" % (w.encode(), n) for w, n in counts))
    print(f"peers: {args.system}: {len(counts)} distinct words in {time.monotonic() - t0:.2f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
