#!/usr/bin/env bash
# Every page netwarden answers itself (403, blocked sign-in, 400, 429, 502,
# 503, 504, the "why am I blocked?" page), in English and Japanese, at a
# desktop and a phone width, rendered by headless Chromium: checks that
# nothing overflows, that the text is in the language asked for and that
# the page loads nothing from elsewhere, and writes a PNG of each.
#
#   scripts/screenshots.sh            # PNGs into docs/images/
#   scripts/screenshots.sh --check    # the same checks, PNGs into a temporary directory
#   scripts/screenshots.sh --out DIR
#   POLICY=mine.yaml scripts/screenshots.sh --check   # your own pages: and templates
#
# Needs chromium and fonts-noto-cjk (Debian); installs them when missing
# and run as root. The pages come from `netwarden pages` with
# scripts/screenshots-policy.yaml (both languages, a contact line in each).
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/images
case "${1:-}" in
  --check) out=$(mktemp -d); trap 'rm -rf "$out"' EXIT ;;
  --out) out=$2 ;;
  "") ;;
  *) echo "usage: $0 [--check | --out DIR]" >&2; exit 2 ;;
esac

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bin=${NETWARDEN_BIN:-target/debug/netwarden}
[ -x "$bin" ] || cargo build --locked --quiet --bin netwarden
python3 scripts/screenshots.py "$bin" "${POLICY:-scripts/screenshots-policy.yaml}" "$out"
