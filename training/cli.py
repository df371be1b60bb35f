"""The `tsur` command line: one sub-command group per stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from model.paths import default_corpus_dir
from training import model_commands
from training.augment import augment
from training.cli_common import (
    MappingOption,
    RegionOption,
    TaxonomyOption,
    console,
    fail,
    load_gazetteer_for,
    load_routing,
    load_taxonomy_or_fail,
    mapping_or_fail,
    print_issues,
    report_json,
)
from training.dataset import load_dataset, statistics, write_jsonl
from training.messages import FLAGS

app = typer.Typer(
    name="tsur",
    help="tsur: classify, route and flag Russian citizen messages for a regional ЦУР.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Import, validate and describe labelled data.", no_args_is_help=True)
taxonomy_app = typer.Typer(help="Inspect and check the topic/category taxonomy.", no_args_is_help=True)
routing_app = typer.Typer(help="Check a region's routing table and route by hand.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(routing_app, name="routing")


@data_app.command("validate")
def data_validate(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (a corpus dir with train/ and test/).")
    ],
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
    region: RegionOption = None,
    unlabelled: Annotated[bool, typer.Option(help="Accept rows without a topic.")] = False,
    max_issues: Annotated[int, typer.Option(help="Issues to print.")] = 50,
    report: Annotated[Path | None, typer.Option(help="Write the full report as JSON.")] = None,
) -> None:
    """Check data against the taxonomy and gazetteer; exit 1 if any row has an error."""
    tax = load_taxonomy_or_fail(taxonomy)
    result = load_dataset(
        paths, tax, load_gazetteer_for(region), mapping_or_fail(mapping), require_labels=not unlabelled
    )
    print_issues(result, max_issues)
    if report:
        report.write_text(json.dumps(report_json(result), ensure_ascii=False, indent=1), encoding="utf-8")
    summary = (
        f"{len(result.files)} file(s): {len(result.messages)} messages accepted, "
        f"{len(result.rejected)} rows rejected, {len(result.errors)} errors, "
        f"{len(result.warnings)} warnings, {len(result.duplicates)} duplicates removed, "
        f"{len(result.leaks)} train/test overlaps"
    )
    if not result.ok:
        raise fail(summary, code=1)
    console.print(f"[green]ok[/] {summary}", highlight=False)


@data_app.command("import")
def data_import(
    paths: Annotated[list[Path], typer.Argument(help="Exports to import (CSV, JSONL, JSON, Parquet, XLSX).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Clean JSONL to write.")],
    rejects: Annotated[
        Path | None, typer.Option(help="Where rejected rows go (default: OUTPUT with .rejected.jsonl).")
    ] = None,
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
    region: RegionOption = None,
    unlabelled: Annotated[bool, typer.Option(help="Accept rows without a topic.")] = False,
    max_issues: Annotated[int, typer.Option(help="Issues to print.")] = 50,
) -> None:
    """Validate, deduplicate and write data in tsur's format; rejected rows keep their reasons."""
    tax = load_taxonomy_or_fail(taxonomy)
    result = load_dataset(
        paths, tax, load_gazetteer_for(region), mapping_or_fail(mapping), require_labels=not unlabelled
    )
    print_issues(result, max_issues)
    written = write_jsonl(result.messages, output)
    rejects = rejects or output.with_suffix(".rejected.jsonl")
    removed = [
        {
            "file": d.duplicate.origin.rpartition(":")[0],
            "row": int(d.duplicate.origin.rpartition(":")[2]),
            "reasons": [f"{d.kind} duplicate of {d.kept.id} at {d.kept.origin}"],
            "record": d.duplicate.to_record(),
        }
        for d in result.duplicates
    ]
    write_jsonl([*result.rejected, *removed], rejects)
    console.print(
        f"wrote {written} messages to {output}; {len(result.rejected)} rejected and "
        f"{len(removed)} duplicate rows to {rejects}",
        highlight=False,
    )
    if result.errors:
        raise typer.Exit(1)


