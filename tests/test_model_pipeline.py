"""Train → save → export → gate → serve, end to end on a tiny backbone built here."""

import csv
import json
import os
import shutil
from collections import defaultdict

import numpy as np
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from model.manifest import ONNX_FILE, ModelVersionError, read_manifest, verify_files, write_manifest
from model.predictor import Predictor
from model.registry import ModelRegistry
from model.taxonomy import load_taxonomy
from tests.conftest import DATA
from tests.tiny_backbone import build_tiny_backbone
from training.cli import app
from training.dataset import load_dataset
from training.export import ExportGateError, ParityLimits, export_onnx, export_version
from training.gate import promote
from training.train import TrainSettings, load_checkpoint, run_logits, save_version, train_model

LOOSE = ParityLimits(min_topic_agreement=0.8, max_macro_f1_drop=0.1)
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(taxonomy, gazetteer):
    return load_dataset([DATA / "corpus" / "train"], taxonomy, gazetteer).messages


@pytest.fixture(scope="module")
def split(corpus):
    by_topic = defaultdict(list)
    for m in corpus:
        by_topic[m.topic].append(m)
    train = [m for ms in by_topic.values() for m in ms[:30]]
    evaluation = [m for ms in by_topic.values() for m in ms[30:40]]
    return train, evaluation


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, corpus):
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny") / "bert", [m.text for m in corpus])


@pytest.fixture(scope="module")
def settings(backbone):
    return TrainSettings(mode="fast", backbone=str(backbone), max_length=64, epochs=60, threads=1)


@pytest.fixture(scope="module")
def version(tmp_path_factory, split, taxonomy, settings):
    train, evaluation = split
    trained = train_model(train, evaluation, taxonomy, settings)
    path = tmp_path_factory.mktemp("models") / "v1"
    save_version(trained, path, taxonomy, [{"file": "inline", "sha256": "-"}], "v1")
    export_version(path, evaluation, LOOSE)
    return path


def test_manifest_describes_the_version(version, taxonomy, backbone):
    manifest = read_manifest(version)
    assert manifest["version"] == "v1"
    assert manifest["taxonomy_hash"] == taxonomy.hash
    assert manifest["labels"]["topics"] == taxonomy.topic_codes
    assert manifest["labels"]["category_topic"]["roads.potholes"] == "roads"
    assert manifest["backbone"]["spec"] == str(backbone)
    assert manifest["backbone"]["provenance"]["name"] == "tiny-test-bert"
    heads = manifest["heads"]
    assert set(heads["flag_thresholds"]) == {"incident", "conflict", "misinformation"}
    assert all(t > 0 for t in heads["temperatures"].values())
    evaluation = manifest["metrics"]["eval"]
    assert evaluation["n"] == 90 and 0 <= evaluation["topic"]["macro_f1"] <= 1
    assert {"category", "incident", "conflict", "misinformation"} <= set(evaluation)
    assert manifest["export"]["parity"]["texts"] == 90
    assert manifest["export"]["metrics"]["n"] == 90  # scores of the graph that serves
    assert manifest["metrics"]["eval_source"] == ""  # saved directly, not through the pipeline
    assert ONNX_FILE in manifest["files"]
    verify_files(version, manifest, required=(ONNX_FILE,))


def test_onnx_graph_matches_pytorch(version, split, tmp_path):
    manifest = read_manifest(version)
    model = load_checkpoint(version, manifest)
    fp32 = tmp_path / "fp32.onnx"
    export_onnx(model, fp32)
    predictor = Predictor(version)
    sequences = predictor.encode([m.text for m in split[1][:20]])
    expected = run_logits(model, sequences, predictor.pad_id)
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    for seq, want_topic, want_embedding in zip(
        sequences, expected["topic"], expected["embedding"], strict=True
    ):
        ids = np.array([seq], dtype=np.int64)
        topic, *_, embedding = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        np.testing.assert_allclose(topic[0], want_topic, atol=1e-4)
        np.testing.assert_allclose(embedding[0], want_embedding, atol=1e-4)


