#!/usr/bin/env bash
# Delta patch benchmark: Atoll (atoll-delta) against bsdiff/bspatch, xdelta3,
# zstd --patch-from (Debian) and HDiffPatch (PyPI `hdiffpatch`), side by side on
# real pairs of consecutive package versions taken from the registries:
#
#   raw  the native library inside two duckdb wheels (_duckdb...so, ~60 MB)
#   zip  two consecutive duckdb manylinux wheels (~21 MB zips, like an APK)
#   tgz  two consecutive typescript npm tarballs (~4.4 MB, like a JS bundle)
#
#   bench/delivery/run.sh                   # everything, about 25 minutes
#   PAIRS="zip tgz" TOOLS="atoll bsdiff" bench/delivery/run.sh
#
# Every diff and apply runs pinned to CPU 1 (apply stands in for a phone) under
# /usr/bin/time, which gives wall time, CPU time and peak RSS; every output is
# compared with the real new file (a tool that fails this is marked). Applies
# are repeated with hyperfine (APPLY_RUNS, default 3; the mean is reported).
# report.py prints the table with ratios. Benchmarks never gate CI.
#
# Environment: DUCKDB_OLD/DUCKDB_NEW (1.5.5/1.5.6), TS_OLD/TS_NEW (5.9.2/5.9.3),
# PAIRS, TOOLS (atoll bsdiff xdelta3 zstd hdiff-zstd hdiff-lzma2), APPLY_RUNS,
# CARGO_TARGET_DIR (where the atoll-delta example is built).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DUCKDB_OLD=${DUCKDB_OLD:-1.5.5}
DUCKDB_NEW=${DUCKDB_NEW:-1.5.6}
TS_OLD=${TS_OLD:-5.9.2}
TS_NEW=${TS_NEW:-5.9.3}
PAIRS=${PAIRS:-raw zip tgz}
TOOLS=${TOOLS:-atoll bsdiff xdelta3 zstd hdiff-zstd hdiff-lzma2}
APPLY_RUNS=${APPLY_RUNS:-3}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ATOLL=$CARGO_TARGET_DIR/release/examples/delta
CORPUS=$HERE/corpus
RESULTS=$HERE/results/$(date -u +%Y%m%d-%H%M%S)
PY=$HERE/.venv/bin/python
PIN="taskset -c 1"
mkdir -p "$CORPUS" "$RESULTS"

log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- tools -------------------------------------------------------------------
missing=()
for pkg_cmd in bsdiff:bsdiff xdelta3:xdelta3 zstd:zstd time:/usr/bin/time hyperfine:hyperfine util-linux:taskset; do
    command -v "${pkg_cmd#*:}" >/dev/null 2>&1 || missing+=("${pkg_cmd%%:*}")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ ! -x $PY ]] || ! "$PY" -c 'import hdiffpatch' 2>/dev/null; then
    log "creating the Python venv (hdiffpatch)"
    python3 -m venv "$HERE/.venv"
    "$PY" -m pip install -q hdiffpatch
fi
log "building the atoll-delta example (release, -p atoll-delta only)"
(cd "$ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build -q --release -p atoll-delta --example delta)

# --- corpus (registries only) -------------------------------------------------
wheel() { ls "$CORPUS"/duckdb-"$1"-cp311-*manylinux*x86_64*.whl 2>/dev/null | head -1; }
for v in "$DUCKDB_OLD" "$DUCKDB_NEW"; do
    if [[ -z $(wheel "$v") ]]; then
        log "pip download duckdb==$v"
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
            "duckdb==$v" -d "$CORPUS"
    fi
    so=$CORPUS/duckdb-$v.so
    [[ -s $so ]] || unzip -p "$(wheel "$v")" '_duckdb*.so' >"$so"
done
for v in "$TS_OLD" "$TS_NEW"; do
    [[ -s $CORPUS/typescript-$v.tgz ]] || (cd "$CORPUS" && npm pack -q "typescript@$v" >/dev/null)
done
pair_files() {
    case $1 in
        raw) echo "$CORPUS/duckdb-$DUCKDB_OLD.so $CORPUS/duckdb-$DUCKDB_NEW.so" ;;
        zip) echo "$(wheel "$DUCKDB_OLD") $(wheel "$DUCKDB_NEW")" ;;
        tgz) echo "$CORPUS/typescript-$TS_OLD.tgz $CORPUS/typescript-$TS_NEW.tgz" ;;
    esac
}

