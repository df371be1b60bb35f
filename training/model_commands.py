"""`tsur train`, `export`, `models`, `predict` and `retrain`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from model.manifest import ModelVersionError, read_manifest, served_metrics
from model.predictor import Predictor
from model.registry import ModelRegistry
from training.backbone import BackboneError
from training.cli_common import (
    MappingOption,
    RegionOption,
    TaxonomyOption,
    console,
    err,
    fail,
    load_gazetteer_for,
    load_routing,
    load_taxonomy_or_fail,
    mapping_or_fail,
    print_issues,
)
from training.export import SCHEMES, ExportGateError, ParityLimits, export_version
from training.gate import promote
from training.pipeline import (
    DataError,
    build_version,
    exclusive,
    load_labelled,
    prepare_data,
    summary,
)
from training.tables import read_table
from training.train import TrainSettings

DEFAULT_MODE = "fast"
models_app = typer.Typer(help="List, promote and roll back model versions.", no_args_is_help=True)

ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir", help="Where versions live (default: $TSUR_MODELS_DIR or ~/.cache/tsur/models)."
    ),
]
ToleranceOption = Annotated[float, typer.Option(help="Gate: allowed drop per head score.")]
MinAgreementOption = Annotated[float, typer.Option(help="Parity: top-1 topic agreement.")]
MaxDropOption = Annotated[float, typer.Option(help="Parity: largest topic macro-F1 drop.")]
EvalOption = Annotated[
    list[Path] | None, typer.Option("--eval", help="Fixed evaluation data (default: the bundled test split).")
]


def progress_bar():
    bar = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return bar, update


def register(app: typer.Typer) -> None:
    """Attach the model commands to the root app."""

    def report_data_error(exc: DataError) -> typer.Exit:
        print_issues(exc.report, 30)
        return fail(str(exc), code=1)

    @app.command("train")
    def train(
        inputs: Annotated[
            list[Path] | None,
            typer.Argument(help="Labelled files or directories (default: the bundled corpus train split)."),
        ] = None,
        mapping: MappingOption = None,
        corrections: Annotated[
            list[Path] | None,
            typer.Option(
                help="Moderators' corrections (tsur format); they override labels of the same text."
            ),
        ] = None,
        eval_data: EvalOption = None,
        eval_fraction: Annotated[
            float, typer.Option(help="Share of own inputs held out for evaluation when --eval is not given.")
        ] = 0.15,
        mode: Annotated[
            str, typer.Option(help="fast: frozen encoder, heads only; full: fine-tune.")
        ] = "fast",
        backbone: Annotated[
            str, typer.Option(help="'e5-small' (built offline), a local transformers directory, or a hub id.")
        ] = "e5-small",
        epochs: Annotated[
            int | None, typer.Option(help="Epochs (default: fast 300 with early stop, full 4).")
        ] = None,
        max_length: Annotated[int, typer.Option(help="Tokens per message.")] = 256,
        train_layers: Annotated[
            int | None, typer.Option(help="full mode: fine-tune only the top N layers (default: all).")
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
        augment: Annotated[int, typer.Option(help="Noisy copies per training message.")] = 1,
        trim: Annotated[bool, typer.Option(help="Trim the default backbone's vocabulary.")] = True,
        flag_precision: Annotated[
            float | None, typer.Option(help="Choose flag thresholds for this precision (default: best F1).")
        ] = None,
        with_base: Annotated[bool, typer.Option(help="Add the bundled corpus to your own inputs.")] = False,
        output: Annotated[
            Path | None, typer.Option(help="Write the version here instead of the registry (no promotion).")
        ] = None,
        export: Annotated[bool, typer.Option(help="Export to ONNX INT8 with the parity gate.")] = True,
        promote_version: Annotated[
            bool, typer.Option("--promote/--no-promote", help="Promote through the gate after export.")
        ] = True,
        tolerance: ToleranceOption = 0.01,
        min_agreement: MinAgreementOption = 0.99,
        max_drop: MaxDropOption = 0.01,
        models_dir_: ModelsDirOption = None,
        taxonomy: TaxonomyOption = None,
        region: RegionOption = None,
        threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch.")] = None,
    ) -> None:
        """Train a model version: manifest, checkpoint, ONNX INT8 graph, metrics."""
        tax = load_taxonomy_or_fail(taxonomy)
        gazetteer = load_gazetteer_for(region)
        try:
            data = prepare_data(
                inputs,
                eval_data,
                tax,
                gazetteer,
                mapping_or_fail(mapping),
                corrections or (),
                eval_fraction,
                seed,
                include_base=with_base,
            )
        except DataError as exc:
            raise report_data_error(exc) from None
        settings = TrainSettings(
            mode=mode,
            backbone=backbone,
            epochs=epochs,
            max_length=max_length,
            seed=seed,
            augment_copies=augment,
            trim_vocabulary=trim,
            flag_target_precision=flag_precision,
            train_layers=train_layers,
            threads=threads,
        )
        registry = ModelRegistry(models_dir_)
        bar, update = progress_bar()
        started = time.time()
        try:
            with bar:
                result = build_version(
                    data,
                    tax,
                    settings,
                    registry,
                    output=output,
                    export=export,
                    gate=promote_version,
                    tolerance=tolerance,
                    progress=update,
                    parity=ParityLimits(min_agreement, max_drop),
                )
        except (BackboneError, ExportGateError, ValueError, ModelVersionError) as exc:
            raise fail(str(exc), code=1) from None
        console.print_json(
            json.dumps({**summary(result), "seconds": round(time.time() - started)}, ensure_ascii=False)
        )

    @app.command("export")
    def export_cmd(
        version: Annotated[str, typer.Argument(help="Version name in the registry, or a directory.")],
        eval_data: EvalOption = None,
        scheme: Annotated[
            list[str] | None,
            typer.Option(help=f"Quantisation scheme(s) to try, in order (default: {', '.join(SCHEMES)})."),
        ] = None,
        keep_fp32: Annotated[bool, typer.Option(help="Keep the fp32 ONNX graph too.")] = False,
        min_agreement: MinAgreementOption = 0.99,
        max_drop: MaxDropOption = 0.01,
        models_dir_: ModelsDirOption = None,
        taxonomy: TaxonomyOption = None,
        region: RegionOption = None,
    ) -> None:
        """Export a trained version to one ONNX INT8 graph; fails if parity is not met."""
        path = _version_path(version, models_dir_)
        tax = load_taxonomy_or_fail(taxonomy)
        try:
            messages = load_labelled(
                eval_data or [_default_eval()], tax, load_gazetteer_for(region), None
            ).messages
            info = export_version(
                path,
                messages,
                ParityLimits(min_agreement, max_drop),
                schemes=scheme or tuple(SCHEMES),
                keep_fp32=keep_fp32,
            )
        except DataError as exc:
            raise report_data_error(exc) from None
        except (ExportGateError, ModelVersionError, FileNotFoundError) as exc:
            raise fail(str(exc), code=1) from None
        console.print_json(json.dumps(info, ensure_ascii=False))

    @app.command("predict")
    def predict(
        input_path: Annotated[
            Path, typer.Argument(metavar="INPUT", help="JSONL or CSV with a 'text' field (and 'id').")
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="JSONL of predictions ('-' for stdout).")
        ],
        model: Annotated[
            str | None, typer.Option(help="Version name or directory (default: the current version).")
        ] = None,
        text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
        id_column: Annotated[str, typer.Option(help="Column holding the id.")] = "id",
        models_dir_: ModelsDirOption = None,
        taxonomy: TaxonomyOption = None,
        threads: Annotated[int | None, typer.Option(help="onnxruntime threads.")] = None,
    ) -> None:
        """Classify messages in a file with the served model (the API's code path)."""
        tax = load_taxonomy_or_fail(taxonomy)
        path = _version_path(model, models_dir_)
        try:
            predictor = Predictor(path, taxonomy=tax, threads=threads)
        except ModelVersionError as exc:
            raise fail(str(exc), code=1) from None
        table = read_table(input_path)
        problems = [str(i) for i in table.issues if i.severity == "error"]
        ids, texts = [], []
        if table.rows and text_column not in table.columns:
            problems.append(f"{input_path}: no {text_column!r} column; columns: {table.columns}")
        else:
            for row, record in table.rows:
                text = record.get(text_column)
                if not isinstance(text, str) or not text.strip():
                    problems.append(f"{input_path}, row {row}, column {text_column!r}: empty or not text")
                    continue
                ids.append(str(record.get(id_column) or row))
                texts.append(text)
        results = predictor.predict(texts)
        out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
        try:
            for message_id, result in zip(ids, results, strict=True):
                out.write(
                    json.dumps(
                        {"id": message_id, **result, "model_version": predictor.version}, ensure_ascii=False
                    )
                    + "\n"
                )
        finally:
            if out is not sys.stdout:
                out.close()
        for problem in problems:
            err.print(f"[red]{problem}[/]", highlight=False)
        err.print(f"{len(results)} predictions written, {len(problems)} row(s) skipped", highlight=False)
        if problems:
            raise typer.Exit(1)

    @app.command("retrain")
    def retrain(
        data: Annotated[
            list[Path] | None, typer.Option(help="New labelled data (any import format).")
        ] = None,
        corrections: Annotated[
            list[Path] | None, typer.Option(help="Exported moderators' corrections.")
        ] = None,
        mapping: MappingOption = None,
        eval_data: EvalOption = None,
        mode: Annotated[str, typer.Option(help="fast or full.")] = "fast",
        backbone: Annotated[str, typer.Option(help="Backbone (see tsur train).")] = "e5-small",
        tolerance: ToleranceOption = 0.01,
        min_agreement: MinAgreementOption = 0.99,
        max_drop: MaxDropOption = 0.01,
        models_dir_: ModelsDirOption = None,
        taxonomy: TaxonomyOption = None,
        region: RegionOption = None,
    ) -> None:
        """Merge the corpus, new data and corrections; train, export, gate, promote. Safe for cron."""
        tax = load_taxonomy_or_fail(taxonomy)
        registry = ModelRegistry(models_dir_)
        try:
            with exclusive(registry.root / ".retrain.lock"):
                prepared = prepare_data(
                    data,
                    eval_data or [_default_eval()],
                    tax,
                    load_gazetteer_for(region),
                    mapping_or_fail(mapping),
                    corrections or (),
                    include_base=True,
                )
                result = build_version(
                    prepared,
                    tax,
                    TrainSettings(mode=mode, backbone=backbone),
                    registry,
                    tolerance=tolerance,
                    parity=ParityLimits(min_agreement, max_drop),
                )
        except DataError as exc:
            raise report_data_error(exc) from None
        except (RuntimeError, ValueError, ModelVersionError) as exc:
            raise fail(str(exc), code=1) from None
        console.print_json(json.dumps(summary(result), ensure_ascii=False))
        if result.gate is not None and not result.gate.passed:
            raise typer.Exit(3)  # trained and kept, but not promoted: cron should notice

    @models_app.command("list")
    def models_list(
        models_dir_: ModelsDirOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Versions with their evaluation scores; * marks the one served."""
        registry = ModelRegistry(models_dir_)
        current = registry.current()
        versions = registry.versions()
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "version": m["version"],
                            "current": m["version"] == current,
                            "created": m.get("created"),
                            "metrics": served_metrics(m),
                            "exported": bool(m.get("export")),
                        }
                        for m in versions
                    ],
                    ensure_ascii=False,
                    indent=1,
                )
            )
            return
        table = Table(title=f"model versions in {registry.root}", title_justify="left")
        for column in (
            "",
            "version",
            "created",
            "topic F1",
            "category F1",
            "incident F1",
            "conflict F1",
            "misinfo F1",
            "onnx",
        ):
            table.add_column(column)
        for m in versions:
            e = served_metrics(m)

            def f(head: str, key: str, e=e) -> str:
                return f"{e[head][key]:.3f}" if head in e else "—"

            table.add_row(
                "*" if m["version"] == current else "",
                m["version"],
                m.get("created", ""),
                f("topic", "macro_f1"),
                f("category", "macro_f1"),
                f("incident", "f1"),
                f("conflict", "f1"),
                f("misinformation", "f1"),
                "yes" if m.get("export") else "no",
            )
        console.print(table)
        if not versions:
            console.print("no versions yet: `tsur train` builds one")

    @models_app.command("promote")
    def models_promote(
        version: Annotated[str, typer.Argument(help="Version to serve.")],
        eval_data: EvalOption = None,
        tolerance: ToleranceOption = 0.01,
        force: Annotated[bool, typer.Option(help="Promote even if the gate fails.")] = False,
        models_dir_: ModelsDirOption = None,
        taxonomy: TaxonomyOption = None,
        region: RegionOption = None,
    ) -> None:
        """Serve VERSION if it is not worse than the current one on the fixed evaluation set."""
        tax = load_taxonomy_or_fail(taxonomy)
        registry = ModelRegistry(models_dir_)
        try:
            messages = load_labelled(
                eval_data or [_default_eval()], tax, load_gazetteer_for(region), None
            ).messages
            result = promote(registry, version, messages, tax, tolerance, force=force)
        except DataError as exc:
            raise report_data_error(exc) from None
        except ModelVersionError as exc:
            raise fail(str(exc), code=1) from None
        console.print_json(
            json.dumps(
                {
                    "version": version,
                    "promoted": result.passed,
                    "reason": result.reason,
                    "current_before": result.current_version,
                    "comparisons": result.comparisons,
                },
                ensure_ascii=False,
            )
        )
        if not result.passed:
            raise typer.Exit(1)

    @models_app.command("rollback")
    def models_rollback(models_dir_: ModelsDirOption = None) -> None:
        """Serve the version that was current before the last promotion."""
        registry = ModelRegistry(models_dir_)
        current, previous = registry.current(), registry.previous()
        if previous is None:
            raise fail(f"nothing to roll back to (current: {current or 'none'})", code=1)
        try:
            read_manifest(registry.path(previous))
            registry.set_current(previous, reason=f"rollback from {current}", kind="rollback")
        except ModelVersionError as exc:
            raise fail(str(exc), code=1) from None
        console.print(f"serving {previous} (was {current})", highlight=False)

    app.add_typer(models_app, name="models")

    @app.command("up")
    def up(
        region: RegionOption = None,
        mode: Annotated[str, typer.Option(help="Training mode if a model must be built.")] = DEFAULT_MODE,
        rebuild: Annotated[
            bool, typer.Option(help="Build a new default model even if one is served.")
        ] = False,
        models_dir_: ModelsDirOption = None,
    ) -> None:
        """The main job on the embedded defaults: check the data, build and serve the default model."""
        tax = load_taxonomy_or_fail(None)
        console.print(
            f"taxonomy: {len(tax.topics)} topics, {len(tax.category_codes)} categories ({tax.hash[:19]})",
            highlight=False,
        )
        table = load_routing(region, None)
        console.print(
            f"routing: {table.name}, {len(table.bodies)} bodies, {len(table.rules)} rules, "
            f"{len(table.gazetteer.municipalities)} municipalities",
            highlight=False,
        )
        try:
            data = prepare_data(None, None, tax, table.gazetteer, None)
        except DataError as exc:
            raise report_data_error(exc) from None
        console.print(
            f"corpus: {len(data.train)} training and {len(data.eval)} test messages, no errors",
            highlight=False,
        )
        registry = ModelRegistry(models_dir_)
        if registry.current() is None or rebuild:
            console.print(
                f"building the default model ({mode} mode, backbone e5-small rebuilt "
                f"offline) into {registry.root}",
                highlight=False,
            )
            bar, update = progress_bar()
            try:
                with bar:
                    result = build_version(data, tax, TrainSettings(mode=mode), registry, progress=update)
            except (BackboneError, ExportGateError, ValueError, ModelVersionError) as exc:
                raise fail(str(exc), code=1) from None
            if result.gate is not None and not result.gate.passed:
                raise fail(f"the new version was not promoted: {result.gate.reason}", code=1)
        manifest = read_manifest(registry.current_path())
        scores = served_metrics(manifest)
        console.print(
            f"serving model {manifest['version']} — on the test split "
            f"({scores['n']} messages): topic macro-F1 {scores['topic']['macro_f1']:.3f}, "
            f"category macro-F1 {scores['category']['macro_f1']:.3f}, F1 incident "
            f"{scores['incident']['f1']:.3f}, conflict {scores['conflict']['f1']:.3f}, "
            f"misinformation {scores['misinformation']['f1']:.3f}",
            highlight=False,
        )
        console.print("classify a file: tsur predict messages.jsonl -o predictions.jsonl", highlight=False)
        console.print("HTTP API and moderator UI: not built yet (API and queue issues)", highlight=False)

    def _version_path(version: str | None, root: Path | None) -> Path:
        registry = ModelRegistry(root)
        if version is None:
            current = registry.current_path()
            if current is None:
                raise fail(
                    f"no model version is served yet in {registry.root}: run `tsur train` (or `make run`)",
                    code=1,
                )
            return current
        candidate = Path(version)
        if candidate.is_dir():
            return candidate
        path = registry.path(version)
        if not path.is_dir():
            raise fail(f"no model version {version!r} in {registry.root}", code=1)
        return path


def _default_eval() -> Path:
    from training.pipeline import default_eval_paths

    return default_eval_paths()[0]
