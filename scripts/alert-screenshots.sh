#!/usr/bin/env bash
# What a person sees of an alert: the HTML part of a Japanese alert mail
# and its Microsoft Teams card, as netwarden writes them (the code's own
# doc example, src/alerts/formats.rs), photographed by headless Chromium
# into docs/images/alert-mail-ja.png and alert-teams-ja.png
# (docs/alerts.md). The card is drawn by a small HTML rendering of its
# TextBlocks, FactSets and buttons in Teams' layout (no Teams client runs
# here).
#
#   scripts/alert-screenshots.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/images}
command -v chromium >/dev/null 2>&1 || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NETWARDEN_WRITE_DOC_EXAMPLES="$work" cargo test --quiet --lib docs_show >/dev/null
python3 - "$work" <<'PY'
import html, json, re, sys
d = sys.argv[1]
card = json.load(open(f"{d}/teams-ja.json"))["attachments"][0]["content"]
unescape = lambda t: re.sub(r"\\(.)", r"\1", t)
colours = {"Attention": "#c4314b", "Warning": "#835c00", "Accent": "#4f52b2", "Good": "#237b4b"}
parts = []
for b in card["body"]:
    if b["type"] == "TextBlock":
        style = []
        if b.get("weight") == "Bolder": style.append("font-weight:600")
        if b.get("size") == "Medium": style.append("font-size:17px")
        if b.get("size") == "Small": style.append("font-size:12px")
        if b.get("isSubtle"): style.append("color:#616161")
        if b.get("color") in colours: style.append(f"color:{colours[b['color']]}")
        parts.append(f"<div class=tb style=\"{';'.join(style)}\">{html.escape(unescape(b['text']))}</div>")
    elif b["type"] == "FactSet":
        rows = "".join(f"<tr><th>{html.escape(unescape(f['title']))}</th><td>{html.escape(unescape(f['value']))}</td></tr>" for f in b["facts"])
        parts.append(f"<table>{rows}</table>")
for a in card.get("actions", []):
    parts.append(f"<div class=act><span>{html.escape(a['title'])}</span></div>")
css = """body{margin:0;background:#f5f5f5;font:14px/1.45 'Segoe UI','Noto Sans CJK JP',sans-serif}
.msg{max-width:620px;margin:16px;display:flex;gap:10px}.av{width:32px;height:32px;border-radius:50%;background:#5b5fc7;color:#fff;display:flex;align-items:center;justify-content:center;font-weight:600}
.who{font-size:12px;color:#616161;margin-bottom:4px}.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.1)}
.tb{margin:4px 0;white-space:pre-wrap}table{border-collapse:collapse;margin:8px 0}th{text-align:left;font-weight:600;padding:3px 14px 3px 0;vertical-align:top;white-space:nowrap}td{padding:3px 0;word-break:break-all}
.act{margin-top:12px}.act span{display:inline-block;border:1px solid #d1d1d1;border-radius:4px;padding:5px 14px;font-weight:600}"""
page = f"<!doctype html><html lang=ja><meta charset=utf-8><style>{css}</style><div class=msg><div class=av>W</div><div><div class=who>Workflows — netwarden</div><div class=card>{''.join(parts)}</div></div></div>"
open(f"{d}/teams-ja.html", "w").write(page)
PY
mkdir -p "$out"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=700,620 \
  --screenshot="$out/alert-mail-ja.png" "file://$work/mail-ja.html" >/dev/null 2>&1
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=660,560 \
  --screenshot="$out/alert-teams-ja.png" "file://$work/teams-ja.html" >/dev/null 2>&1
echo "wrote $out/alert-mail-ja.png $out/alert-teams-ja.png"
