#!/usr/bin/env bash
# stress.sh shakes the test suite out under load: it runs every test of
# `make test` RUNS times in a row (each run a fresh `go test -count=1`), with a
# CPU hog (Debian's stress-ng) on every core for the whole time, and prints how
# many runs passed and which tests failed in which run.
#
#   RUNS        how many runs (default 5)
#   HOG         CPU hog workers (default: one per core; 0 runs without load)
#   STRESS_LOG  directory for each run's full log (default: a temp dir)
#
# It expects the binaries `make test` builds (make stress depends on the same
# targets) in PULLFIX_K8S_BIN_DIR and PULLFIX_HELM, as `make test` sets them.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
hog="${HOG:-$(nproc)}"
logs="${STRESS_LOG:-$(mktemp -d -t pullfix-stress.XXXXXX)}"
mkdir -p "$logs"

hog_pid=""
stop_hog() { [[ -n "$hog_pid" ]] && kill -- "-$hog_pid" 2>/dev/null; wait "$hog_pid" 2>/dev/null; hog_pid=""; }
trap stop_hog EXIT
# Ctrl-C or a kill ends the whole stress run, not just the current go test.
trap 'stop_hog; exit 130' INT TERM
if (( hog > 0 )); then
  if ! command -v stress-ng >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
  fi
  # Its own process group, so stopping it stops every worker.
  setsid stress-ng --cpu "$hog" --cpu-load 100 --quiet &
  hog_pid=$!
  echo "stress: CPU hog on $hog core(s) (stress-ng pid $hog_pid)"
fi

passed=0
declare -a summary
for ((i = 1; i <= runs; i++)); do
  log="$logs/run-$i.log"
  start=$(date +%s)
  go test -count=1 -timeout 30m ./... >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  if (( rc == 0 )); then
    passed=$((passed + 1))
    line="run $i: PASS in ${took}s"
  else
    failed=$(grep -E '^\s*--- FAIL: ' "$log" | sed -E 's/^\s*--- FAIL: ([^ ]+).*/\1/' | sort -u | tr '\n' ' ')
    pkgs=$(grep -E '^(FAIL|panic:)' "$log" | grep -v '^FAIL$' | tr '\n' ' ')
    line="run $i: FAIL in ${took}s: ${failed:-(no test named)} [${pkgs}] (log: $log)"
  fi
  summary+=("$line")
  echo "stress: $line"
done
stop_hog
echo
echo "stress: $passed of $runs runs passed (hog: $hog core(s)); logs in $logs"
printf '  %s\n' "${summary[@]}"
(( passed == runs ))