def test_predictions_have_the_documented_shape(version, taxonomy):
    predictor = Predictor(version, taxonomy=taxonomy, threads=1)
    texts = ["Третий день нет горячей воды!!!", "яма на дороге у школы", "а" * 5000]
    results = predictor.predict(texts)
    assert len(results) == 3
    for r in results:
        assert set(r) >= {
            "topic",
            "topic_scores",
            "category",
            "incident",
            "conflict",
            "misinformation",
            "needs_review",
            "review_reasons",
        }
        assert r["topic"]["code"] in taxonomy.topic_codes
        assert r["topic"]["name"] == taxonomy.topic(r["topic"]["code"]).name
        assert taxonomy.category(r["category"]["code"]).topic == r["topic"]["code"]
        assert set(r["topic_scores"]) == set(taxonomy.topic_codes)
        assert isinstance(r["incident"]["flag"], bool) and 0 <= r["incident"]["score"] <= 1
    embeddings = predictor.run(texts).embeddings
    assert embeddings.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3)
    # batching and ordering do not change answers
    assert predictor.predict(texts[::-1])[::-1] == results


def test_parity_gate_failure_leaves_no_servable_graph(version, split, tmp_path):
    copy = tmp_path / "v"
    shutil.copytree(version, copy)
    with pytest.raises(ExportGateError, match="parity gate"):
        export_version(copy, split[1], ParityLimits(min_topic_agreement=1.01))
    assert not (copy / ONNX_FILE).exists()
    with pytest.raises(ModelVersionError, match="not part of this version"):
        Predictor(copy)