@data_app.command("augment")
def data_augment(
    paths: Annotated[list[Path], typer.Argument(help="Labelled files or a corpus directory.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL of noisy copies.")],
    copies: Annotated[int, typer.Option(min=1, max=10, help="Copies per message.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    split: Annotated[str, typer.Option(help="Only messages of this split ('' for all).")] = "train",
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
    region: RegionOption = None,
) -> None:
    """Write typo/case/punctuation/truncation copies; each keeps its source's split and labels."""
    tax = load_taxonomy_or_fail(taxonomy)
    result = load_dataset(paths, tax, load_gazetteer_for(region), mapping_or_fail(mapping))
    if not result.ok:
        print_issues(result, 20)
        raise fail("fix the data before augmenting it", code=1)
    sources = [m for m in result.messages if not split or m.split == split]
    copies_made = augment(sources, copies=copies, seed=seed)
    write_jsonl(copies_made, output)
    console.print(f"wrote {len(copies_made)} copies of {len(sources)} messages to {output}", highlight=False)


@data_app.command("stats")
def data_stats(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories (default: the bundled corpus).")
    ] = None,
    mapping: MappingOption = None,
    taxonomy: TaxonomyOption = None,
    region: RegionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Counts per topic, category, flag, source and split."""
    tax = load_taxonomy_or_fail(taxonomy)
    result = load_dataset(
        paths or [default_corpus_dir()],
        tax,
        load_gazetteer_for(region),
        mapping_or_fail(mapping),
        require_labels=False,
    )
    if result.errors:
        print_issues(result, 20)
    stats = statistics(result.messages, tax)
    if as_json:
        print(json.dumps(stats, ensure_ascii=False, indent=1))
        return
    splits = sorted(stats["splits"])
    console.print(
        f"[bold]{stats['total']}[/] messages: " + ", ".join(f"{s} {stats['splits'][s]}" for s in splits),
        highlight=False,
    )

    def table(title: str, rows: dict[str, dict[str, int]], names: dict[str, str]) -> None:
        t = Table(title=title, title_justify="left")
        t.add_column("code")
        t.add_column("name")
        for s in splits:
            t.add_column(s, justify="right")
        t.add_column("total", justify="right")
        for code, counts in rows.items():
            t.add_row(
                code, names.get(code, ""), *(str(counts.get(s, 0)) for s in splits), str(sum(counts.values()))
            )
        console.print(t)

    table("Topics", stats["topics"], {t.code: t.name for t in tax.topics})
    table("Categories", stats["categories"], {c: tax.category(c).name for c in tax.category_codes})
    table("Flags (positives)", {f: stats["flags"][f]["positive"] for f in FLAGS}, {})
    table("Sources", stats["sources"], {})
    console.print(
        f"with a municipality: {stats['with_municipality']}; words per message: "
        + ", ".join(f"{k} {v}" for k, v in stats["words"].items()),
        highlight=False,
    )


@taxonomy_app.command("show")
def taxonomy_show(
    taxonomy: TaxonomyOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List topics and categories with their codes."""
    tax = load_taxonomy_or_fail(taxonomy)
    if as_json:
        print(json.dumps(tax.to_dict(), ensure_ascii=False, indent=1))
        return
    for topic in tax.topics:
        console.print(f"[bold]{topic.code}[/] — {topic.name}", highlight=False)
        for c in topic.categories:
            console.print(f"    {c.code:34} {c.name}", highlight=False)
    console.print(f"taxonomy hash {tax.hash}", highlight=False)


@taxonomy_app.command("check")
def taxonomy_check(taxonomy: TaxonomyOption = None) -> None:
    """Validate a taxonomy file (and what it extends)."""
    tax = load_taxonomy_or_fail(taxonomy)
    console.print(
        f"[green]ok[/] {len(tax.topics)} topics, {len(tax.category_codes)} categories, hash {tax.hash}",
        highlight=False,
    )


@routing_app.command("check")
def routing_check(region: RegionOption = None, taxonomy: TaxonomyOption = None) -> None:
    """Validate a region's routing table against the taxonomy and gazetteer."""
    table = load_routing(region, taxonomy)
    console.print(
        f"[green]ok[/] {table.name}: {len(table.bodies)} bodies, {len(table.rules)} "
        f"rules, {len(table.gazetteer.municipalities)} municipalities",
        highlight=False,
    )


@routing_app.command("route")
def routing_route(
    topic: Annotated[str, typer.Option(help="Topic code or name.")],
    category: Annotated[str | None, typer.Option(help="Category code or name.")] = None,
    municipality: Annotated[str | None, typer.Option(help="Municipality code or place.")] = None,
    text: Annotated[str | None, typer.Option(help="Find the municipality in this text instead.")] = None,
    region: RegionOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Show which body a topic/category/place goes to and which rule decided."""
    table = load_routing(region, taxonomy)
    tax = table.taxonomy
    topic_code = tax.resolve_topic(topic)
    if topic_code is None:
        raise fail(f"unknown topic {topic!r}; known: {', '.join(tax.topic_codes)}")
    category_code = None
    if category:
        found = tax.resolve_category(category, topic_code)
        if len(found) != 1:
            raise fail(
                f"category {category!r} is not one of topic {topic_code!r}: "
                f"{', '.join(c.code for c in tax.topic(topic_code).categories)}"
            )
        category_code = found[0]
    place = None
    if text:
        matches = table.gazetteer.find(text)
        place = matches[0].municipality if matches else None
    elif municipality:
        place = table.gazetteer.resolve(municipality)
        if place is None:
            raise fail(f"unknown municipality {municipality!r}")
    route = table.route(topic_code, category_code, place)
    console.print_json(
        json.dumps(
            {
                "topic": topic_code,
                "category": category_code,
                "municipality": place,
                "body": {"id": route.body.id, "name": route.body.name, "type": str(route.body.type)},
                "rule": route.rule,
                "fallback": route.fallback,
            },
            ensure_ascii=False,
        )
    )


model_commands.register(app)

if __name__ == "__main__":
    app()
