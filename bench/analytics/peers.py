#!/usr/bin/env python3
"""Peer engines for the analytics benchmark: DuckDB and chdb (embedded ClickHouse).

    peers.py ingest --engine duckdb|chdb --file events.ndjson --dir DB_DIR [--threads 1]
    peers.py query  --engine duckdb|chdb --dir DB_DIR --query dau|uv|retention|funnel
                    --from YYYY-MM-DD --to YYYY-MM-DD [--threads 2] [--runs 3]

Every command prints one JSON object on stdout.

`ingest` loads the NDJSON written by `atoll-bench events-gen` into a persistent
table (DuckDB: `read_json` into a database file; chdb: `INSERT ... SELECT FROM
file(..., JSONEachRow)` into a MergeTree table) and reports rows/s. Pin it with
`taskset -c 1` and `--threads 1` for a per-core figure.

`query` opens the database in a fresh process, runs one question once (the cold
run: the driver drops the page cache before starting the process) and then
`--runs` more times (hot); it reports every time, the best hot one, and the
answer in a canonical form the driver compares with Atoll's:

- dau:       {"days": {"YYYY-MM-DD": distinct devices with an event that UTC day}}
- uv:        {"uv": distinct devices over the range}
- retention: {"cohorts": {"YYYY-MM-DD": [size, r1, ..., r7]}}: size = devices whose
             first event ever is that day (a day of the range); rN = of those,
             devices active on day + N
- funnel:    {"steps": [n1, n2, n3, n4]}: view_item -> add_to_cart -> checkout ->
             purchase, 24 h window, ClickHouse windowFunnel default semantics per
             device; a chain starts inside the range, later steps up to the
             window after its end; nK = devices whose level >= K.

Days are UTC: `time` is milliseconds since the epoch and a day is time // 86400000.
"""

import argparse
import datetime as dt
import json
import os
import sys
import time

DAY_MS = 86_400_000
WINDOW_MS = 86_400_000
FUNNEL = ["view_item", "add_to_cart", "checkout", "purchase"]
PERIODS = 7

COLUMNS = [
    ("uuid", "VARCHAR", "String"),
    ("device_id", "VARCHAR", "String"),
    ("user_id", "VARCHAR", "Nullable(String)"),
    ("event_id", "VARCHAR", "LowCardinality(String)"),
    ("time", "BIGINT", "UInt64"),
    ("session_id", "VARCHAR", "String"),
    ("page", "VARCHAR", "LowCardinality(Nullable(String))"),
    ("referrer", "VARCHAR", "LowCardinality(Nullable(String))"),
    ("duration_ms", "BIGINT", "Nullable(Int64)"),
    ("platform", "VARCHAR", "LowCardinality(String)"),
    ("app_version", "VARCHAR", "LowCardinality(String)"),
    ("channel", "VARCHAR", "LowCardinality(String)"),
    ("attributes", "MAP(VARCHAR, VARCHAR)", "Map(String, String)"),
]


def day_number(text):
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


def day_text(number):
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(number))).isoformat()


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- DuckDB


def duckdb_connect(directory, threads):
    import duckdb

    os.makedirs(directory, exist_ok=True)
    con = duckdb.connect(os.path.join(directory, "events.duckdb"))
    con.execute(f"SET threads={threads}")
    con.execute("SET preserve_insertion_order=false")
    return con


def cpu_seconds():
    """User + system CPU time of this process (all threads) so far."""
    times = os.times()
    return times.user + times.system


def duckdb_ingest(args):
    con = duckdb_connect(args.dir, args.threads)
    con.execute("DROP TABLE IF EXISTS events")
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind, _ in COLUMNS)
    args.cpu_before = cpu_seconds()
    started = time.perf_counter()
    con.execute(
        f"CREATE TABLE events AS SELECT * FROM read_json('{args.file}', "
        f"format='newline_delimited', columns={{{columns}}})"
    )
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    args.cpu = cpu_seconds() - args.cpu_before
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    return rows, seconds


