#!/usr/bin/env bash
# Submits a generated 10,000,000-recipient CSV campaign and reports the time and the peak
# resident memory of `salvo submit` (GNU time). Nothing is committed: the CSV and the
# store live in a temporary directory (or $1), removed at the end.
#   bench/micro/submit_10m.sh [build/salvo] [recipients]
set -euo pipefail
salvo=$(realpath "${1:-build/salvo}")
n=${2:-10000000}
work=$(mktemp -d "${TMPDIR:-/tmp}/salvo-10m-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
awk -v n="$n" 'BEGIN { print "email,name,token"; for (i = 0; i < n; i++) printf "user%d@d%d.example,Name %d,tok-%d\n", i, i % 997, i, (i * 7919) % 1000003 }' >rcpts.csv
cat >campaign.yaml <<'YAML'
id: ten-million
from: "Bench <bench@origin.example>"
subject: "Hello {{name}}"
text: |
  Dear {{name}}, your token is {{token}}.
recipients_csv: rcpts.csv
YAML
printf 'data_dir: %s/data\nmetrics:\n  listen: "off"\n' "$work" >salvo.yaml
echo "CSV: $(du -h rcpts.csv | cut -f1), $n recipients"
/usr/bin/time -v "$salvo" --config salvo.yaml submit campaign.yaml 2>time.txt
grep -E "Elapsed|Maximum resident" time.txt
echo "store: $(du -sh data | cut -f1)"
