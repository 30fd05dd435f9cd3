#!/usr/bin/env bash
# `netwarden diff` on two policies of 120,000 prefixes each (a partner list
# as a network file; the edit removes 50 /24s and adds 50), with the
# release build: wall time and peak memory. Figures in docs/benchmarks.md.
#
#   benches/diff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" <<'PY'
import random, sys
d = sys.argv[1]
def prefixes(n, seed):
    r = random.Random(seed)
    s = set()
    while len(s) < n:
        a = r.randrange(1, 223)
        if a in (10, 100, 127, 172, 192, 198, 203):
            continue
        s.add(f"{a}.{r.randrange(256)}.{r.randrange(256)}.0/24")
    return sorted(s)
old = prefixes(120000, 1)
gone = set(random.Random(3).sample(old, 50))
added = [p for p in prefixes(120200, 2) if p not in set(old)][:50]
new = sorted([p for p in old if p not in gone] + added)
open(f"{d}/old.txt", "w").write("\n".join(old) + "\n")
open(f"{d}/new.txt", "w").write("\n".join(new) + "\n")
pol = """version: 1
networks:
  office: [203.0.113.0/24]
  partners: {{ file: {f} }}
  lb: [10.0.0.0/28]
client_ip: {{ trusted_proxies: [lb] }}
rules:
  - {{ name: health, paths: [/healthz], methods: [GET], action: allow }}
  - {{ name: login, paths: [/login], methods: [POST], login: true, allow_from: [office] }}
  - {{ name: api, paths: ["/api/**"], allow_from: [office, partners] }}
  - {{ name: console, paths: ["/**"], allow_from: [office] }}
"""
open(f"{d}/old.yaml", "w").write(pol.format(f="old.txt"))
open(f"{d}/new.yaml", "w").write(pol.format(f="new.txt"))
PY
set +e
/usr/bin/time -f "diff: %e s wall, %M KiB peak" target/release/netwarden diff "$dir/old.yaml" "$dir/new.yaml" > "$dir/out.txt"
code=$?
set -e
echo "exit $code (4: wider)"
head -4 "$dir/out.txt"