def duckdb_sql(query, first_ms, end_ms):
    if query == "dau":
        return (
            f"SELECT time // {DAY_MS} AS day, count(DISTINCT device_id) FROM events "
            f"WHERE time >= {first_ms} AND time < {end_ms} GROUP BY day ORDER BY day"
        )
    if query == "uv":
        return (
            f"SELECT count(DISTINCT device_id) FROM events "
            f"WHERE time >= {first_ms} AND time < {end_ms}"
        )
    if query == "retention":
        counts = ", ".join(
            f"count(*) FILTER (WHERE a.day = f.first_day + {n})" for n in range(PERIODS + 1)
        )
        return (
            f"WITH active AS (SELECT DISTINCT device_id, time // {DAY_MS} AS day FROM events), "
            f"first AS (SELECT device_id, min(day) AS first_day FROM active GROUP BY device_id) "
            f"SELECT f.first_day, {counts} FROM first f JOIN active a USING (device_id) "
            f"WHERE f.first_day >= {first_ms // DAY_MS} AND f.first_day < {end_ms // DAY_MS} "
            f"AND a.day <= f.first_day + {PERIODS} "
            f"GROUP BY f.first_day ORDER BY f.first_day"
        )
    if query == "funnel":
        # One window pass per step: for each event of step k, the latest start
        # of a chain that reached step k-1 on an earlier event of the device;
        # it extends that chain if it is within the window of the start. A later
        # start never hurts, so this is windowFunnel's level (times are unique
        # per device in this dataset; ties would need windowFunnel's order).
        names = ", ".join(f"'{name}'" for name in FUNNEL)
        step = " ".join(f"WHEN '{name}' THEN {i + 1}" for i, name in enumerate(FUNNEL))
        window = (
            "WINDOW w AS (PARTITION BY device_id ORDER BY time "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
        )
        parts = [
            f"e AS (SELECT device_id, time, CASE event_id {step} END AS step FROM events "
            f"WHERE event_id IN ({names}) AND time >= {first_ms} AND time < {end_ms + WINDOW_MS})",
            f"l1 AS (SELECT *, CASE WHEN step = 1 AND time < {end_ms} THEN time END AS s1 FROM e)",
        ]
        for k in range(2, len(FUNNEL) + 1):
            parts.append(
                f"p{k} AS (SELECT *, CASE WHEN step = {k} THEN max(s{k - 1}) OVER w END AS q{k} "
                f"FROM l{k - 1} {window})"
            )
            parts.append(
                f"l{k} AS (SELECT *, CASE WHEN q{k} IS NOT NULL AND time - q{k} <= {WINDOW_MS} "
                f"THEN q{k} END AS s{k} FROM p{k})"
            )
        counts = ", ".join(
            f"count(DISTINCT device_id) FILTER (WHERE s{k} IS NOT NULL)"
            for k in range(1, len(FUNNEL) + 1)
        )
        return f"WITH {', '.join(parts)} SELECT {counts} FROM l{len(FUNNEL)}"
    raise ValueError(query)


# ------------------------------------------------------------------ chdb


def chdb_session(directory):
    from chdb import session

    os.makedirs(directory, exist_ok=True)
    return session.Session(directory)


def chdb_ingest(args):
    sess = chdb_session(args.dir)
    sess.query("DROP TABLE IF EXISTS events SYNC")
    schema = ", ".join(f"{name} {kind}" for name, _, kind in COLUMNS)
    sess.query(
        f"CREATE TABLE events ({schema}) ENGINE = MergeTree ORDER BY (device_id, time)"
    )
    structure = schema.replace("'", "\\'")
    args.cpu_before = cpu_seconds()
    started = time.perf_counter()
    sess.query(
        f"INSERT INTO events SELECT * FROM file('{args.file}', 'JSONEachRow', '{structure}') "
        f"SETTINGS max_threads={args.threads}, max_insert_threads={args.threads}, "
        f"input_format_json_read_numbers_as_strings=1, "
        f"input_format_json_read_bools_as_strings=1"
    )
    seconds = time.perf_counter() - started
    args.cpu = cpu_seconds() - args.cpu_before
    rows = int(sess.query("SELECT count() FROM events", "CSV").data().strip())
    sess.close()
    return rows, seconds


