#!/usr/bin/env python3
"""Checks that Atoll, DuckDB and chdb gave the same answers and prints the tables.

    report.py RESULTS_DIR

Reads the JSON and text files `run.sh` left in RESULTS_DIR. Exit status 1 when
any answer differs between engines (the tables are printed anyway), 0 otherwise.
"""

import json
import os
import re
import sys

QUERIES = ["dau", "uv", "retention", "funnel"]
ENGINES = ["duckdb", "chdb", "atoll"]
TARGETS = {"dau": ("duckdb", 5.0), "uv": ("duckdb", 5.0), "retention": ("duckdb", 5.0), "funnel": ("chdb", 1.0)}


def load_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def result_line(path):
    """The key=value pairs of the last `RESULT` line of a loadgen output."""
    try:
        with open(path) as handle:
            lines = [line for line in handle if line.startswith("RESULT ")]
    except OSError:
        return None
    if not lines:
        return None
    return dict(re.findall(r"(\w+)=(\S+)", lines[-1]))


def differences(reference, other):
    """A short description of how two canonical answers differ, or None."""
    if reference == other:
        return None
    notes = []
    for key in sorted(set(reference) | set(other)):
        a, b = reference.get(key), other.get(key)
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a or {}, b or {}
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    notes.append(f"{key}[{sub}]: {a.get(sub)} vs {b.get(sub)}")
        elif a != b:
            notes.append(f"{key}: {a} vs {b}")
    return "; ".join(notes[:6]) + (f" (+{len(notes) - 6} more)" if len(notes) > 6 else "")


def ms(seconds):
    if seconds is None:
        return "—"
    value = seconds * 1000
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratio(peer, atoll):
    if peer is None or atoll is None or atoll <= 0:
        return "—"
    return f"{peer / atoll:.2f}×"


