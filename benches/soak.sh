#!/usr/bin/env bash
# Thirty minutes of everyday traffic against a release build, with policy
# reloads every 30 s and WebSockets open (benches/soak.py says what runs).
# The console is tests/support/console.py under hypercorn, from the
# tests' own virtual environment (made by `cargo test`, or here).
#
#   benches/soak.sh                # MINUTES=30
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(benches/console-venv.sh)
cargo build --release --quiet --bin netwarden
exec python3 benches/soak.py --bin target/release/netwarden --python "$python" \
  --minutes "${MINUTES:-30}"
