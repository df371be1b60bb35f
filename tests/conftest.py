import os
from pathlib import Path

import pytest

from model.gazetteer import load_gazetteer
from model.paths import REPO_ROOT
from model.taxonomy import load_taxonomy

DATA = REPO_ROOT / "datasets"


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Backbones and model versions built by tests go to a temporary TSUR_HOME."""
    home = tmp_path_factory.mktemp("tsur-home")
    saved = {k: os.environ.get(k) for k in ("TSUR_HOME", "TSUR_MODELS_DIR")}
    os.environ["TSUR_HOME"] = str(home)
    os.environ.pop("TSUR_MODELS_DIR", None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def taxonomy():
    return load_taxonomy(DATA / "taxonomy.yaml")


@pytest.fixture(scope="session")
def gazetteer():
    return load_gazetteer(DATA / "gazetteer" / "olkhovskaya.yaml")


@pytest.fixture
def write(tmp_path: Path):
    """Write a text file under tmp_path and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write