def main():
    directory = sys.argv[1]
    meta = load_json(os.path.join(directory, "meta.json")) or {}
    results = {
        (engine, query): load_json(os.path.join(directory, f"query-{engine}-{query}.json"))
        for engine in ENGINES
        for query in QUERIES
    }
    failures = []

    print(f"## Analytics benchmark — {meta.get('events', '?')} events, {meta.get('devices', '?')} devices, "
          f"{meta.get('from', '?')} .. {meta.get('to', '?')} (seed {meta.get('seed', '?')})")
    print()

    # Ingest.
    print("### Ingest")
    print()
    print("| system | path | events/s (wall) | events per CPU-second of the engine | CPU µs/event | notes |")
    print("|---|---|---|---|---|---|")
    per_core = {}
    for engine, label in (("chdb", "INSERT … SELECT FROM file(JSONEachRow) → MergeTree"), ("duckdb", "CREATE TABLE AS read_json (NDJSON)")):
        ingest = load_json(os.path.join(directory, f"ingest-{engine}.json"))
        if not ingest:
            continue
        per_cpu = ingest.get("rows_per_cpu_s")
        per_core[engine] = per_cpu
        print(f"| {engine} | {label} | {ingest['rows_per_s']:,.0f} | {per_cpu:,.0f} | {1e6 / per_cpu:.2f} | "
              f"1 thread, taskset -c 1; {ingest['rows']:,} rows; {ingest['bytes_on_disk'] / 1e6:,.0f} MB on disk |")
    for name, label in (("atoll-events", "signed device API, 50 events/batch, durable ack"), ("atoll-backfill", "admin backfill API, ≤ 500 events/call")):
        fields = result_line(os.path.join(directory, f"{name}.txt"))
        if not fields:
            continue
        events_per_s = float(fields.get("events_per_s", 0))
        us_per_event = fields.get("server_us_per_event")
        per_cpu = 1e6 / float(us_per_event) if us_per_event else None
        per_core[name] = per_cpu
        extra = (f"{fields.get('connections', '?')} connections, p50 {int(fields.get('p50_us', 0)) / 1000:.1f} ms, "
                 f"p99 {int(fields.get('p99_us', 0)) / 1000:.1f} ms, cpu0 {fields.get('cpu0', '?')}%, cpu1 {fields.get('cpu1', '?')}%"
                 if name == "atoll-events" else f"{fields.get('events', '?')} events in {float(fields.get('seconds', 0)):.1f} s")
        print(f"| atoll | {label} | {events_per_s:,.0f} | {per_cpu:,.0f} | {float(us_per_event):.2f} | server taskset -c 1, loadgen -c 0; {extra} |"
              if per_cpu else f"| atoll | {label} | {events_per_s:,.0f} | — | — | {extra} |")
    print()
    if per_core.get("chdb"):
        for name in ("atoll-events", "atoll-backfill"):
            if per_core.get(name):
                print(f"- {name} per core vs chdb per core: {per_core[name] / per_core['chdb']:.2f}× (target ≥ 1.0×)")
        if per_core.get("duckdb"):
            for name in ("atoll-events", "atoll-backfill"):
                if per_core.get(name):
                    print(f"- {name} per core vs DuckDB per core: {per_core[name] / per_core['duckdb']:.2f}×")
    pinned = result_line(os.path.join(directory, "atoll-events.txt"))
    both = result_line(os.path.join(directory, "atoll-events-2cpu.txt"))
    if pinned:
        print(f"- device API, server on CPU 1 and loadgen on CPU 0: {float(pinned['events_per_s']):,.0f} events/s")
    if both:
        print(f"- device API end to end on 2 cores (server and loadgen share both CPUs): "
              f"{float(both['events_per_s']):,.0f} events/s, p99 {int(both.get('p99_us', 0)) / 1000:.1f} ms (target ≥ 150,000)")
    print()

    # Queries.
    print("### Queries (ms; cold = first run after dropping the page cache in a fresh process, hot = best of 3)")
    print()
    print("| question | DuckDB cold | DuckDB hot | chdb cold | chdb hot | Atoll cold | Atoll hot | DuckDB÷Atoll (hot) | chdb÷Atoll (hot) | target | answers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for query in QUERIES:
        row = {engine: results[(engine, query)] for engine in ENGINES}
        hot = {engine: (row[engine] or {}).get("hot_s") for engine in ENGINES}
        cold = {engine: (row[engine] or {}).get("cold_s") for engine in ENGINES}
        reference = row["duckdb"] or row["chdb"]
        verdict = []
        if reference is None:
            verdict.append("no peer answer")
        for engine in ("chdb", "atoll"):
            if row[engine] is None or reference is None:
                continue
            diff = differences(reference["answer"], row[engine]["answer"])
            if diff:
                failures.append(f"{query}: {engine} differs from {reference['engine']}: {diff}")
                verdict.append(f"{engine} DIFFERS")
        if not verdict and row["atoll"] is not None:
            verdict.append("all equal")
        elif not verdict:
            verdict.append("peers equal")
        peer, factor = TARGETS[query]
        target = f"{peer}÷Atoll ≥ {factor:g}×"
        name = {"dau": "DAU by day (30 d)", "uv": "UV over 30 d", "retention": "D1-D7 retention by cohort", "funnel": "4-step funnel, 24 h"}[query]
        if query in ("dau", "uv") and row["atoll"] is not None:
            name += " ¹"
        print(f"| {name} | {ms(cold['duckdb'])} | {ms(hot['duckdb'])} | {ms(cold['chdb'])} | {ms(hot['chdb'])} | "
              f"{ms(cold['atoll'])} | {ms(hot['atoll'])} | {ratio(hot['duckdb'], hot['atoll'])} | {ratio(hot['chdb'], hot['atoll'])} | "
              f"{target} | {', '.join(verdict)} |")
    print()
    if results[("atoll", "dau")] is not None:
        print("¹ Atoll answers DAU and UV with one call (`active`: DAU, WAU, MAU, new and cumulative devices "
              "and accounts per day, and UV, from the per-day sets); both rows time that same call.")
        print()
    answers = {query: (results[("duckdb", query)] or results[("chdb", query)] or {}).get("answer") for query in QUERIES}
    if answers.get("uv"):
        print(f"- UV over the range: {answers['uv']['uv']:,}")
    if answers.get("funnel"):
        print(f"- funnel steps: {answers['funnel']['steps']}")
    if answers.get("retention"):
        cohorts = answers["retention"]["cohorts"]
        size = sum(c[0] for c in cohorts.values())
        d1 = sum(c[1] for c in cohorts.values())
        d7 = sum(c[7] for c in cohorts.values())
        print(f"- retention summed over cohorts: {size:,} new devices, D1 {d1:,} ({d1 / size:.1%}), D7 {d7:,} ({d7 / size:.1%}; the last cohorts have no day 7 in the data)")
    print()
    if failures:
        print("### ANSWERS DIFFER")
        for failure in failures:
            print(f"- {failure}")
        return 1
    print("Correctness: every engine that ran gave the same answers." if results[("atoll", "dau")] else
          "Correctness: DuckDB and chdb agree (Atoll not run).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
