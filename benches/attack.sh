#!/usr/bin/env bash
# Every starvation attack at once from 127.0.0.2 against a release build,
# while an operator at 127.0.0.1 works; the operator's run without the
# attack first (benches/attack.py says what each attack is). The console is
# tests/support/console.py under hypercorn, from the tests' own virtual
# environment (made by `cargo test` from tests/requirements.txt, or here).
#
#   benches/attack.sh              # SECONDS_PER_RUN=30
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(benches/console-venv.sh)
cargo build --release --quiet --bin netwarden
ulimit -n "$(ulimit -Hn)"
exec python3 benches/attack.py --bin target/release/netwarden --python "$python" \
  --seconds "${SECONDS_PER_RUN:-30}"
