#!/usr/bin/env bash
# Thirty minutes of everyday traffic against a release build, with policy
# reloads every 30 s and WebSockets open (benches/soak.py says what runs).
# The console is tests/support/console.py under hypercorn, from the
# tests' own virtual environment (made by `cargo test`, or here).
#
#   benches/soak.sh                # MINUTES=30
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tmp/attack-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
cargo build --release --quiet --bin netwarden
exec python3 benches/soak.py --bin target/release/netwarden --python "$venv/bin/python" \
  --minutes "${MINUTES:-30}"
