#!/usr/bin/env bash
# Backup, restore and index rebuild on an embedded installation with many
# documents, against the plain baseline of copying the database files:
#
#   DOCS=2000 bash bench/backup/run.sh     # appends to bench/results/backup.md
#
# Uses the release `agentry` binary ($CARGO_TARGET_DIR/release) on the mock
# embedder (ingestion is not what is measured) and the test tokenizer
# (scripts/test pulls it). The server keeps serving while `agentry backup`
# runs; the baseline `cp` copies the files with nothing writing to them.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/agentry-target}/release/agentry"
TOKENIZER="$HOME/.cache/agentry-test-data/models/all-minilm-l6-v2/tokenizer.json"
DOCS="${DOCS:-2000}"
PORT=18555
W="$(mktemp -d)"
trap 'kill "${PID:-}" 2>/dev/null || true; rm -rf "$W"' EXIT
seconds() { python3 -c 'import time; print(f"{time.time():.3f}")'; }
cat >"$W/agentry.toml" <<TOML
listen = "127.0.0.1:$PORT"
offline = true
log = "warn"
master_key = "sk-bench-master-key-0123456789"
[local]
enabled = false
[knowledge]
embedding_model = "mock-embed"
tokenizer = "$TOKENIZER"
[[providers]]
type = "mock"
name = "mock"
[[models]]
name = "mock-embed"
provider = "mock"
kind = "embedding"
TOML
run() { "$BIN" --config "$W/agentry.toml" "$@"; }
echo 'a long password 123' | run --data-dir "$W/data" admin bootstrap --tenant acme --email ops@example.com >/dev/null 2>&1
"$BIN" --config "$W/agentry.toml" --data-dir "$W/data" serve & PID=$!
sleep 2
python3 "$HERE/load.py" "http://127.0.0.1:$PORT" "$DOCS"
DB_BYTES=$(stat -c %s "$W/data/agentry.db")
T0=$(seconds); run --data-dir "$W/data" backup --include-master-key --out "$W/backup.zip" >/dev/null 2>&1; T1=$(seconds)
kill "$PID"; wait "$PID" 2>/dev/null || true
T2=$(seconds); mkdir "$W/copy" && cp "$W/data/agentry.db"* "$W/copy/"; T3=$(seconds)
T4=$(seconds); run --data-dir "$W/restored" restore "$W/backup.zip" >/dev/null 2>&1; T5=$(seconds)
"$BIN" --config "$W/agentry.toml" --data-dir "$W/restored" serve & PID=$!
sleep 2
SEARCH="$(python3 "$HERE/search.py" "http://127.0.0.1:$PORT")"
kill "$PID"; wait "$PID" 2>/dev/null || true
ROW=$(python3 - "$DOCS" "$DB_BYTES" "$(stat -c %s "$W/backup.zip")" "$T0" "$T1" "$T2" "$T3" "$T4" "$T5" "$SEARCH" <<'PY'
import sys
docs, db, archive, t0, t1, t2, t3, t4, t5, search = sys.argv[1:]
t = [float(x) for x in (t0, t1, t2, t3, t4, t5)]
print(f"| {docs} | {int(db)/1e6:.1f} MB | {t[1]-t[0]:.2f} s (serving) | {t[3]-t[2]:.2f} s (stopped) | {int(archive)/1e6:.1f} MB | {t[5]-t[4]:.2f} s | {search} |")
PY
)
RESULTS="$HERE/../results/backup.md"
[ -f "$RESULTS" ] || printf '# backup and restore\n\n| documents | database | agentry backup | baseline: cp of the files | archive | agentry restore | first search (index rebuilt) / next |\n|---|---|---|---|---|---|---|\n' >"$RESULTS"
echo "$ROW" | tee -a "$RESULTS"