def test_corrupted_graph_is_refused(version, tmp_path):
    copy = tmp_path / "v"
    shutil.copytree(version, copy)
    data = bytearray((copy / ONNX_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelVersionError, match="does not match its hash"):
        Predictor(copy)


def test_model_for_another_taxonomy_is_refused(version):
    extended = load_taxonomy(DATA / "regions" / "example-tourism.yaml")
    with pytest.raises(ModelVersionError, match="retrain the model"):
        Predictor(version, taxonomy=extended)


def _copy_as(version, registry, name, change=None):
    target = registry.path(name)
    shutil.copytree(version, target)
    manifest = read_manifest(target)
    manifest["version"] = name
    if change:
        change(manifest)
    write_manifest(target, manifest)
    return name


def test_promotion_gate_and_rollback(version, split, taxonomy, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    evaluation = split[1]
    first = _copy_as(version, registry, "a")
    assert promote(registry, first, evaluation, taxonomy).passed
    assert registry.current() == "a"

    second = _copy_as(version, registry, "b")
    result = promote(registry, second, evaluation, taxonomy)
    assert result.passed and registry.current() == "b"  # equal is not worse

    def blind_to_incidents(manifest):
        manifest["heads"]["flag_thresholds"]["incident"] = 1.01

    worse = _copy_as(version, registry, "c", blind_to_incidents)
    result = promote(registry, worse, evaluation, taxonomy)
    assert not result.passed and "incident f1" in result.reason
    assert registry.current() == "b"
    assert promote(registry, worse, evaluation, taxonomy, force=True).passed
    assert registry.current() == "c"

    assert registry.previous() == "b"
    registry.set_current("b", reason="rollback", kind="rollback")
    assert registry.previous() == "a"  # a second rollback goes further back, not to c


def _write_csv(path, rows):
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(rows)
    return path


def test_region_export_with_executor_trains_gates_and_predicts(split, backbone, tmp_path):
    train, _ = split
    executors = {"housing": "adm_ryabinets", "roads": "upravdor", "health": "minzdrav"}
    rows = [["text", "topic", "executor"]]
    rows += [[m.text, m.topic, executors.get(m.topic, "cur")] for m in train]
    data = _write_csv(tmp_path / "region.csv", rows)
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--backbone",
            str(backbone),
            "--max-length",
            "64",
            "--epochs",
            "40",
            "--models-dir",
            str(models),
            "--threads",
            "1",
            "--min-agreement",
            "0.8",
            "--max-drop",
            "0.1",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    registry = ModelRegistry(models)
    current = registry.current()
    manifest = read_manifest(registry.path(current))
    assert manifest["labels"]["executors"] == ["adm_ryabinets", "cur", "minzdrav", "upravdor"]
    assert "executor" in manifest["metrics"]["eval"]
    assert "held out" in manifest["metrics"]["eval_source"]

    messages = tmp_path / "in.jsonl"
    messages.write_text(
        json.dumps({"id": "m1", "text": "Не вывозят мусор"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "m2", "text": ""})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", str(messages), "-o", str(out), "--models-dir", str(models)])
    assert result.exit_code == 1  # one row had no text
    assert "row 2, column 'text'" in result.output
    [line] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert line["id"] == "m1" and line["model_version"] == current
    assert line["executor"]["code"] in manifest["labels"]["executors"]

    listing = runner.invoke(app, ["models", "list", "--json", "--models-dir", str(models)])
    assert json.loads(listing.output)[0]["current"] is True


def test_training_data_errors_are_reported_not_raised(tmp_path, backbone):
    bad = _write_csv(tmp_path / "bad.csv", [["text", "topic"], ["Нет воды", "ЖКХ"], ["Яма", "дорогии"]])
    result = runner.invoke(
        app, ["train", str(bad), "--backbone", str(backbone), "--models-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 1
    assert "row 3, column 'topic': error: unknown topic 'дорогии'" in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("text,topic\n", encoding="utf-8")
    result = runner.invoke(
        app, ["train", str(empty), "--backbone", str(backbone), "--models-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 1 and "no data rows" in result.output


def test_predict_without_a_served_model_says_what_to_do(tmp_path):
    messages = tmp_path / "in.jsonl"
    messages.write_text('{"text": "Нет воды"}\n', encoding="utf-8")
    result = runner.invoke(
        app,
        ["predict", str(messages), "-o", str(tmp_path / "o.jsonl"), "--models-dir", str(tmp_path / "none")],
    )
    assert result.exit_code == 1 and "no model version is served yet" in result.output


def test_unknown_backbone_fails_clearly(tmp_path):
    from training.backbone import BackboneError
    from training.encoders import resolve_backbone

    with pytest.raises(BackboneError, match="cannot be fetched from the model hub"):
        resolve_backbone("no-such-org/no-such-model-tsur")
    with pytest.raises(BackboneError, match="no config.json"):
        resolve_backbone(str(tmp_path))


torch.set_num_threads(1)


def test_retrain_merges_corpus_new_data_and_corrections(backbone, tmp_path, taxonomy, gazetteer):
    from training.pipeline import prepare_data

    new = _write_csv(
        tmp_path / "new.csv",
        [
            ["text", "topic", "category"],
            ["На ул. Полевой в Дубках третий день нет света", "энергетика", "отключения электроэнергии"],
        ],
    )
    corpus_text = load_dataset([DATA / "corpus" / "train"], taxonomy, gazetteer).messages[0]
    corrections = tmp_path / "corrections.jsonl"
    corrections.write_text(
        json.dumps(
            {"id": "q1", "text": corpus_text.text, "topic": "other", "category": "other.misc"},
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    data = prepare_data([new], None, taxonomy, gazetteer, None, [corrections], include_base=True)
    by_text = {m.text: m for m in data.train + data.eval}
    assert by_text[corpus_text.text].category == "other.misc"  # the moderator wins
    assert by_text["На ул. Полевой в Дубках третий день нет света"].category == "energy.power_outage"
    assert len(data.train) + len(data.eval) > 4000

    models = tmp_path / "models"
    args = [
        "retrain",
        "--data",
        str(new),
        "--corrections",
        str(corrections),
        "--backbone",
        str(backbone),
        "--models-dir",
        str(models),
        "--min-agreement",
        "0.8",
        "--max-drop",
        "0.1",
    ]
    first = runner.invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    registry = ModelRegistry(models)
    assert registry.current() is not None
    manifest = read_manifest(registry.current_path())
    assert any(f["file"].endswith("corrections.jsonl") for f in manifest["training"]["data"])
    assert manifest["metrics"]["eval"]["n"] == 1120  # the fixed bundled test split
    (models / ".retrain.lock").write_text(str(os.getpid()))  # a live process holds the lock
    blocked = runner.invoke(app, args)
    assert blocked.exit_code == 1 and "another retraining" in blocked.output


def test_robustness_report_covers_variants_and_two_topic_messages(version, capsys):
    from evaluation.robustness import VARIANTS, main

    assert main(["--model", str(version), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "v1"
    assert set(VARIANTS) <= set(report["test_split"])
    assert report["test_split"]["clean"]["n"] == 1120
    assert any(name.startswith("long posts only") for name in report["test_split"])
    two = report["two_topics"]
    assert two["n"] == 150
    # both topics in the top two means the first is one of them; the main one is one of them too
    assert two["both_topics_in_top2"] <= two["either_topic_top1"]
    assert two["main_topic_top1"] <= two["either_topic_top1"]
