"""What the `tsur` sub-command modules share: consoles, common options, loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from model.gazetteer import load_gazetteer
from model.paths import default_region, gazetteer_path, routing_path
from model.routing import load_routing_table
from model.taxonomy import load_taxonomy
from model.yaml_source import DataFileError
from training.dataset import DatasetReport
from training.messages import ColumnMapping

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one problem per line, whatever the width

TaxonomyOption = Annotated[
    Path | None, typer.Option("--taxonomy", help="Taxonomy YAML (default: datasets/taxonomy.yaml).")
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", help="Region whose gazetteer and routing table to use (default: olkhovskaya)."),
]
MappingOption = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        "-m",
        help="Column mapping: a preset (tsur, pos), a YAML file, or 'text=Текст,topic=Тема'.",
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def load_taxonomy_or_fail(path: Path | None):
    try:
        return load_taxonomy(path)
    except DataFileError as exc:
        raise fail(str(exc)) from None


def load_gazetteer_for(region: str | None):
    try:
        return load_gazetteer(gazetteer_path(region or default_region()))
    except DataFileError as exc:
        raise fail(str(exc)) from None


def mapping_or_fail(spec: str | None) -> ColumnMapping:
    try:
        return ColumnMapping.load(spec)
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None


def print_issues(report: DatasetReport, limit: int) -> None:
    shown = sorted(report.issues, key=lambda i: i.severity != "error")[:limit]
    for issue in shown:
        style = "red" if issue.severity == "error" else "yellow"
        err.print(f"[{style}]{issue}[/]", highlight=False, soft_wrap=True)
    hidden = len(report.issues) - len(shown)
    if hidden > 0:
        err.print(f"… and {hidden} more; --max-issues or --report to see all")


def report_json(report: DatasetReport) -> dict:
    return {
        "files": report.files,
        "accepted": len(report.messages),
        "rejected": report.rejected,
        "issues": [vars(i) for i in report.issues],
        "duplicates": [
            {
                "kind": d.kind,
                "similarity": d.similarity,
                "kept": d.kept.id,
                "kept_at": d.kept.origin,
                "removed": d.duplicate.id,
                "removed_at": d.duplicate.origin,
                "labels_conflict": d.labels_conflict,
            }
            for d in report.duplicates
        ],
        "leaks": [
            {
                "train": d.kept.id,
                "train_at": d.kept.origin,
                "test": d.duplicate.id,
                "test_at": d.duplicate.origin,
                "similarity": d.similarity,
            }
            for d in report.leaks
        ],
    }


def load_routing(region: str | None, taxonomy: Path | None):
    tax = load_taxonomy_or_fail(taxonomy)
    try:
        return load_routing_table(routing_path(region or default_region()), taxonomy=tax)
    except DataFileError as exc:
        raise fail(str(exc)) from None
