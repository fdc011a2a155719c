"""JSON Schemas of the files privft writes, and validation against them.

``results.schema.json`` (JSON Schema draft 2020-12) describes results.json. Its
``schema_version`` constant is the version privft writes; ``RESULTS_SCHEMA_VERSION`` reads it
from the schema, so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent
RESULTS_SCHEMA_PATH = SCHEMA_DIR / "results.schema.json"


class SchemaError(ValueError):
    """A document does not follow its schema; the message lists where and why."""


@functools.cache
def results_schema() -> dict[str, Any]:
    """Return the results.json schema as a dict."""
    return json.loads(RESULTS_SCHEMA_PATH.read_text(encoding="utf-8"))


RESULTS_SCHEMA_VERSION: int = results_schema()["properties"]["schema_version"]["const"]


def validate_results(results: dict[str, Any], *, max_errors: int = 20) -> None:
    """Raise SchemaError listing (up to ``max_errors``) places where ``results`` breaks the schema.

    Needs the jsonschema package (`pip install "privft[test]"` or `pip install jsonschema`).
    """
    if importlib.util.find_spec("jsonschema") is None:
        raise SchemaError(
            "validating results.json needs the jsonschema package; install it with "
            "`pip install jsonschema`"
        )
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(results_schema())
    errors = sorted(validator.iter_errors(results), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
        for error in errors[:max_errors]
    ]
    more = f"\n  ... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
    raise SchemaError(
        f"{len(errors)} problem(s) against {RESULTS_SCHEMA_PATH.name} version "
        f"{RESULTS_SCHEMA_VERSION}:\n  " + "\n  ".join(lines) + more
    )


def validate_results_file(path: Path) -> None:
    """Read a results.json and validate it; SchemaError names the file."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SchemaError(f"{path}: not a readable JSON file ({err})") from err
    try:
        validate_results(results)
    except SchemaError as err:
        raise SchemaError(f"{path}: {err}") from None