def chdb_sql(query, first_ms, end_ms):
    if query == "dau":
        return (
            f"SELECT intDiv(time, {DAY_MS}) AS day, uniqExact(device_id) FROM events "
            f"WHERE time >= {first_ms} AND time < {end_ms} GROUP BY day ORDER BY day"
        )
    if query == "uv":
        return (
            f"SELECT uniqExact(device_id) FROM events "
            f"WHERE time >= {first_ms} AND time < {end_ms}"
        )
    if query == "retention":
        counts = ", ".join(
            f"countIf(a.day = f.first_day + {n})" for n in range(PERIODS + 1)
        )
        return (
            f"WITH active AS (SELECT DISTINCT device_id, intDiv(time, {DAY_MS}) AS day FROM events), "
            f"first AS (SELECT device_id, min(day) AS first_day FROM active GROUP BY device_id) "
            f"SELECT f.first_day, {counts} FROM first AS f INNER JOIN active AS a ON a.device_id = f.device_id "
            f"WHERE f.first_day >= {first_ms // DAY_MS} AND f.first_day < {end_ms // DAY_MS} "
            f"AND a.day <= f.first_day + {PERIODS} "
            f"GROUP BY f.first_day ORDER BY f.first_day"
        )
    if query == "funnel":
        names = ", ".join(f"'{name}'" for name in FUNNEL)
        conditions = [f"event_id = '{FUNNEL[0]}' AND time < {end_ms}"] + [
            f"event_id = '{name}'" for name in FUNNEL[1:]
        ]
        counts = ", ".join(f"countIf(level >= {k})" for k in range(1, len(FUNNEL) + 1))
        return (
            f"SELECT {counts} FROM (SELECT device_id, windowFunnel({WINDOW_MS})(time, "
            f"{', '.join(conditions)}) AS level FROM events "
            f"WHERE event_id IN ({names}) AND time >= {first_ms} AND time < {end_ms + WINDOW_MS} "
            f"GROUP BY device_id)"
        )
    raise ValueError(query)


# --------------------------------------------------------------- answers


def canonical(query, rows):
    if query == "dau":
        return {"days": {day_text(day): int(n) for day, n in rows}}
    if query == "uv":
        return {"uv": int(rows[0][0])}
    if query == "retention":
        return {"cohorts": {day_text(row[0]): [int(x) for x in row[1:]] for row in rows}}
    if query == "funnel":
        return {"steps": [int(x) for x in rows[0]]}
    raise ValueError(query)


def run_query(args):
    first_ms = day_number(args.from_) * DAY_MS
    end_ms = (day_number(args.to) + 1) * DAY_MS
    times = []
    if args.engine == "duckdb":
        con = duckdb_connect(args.dir, args.threads)
        sql = duckdb_sql(args.query, first_ms, end_ms)

        def once():
            return con.execute(sql).fetchall()

    else:
        sess = chdb_session(args.dir)
        sql = chdb_sql(args.query, first_ms, end_ms) + f" SETTINGS max_threads={args.threads}"

        def once():
            text = sess.query(sql, "JSONCompact").data()
            return json.loads(text)["data"]

    rows = None
    for _ in range(1 + args.runs):
        started = time.perf_counter()
        rows = once()
        times.append(time.perf_counter() - started)
    answer = canonical(args.query, rows)
    return {
        "engine": args.engine,
        "query": args.query,
        "threads": args.threads,
        "cold_s": times[0],
        "hot_s": min(times[1:]) if len(times) > 1 else times[0],
        "times_s": times,
        "answer": answer,
        "sql": sql,
    }


# ----------------------------------------------------------------- Atoll


