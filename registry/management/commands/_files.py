"""Reading and writing the JSON files of the import and export commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from registry import transfer
from registry.validation import InvalidDocument


def read_json(path: str) -> Any:
    """Return the parsed JSON of ``path``; ``-`` reads standard input."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error.strerror}.") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CommandError(f"{path} is not valid JSON: {error}.") from error


def write_json(command: BaseCommand, document: dict[str, Any], output: str | None) -> None:
    """Write ``document`` as indented JSON to ``output``, or to standard output when it is None."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        command.stdout.write(text, ending="")
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"Cannot write {output}: {error.strerror}.") from error


def run_import(command: BaseCommand, path: str, sections: tuple[str, ...]) -> None:
    """Import ``path``, printing the summary, or every error with its path and exiting non-zero."""
    document = read_json(path)
    try:
        summary = transfer.import_registry(document, sections=sections)
    except InvalidDocument as error:
        for problem in error.errors:
            location = problem.path or "(file)"
            command.stderr.write(f"{location}: {problem.message} [{problem.code}]")
        raise CommandError(f"{path}: {len(error.errors)} error(s); nothing was saved.") from error
    command.stdout.write(f"Imported {path}: {summary.describe()}.")
