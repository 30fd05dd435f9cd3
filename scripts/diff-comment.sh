#!/usr/bin/env bash
# The pull request comment `netwarden diff --format markdown` writes, as a
# reviewer sees it: the example policy with a realistic pull request's
# edits (a new branch office, a narrowed VPN, a wider trusted proxy, a
# reordered rule, a renamed network), rendered to HTML (python-markdown,
# in a virtual environment of its own) and photographed by headless
# Chromium into docs/images/diff-comment.png (docs/review.md).
#
#   scripts/diff-comment.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/images/diff-comment.png}
command -v chromium >/dev/null 2>&1 || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
bin=${NETWARDEN_BIN:-target/debug/netwarden}
[ -x "$bin" ] || cargo build --locked --quiet --bin netwarden
venv=target/diff-comment-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import markdown" 2>/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check markdown==3.7
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r policies/networks "$work/"
cp policies/example.yaml "$work/main.yaml"
# The pull request.
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
s = open(f"{d}/main.yaml").read()
s = s.replace('office: [203.0.113.0/24, "2001:db8:10::/48"]',
              'office: [203.0.113.0/24, "2001:db8:10::/48"]\n  # The new Osaka branch.\n  osaka: [198.18.0.0/24]')
s = s.replace("include: [office, vpn]", "include: [office, osaka, vpn]")
s = s.replace("cidrs: [198.51.100.0/24]", "cidrs: [198.51.100.0/25]")
s = s.replace("load_balancers: [10.0.0.0/28]", "load_balancers: [10.0.0.0/24]")
s = s.replace("guest_wifi", "guest_network")
open(f"{d}/pr.yaml", "w").write(s)
PY
set +e
"$bin" diff "$work/main.yaml" "$work/pr.yaml" --format markdown > "$work/comment.md"
code=$?
set -e
[ "$code" = 4 ] || { echo "expected exit 4 (wider), got $code" >&2; exit 1; }
sed -i "s#$work/##g" "$work/comment.md"
"$venv/bin/python" - "$work" <<'PY'
import sys, markdown
d = sys.argv[1]
body = markdown.markdown(open(f"{d}/comment.md").read(), extensions=["tables"])
css = """body{font:14px/1.5 -apple-system,'Segoe UI','Noto Sans',Helvetica,Arial,sans-serif;margin:0;background:#f6f8fa}
.c{max-width:900px;margin:16px auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
.h{background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:8px 16px;color:#57606a;border-radius:6px 6px 0 0}
.b{padding:8px 16px}table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:6px 10px;vertical-align:top}
th{background:#f6f8fa}code{background:#eff1f3;border-radius:4px;padding:1px 4px;font-size:12px}h3{margin:8px 0}h4{margin:16px 0 4px}"""
html = f"<!doctype html><meta charset=utf-8><style>{css}</style><div class=c><div class=h><b>netwarden-bot</b> commented</div><div class=b>{body}</div></div>"
open(f"{d}/comment.html", "w").write(html)
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=960,1100 \
  --screenshot="$out" "file://$work/comment.html" >/dev/null 2>&1
echo "wrote $out"