def atoll_get(args, path):
    import urllib.request

    request = urllib.request.Request(
        args.url.rstrip("/") + path, headers={"Authorization": f"Bearer {args.token}"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def atoll_path(args):
    import urllib.parse

    base = f"/api/v1/workspaces/{args.workspace}/apps/{args.app}/analytics"
    span = f"from={args.from_}&to={args.to}"
    if args.query in ("dau", "uv"):
        return f"{base}/active?{span}"
    if args.query == "overview":
        return f"{base}/overview?{span}"
    if args.query == "retention":
        return f"{base}/retention?{span}&by=device&granularity=day&periods={PERIODS}"
    if args.query == "funnel":
        definition = {
            "steps": [{"event_id": name} for name in FUNNEL],
            "window_secs": WINDOW_MS // 1000,
            "by": "device",
        }
        encoded = urllib.parse.quote(json.dumps(definition, separators=(",", ":")))
        return f"{base}/funnel?definition={encoded}&{span}"
    raise ValueError(args.query)


def atoll_canonical(query, report):
    if query == "dau":
        return {"days": {day["date"]: day["active_devices"] for day in report["days"] if day["active_devices"]}}
    if query == "uv":
        return {"uv": report["totals"]["active_devices"]}
    if query == "retention":
        return {
            "cohorts": {
                cohort["start"]: [cohort["size"]] + [n or 0 for n in cohort["retained"]]
                for cohort in report["cohorts"]
                if cohort["size"]
            }
        }
    if query == "funnel":
        return {"steps": [step["count"] for step in report["steps"]]}
    raise ValueError(query)


def atoll_query(args):
    path = atoll_path(args)
    times = []
    report = None
    for _ in range(1 + args.runs):
        started = time.perf_counter()
        report = atoll_get(args, path)
        times.append(time.perf_counter() - started)
    return {
        "engine": "atoll",
        "query": args.query,
        "cold_s": times[0],
        "hot_s": min(times[1:]) if len(times) > 1 else times[0],
        "times_s": times,
        "answer": atoll_canonical(args.query, report),
        "path": path,
        "totals": report.get("totals") if isinstance(report, dict) else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--engine", choices=["duckdb", "chdb"], required=True)
    ingest.add_argument("--file", required=True)
    ingest.add_argument("--dir", required=True)
    ingest.add_argument("--threads", type=int, default=1)
    query = sub.add_parser("query")
    query.add_argument("--engine", choices=["duckdb", "chdb"], required=True)
    query.add_argument("--dir", required=True)
    query.add_argument("--query", choices=["dau", "uv", "retention", "funnel"], required=True)
    query.add_argument("--from", dest="from_", required=True)
    query.add_argument("--to", required=True)
    query.add_argument("--threads", type=int, default=2)
    query.add_argument("--runs", type=int, default=3)
    atoll = sub.add_parser("atoll-query")
    atoll.add_argument("--url", required=True)
    atoll.add_argument("--token", default=os.environ.get("ATOLL_BENCH_TOKEN"))
    atoll.add_argument("--workspace", default="demo")
    atoll.add_argument("--app", required=True)
    atoll.add_argument("--query", choices=["dau", "uv", "retention", "funnel", "overview"], required=True)
    atoll.add_argument("--from", dest="from_", required=True)
    atoll.add_argument("--to", required=True)
    atoll.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.command == "atoll-query":
        if args.query == "overview":
            json.dump(atoll_get(args, atoll_path(args)), sys.stdout)
            sys.stdout.write("\n")
            return
        result = atoll_query(args)
    elif args.command == "ingest":
        args.file = os.path.abspath(args.file)
        if args.engine == "duckdb":
            rows, seconds = duckdb_ingest(args)
        else:
            rows, seconds = chdb_ingest(args)
        result = {
            "engine": args.engine,
            "threads": args.threads,
            "rows": rows,
            "seconds": seconds,
            "rows_per_s": rows / seconds,
            "cpu_s": args.cpu,
            "rows_per_cpu_s": rows / args.cpu if args.cpu else None,
            "file_bytes": os.path.getsize(args.file),
            "bytes_on_disk": dir_bytes(args.dir),
        }
    else:
        result = run_query(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
