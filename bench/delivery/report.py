#!/usr/bin/env python3
"""Prints the delta benchmark's tables (markdown) from run.sh's results.tsv.

    report.py RESULTS.tsv [MORE.tsv ...]

With several files, a (pair, tool) row of a later file replaces the earlier one
(e.g. Atoll re-measured alone with TOOLS=atoll after a change).

Per pair: patch size (% of the new file, ratio to bsdiff, ratio to `zstd -19`
of the new file, i.e. what a full download would cost), diff time (CPU seconds
and speed-up over bsdiff), apply time (hyperfine mean) and apply peak RSS, then
the targets of performance-anchors.md section 4b for Atoll.
"""

import csv
import sys

TITLES = {
    "raw": "raw binary (duckdb .so)",
    "zip": "zip (duckdb wheel)",
    "tgz": "npm tarball (typescript .tgz)",
}


def main(paths):
    rows = []
    for path in paths:
        with open(path) as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                rows = [r for r in rows if (r["pair"], r["tool"]) != (row["pair"], row["tool"])] + [row]
    pairs_order = ["raw", "zip", "tgz"]
    tools_order = ["atoll", "bsdiff", "xdelta3", "zstd", "hdiff-zstd", "hdiff-lzma2"]
    rank = lambda value, order: order.index(value) if value in order else len(order)
    rows.sort(key=lambda r: (rank(r["pair"], pairs_order), rank(r["tool"], tools_order)))
    pairs = []
    for r in rows:
        if r["pair"] not in pairs:
            pairs.append(r["pair"])
    checks = []
    for pair in pairs:
        group = [r for r in rows if r["pair"] == pair]
        base = next((r for r in group if r["tool"] == "bsdiff"), None)
        first = group[0]
        print(f"\n### {TITLES.get(pair, pair)}: {int(first['old']):,} → {int(first['new']):,} bytes\n")
        print("| tool | patch bytes | % of new | × bsdiff | × zstd -19 of new | diff CPU s | diff wall s | diff speed × bsdiff | apply s | apply CPU s | apply peak RSS MB | output |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in group:
            patch, new = int(r["patch"]), int(r["new"])
            ratio = patch / int(base["patch"]) if base else float("nan")
            speed = float(base["diff_cpu"]) / max(float(r["diff_cpu"]), 0.01) if base else float("nan")
            print(
                f"| {r['tool']} | {patch:,} | {100 * patch / new:.2f}% | {ratio:.3f} | {patch / int(r['new_zstd19']):.3f} "
                f"| {float(r['diff_cpu']):.1f} | {float(r['diff_wall']):.1f} | {speed:.1f} | {float(r['apply_mean']):.2f} "
                f"| {float(r['apply_cpu']):.2f} | {int(r['apply_rss_kb']) / 1024:.1f} | {'identical' if r['ok'] == 'yes' else 'WRONG'} |"
            )
            if r["tool"] == "atoll" and base:
                limit = {"raw": 0.85, "zip": 0.65}.get(pair)
                if limit:
                    checks.append((f"{pair}: patch ≤ {limit}× bsdiff", ratio <= limit, f"{ratio:.3f}"))
                checks.append((f"{pair}: diff ≥ 4× faster than bsdiff (CPU)", speed >= 4, f"{speed:.1f}×"))
                # CPU time: on this shared box wall times swing with the
                # neighbours' load far more than CPU times do.
                bspatch = float(base["apply_cpu"]) / max(float(r["apply_cpu"]), 0.001)
                checks.append((f"{pair}: apply ≥ 3× bspatch throughput (CPU)", bspatch >= 3, f"{bspatch:.1f}×"))
                rss = int(r["apply_rss_kb"]) / 1024
                checks.append((f"{pair}: apply peak RSS ≤ 32 MB", rss <= 32, f"{rss:.1f} MB"))
                zstd = next((z for z in group if z["tool"] == "zstd"), None)
                if pair == "raw" and zstd:
                    zr = patch / int(zstd["patch"])
                    checks.append(("raw: patch ≤ 1.0× zstd --patch-from --ultra -21", zr <= 1.0, f"{zr:.3f}"))
    if checks:
        print("\n### Targets (performance-anchors.md §4b)\n")
        print("| target | met | measured |")
        print("|---|---|---|")
        for name, met, value in checks:
            print(f"| {name} | {'yes' if met else 'no'} | {value} |")
    return 0 if all(r["ok"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
