#!/usr/bin/env bash
# Screenshot a report.html at desktop and phone widths with headless Chromium.
#
#   scripts/screenshot_report.sh REPORT.html [OUT_DIR]
#
# Writes OUT_DIR/report-desktop.png (1200 px wide) and OUT_DIR/report-phone.png
# (390 CSS px wide at device scale 2, like a current phone); OUT_DIR defaults to docs/img.
# Heights: DESKTOP_HEIGHT (default 2200) and PHONE_HEIGHT (default 2400) CSS px.
# Needs Debian's chromium (.ci/ensure-chromium installs it).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 REPORT.html [OUT_DIR]" >&2
  exit 2
fi
html="$(realpath "$1")"
out="${2:-docs/img}"
[[ -f "$html" ]] || { echo "error: $1 is not a file" >&2; exit 2; }
chromium="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || { echo "error: $chromium not found (run .ci/ensure-chromium)" >&2; exit 2; }
mkdir -p "$out"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT

shot() {  # shot FILE WIDTH HEIGHT SCALE
  local tmp="$1.tmp.png"
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" --force-device-scale-factor="$4" --window-size="$2,$3" \
    --screenshot="$tmp" "file://$html" >/dev/null 2>&1
  mv "$tmp" "$1"
  echo "wrote $1"
}

shot "$out/report-desktop.png" 1200 "${DESKTOP_HEIGHT:-2200}" 1
shot "$out/report-phone.png" 390 "${PHONE_HEIGHT:-2400}" 2
