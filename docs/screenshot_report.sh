#!/bin/sh
# Screenshot of a report.html with headless Chromium (Debian's `chromium`
# package: apt-get install -y chromium), for the README's docs/report.png.
#
#   docs/screenshot_report.sh REPORT_HTML [OUTPUT_PNG] [WIDTHxHEIGHT]
#
# e.g. docs/screenshot_report.sh outputs/pipeline/VaeEvaluator/evaluation/6/report.html
# The report is self-contained, so the page needs no network; the browser
# is run with networking off to be sure.
set -eu
report=$(realpath "$1")
output=$(realpath -m "${2:-docs/report.png}")
size=${3:-1280x5600}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: Chromium refuses to run as root with its sandbox.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --proxy-server='127.0.0.1:9' \
  --window-size="$(echo "$size" | tr x ,)" \
  --screenshot="$output" "file://$report"
echo "$output"
