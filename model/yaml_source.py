"""Reading the YAML data files with errors that name the file and the place in it."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class DataFileError(ValueError):
    """A taxonomy, routing table or gazetteer file that cannot be used as it is."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s)\n{listing}")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(path, ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise DataFileError(path, [f"not UTF-8 at byte {exc.start}"]) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DataFileError(path, [f"{where}invalid YAML: {problem}"]) from None
    if not isinstance(loaded, dict):
        raise DataFileError(path, ["top level must be a mapping"])
    return loaded


def pydantic_problems(exc: ValidationError, document: dict[str, Any]) -> list[str]:
    """Turn pydantic's locations into paths a person can find in the YAML file."""
    problems = []
    for error in exc.errors():
        where = _describe_location(error["loc"], document)
        problems.append(f"{where}: {error['msg']}")
    return problems


def _describe_location(loc: tuple, document: Any) -> str:
    parts: list[str] = []
    node = document
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
            if isinstance(node, dict) and "code" in node:
                label = f"[{key}] (code {node['code']!r})"
            parts.append(label)
        else:
            parts.append(f".{key}" if parts else str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return "".join(parts) or "<document>"
