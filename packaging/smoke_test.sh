#!/usr/bin/env bash
# Use a built app folder as a user would, with no Python on PATH: every command that
# matters runs on generated data. Usage: packaging/smoke_test.sh APP_DIR
set -euo pipefail
APP=$(cd "$1" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export PATH=/usr/bin:/bin AVSC_CACHE_DIR="$TMP/cache" QT_QPA_PLATFORM=offscreen HOME="$TMP/home"
cd "$TMP"
"$APP/avsc" --version
"$APP/avsc" sample-data data --classes 2 --per-class 6 --seconds 4 --jobs 2
"$APP/avsc" train data --out model --preset tiny --epochs 2 --jobs 2
"$APP/avsc" evaluate --model model data --json metrics.json
"$APP/avsc" classify --model model data/*/*-000.mp4 --json > classify.json
"$APP/avsc" label --model model data --out labels.csv --recursive --jobs 2
"$APP/avsc" export --model model --format tflite --precision int8
"$APP/avsc" classify --model model data/*/*-001.mp4
"$APP/avsc-gui" --model model --smoke-test gui.png "$(ls data/*/*-002.mp4 | head -n 1)"
test -s gui.png && test -s labels.csv && test -s metrics.json
echo "smoke test passed: $APP"
