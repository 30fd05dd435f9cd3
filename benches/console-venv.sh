#!/usr/bin/env bash
# Prints the Python of the virtual environment that runs
# tests/support/console.py (hypercorn), making it first if needed: the one
# `cargo test` makes from tests/requirements.txt is target/tmp/pyenv-*;
# this one is target/tmp/attack-venv, for the bench scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tmp/attack-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt >&2
fi
echo "$venv/bin/python"