# --- one tool: the diff and apply command lines --------------------------------
# Sets DIFF and APPLY (arrays) for tool $1, old $2, new $3, patch $4, out $5.
commands() {
    local tool=$1 old=$2 new=$3 patch=$4 out=$5 oldsize
    oldsize=$(stat -c %s "$old")
    case $tool in
        atoll) DIFF=("$ATOLL" diff "$old" "$new" "$patch"); APPLY=("$ATOLL" apply "$old" "$patch" "$out") ;;
        bsdiff) DIFF=(bsdiff "$old" "$new" "$patch"); APPLY=(bspatch "$old" "$out" "$patch") ;;
        xdelta3)
            # -B oldsize: one source window over the whole old file (as in
            # HDiffPatch's comparison), -9 best compression, -D -R: no gzip
            # detection (it would recompress a .tgz with gzip and get other bytes).
            DIFF=(xdelta3 -e -9 -f -D -B "$oldsize" -s "$old" "$new" "$patch")
            APPLY=(xdelta3 -d -f -D -R -B "$oldsize" -s "$old" "$patch" "$out") ;;
        zstd)
            DIFF=(zstd -q -f -T1 --ultra -21 --long=27 "--patch-from=$old" "$new" -o "$patch")
            APPLY=(zstd -q -f -d --long=27 "--patch-from=$old" "$patch" -o "$out") ;;
        hdiff-zstd | hdiff-lzma2)
            DIFF=("$PY" "$HERE/hdiff.py" diff "${tool#hdiff-}" "$old" "$new" "$patch")
            APPLY=("$PY" "$HERE/hdiff.py" apply "$old" "$patch" "$out") ;;
        *) die "unknown tool $tool" ;;
    esac
}

# Runs a command pinned under /usr/bin/time; prints "wall cpu rss_kb".
measure() {
    local tfile=$RESULTS/time.tmp
    $PIN /usr/bin/time -f '%e %U %S %M' -o "$tfile" "$@" >/dev/null 2>>"$RESULTS/stderr.log" || return 1
    awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$tfile"
}

printf 'pair\ttool\told\tnew\tpatch\tnew_zstd19\tdiff_wall\tdiff_cpu\tdiff_rss_kb\tapply_wall\tapply_cpu\tapply_rss_kb\tapply_mean\tok\n' >"$RESULTS/results.tsv"
for pair in $PAIRS; do
    read -r old new <<<"$(pair_files "$pair")"
    [[ -s $old && -s $new ]] || die "corpus for $pair missing"
    z19=$(zstd -q -19 -T1 -c "$new" | wc -c)
    for tool in $TOOLS; do
        patch=$RESULTS/$pair.$tool.patch
        out=$RESULTS/$pair.$tool.out
        commands "$tool" "$old" "$new" "$patch" "$out"
        log "$pair / $tool: diff"
        if ! d=$(measure "${DIFF[@]}"); then
            log "$pair / $tool: diff failed"; continue
        fi
        log "$pair / $tool: apply"
        a=$(measure "${APPLY[@]}") || a="0 0 0"
        ok=no
        cmp -s "$out" "$new" && ok=yes
        mean=$(awk '{print $1}' <<<"$a")
        if [[ $ok == yes && $APPLY_RUNS -gt 1 ]]; then
            hyperfine -N -r "$APPLY_RUNS" --export-json "$RESULTS/h.json" "$PIN ${APPLY[*]}" >/dev/null 2>&1 &&
                mean=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["results"][0]["mean"], 3))' "$RESULTS/h.json")
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$tool" \
            "$(stat -c %s "$old")" "$(stat -c %s "$new")" "$(stat -c %s "$patch")" "$z19" \
            $d $a "$mean" "$ok" >>"$RESULTS/results.tsv"
        rm -f "$out"
        [[ $tool == atoll ]] && "$ATOLL" info "$patch" 2>>"$RESULTS/stderr.log"
    done
done
rm -f "$RESULTS"/*.patch "$RESULTS/time.tmp" "$RESULTS/h.json"
log "results in $RESULTS"
python3 "$HERE/report.py" "$RESULTS/results.tsv"
