"""Where the bundled data lives.

The project is installed editable from its checkout, so the data directory is
found next to the packages; TSUR_DATA_DIR points elsewhere (a region's own data).
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("TSUR_DATA_DIR", REPO_ROOT / "datasets"))


def default_taxonomy_path() -> Path:
    return data_dir() / "taxonomy.yaml"


def default_corpus_dir() -> Path:
    return data_dir() / "corpus"


def default_region() -> str:
    return os.environ.get("TSUR_REGION", "olkhovskaya")


def routing_path(region: str) -> Path:
    return data_dir() / "routing" / f"{region}.yaml"


def gazetteer_path(region: str) -> Path:
    return data_dir() / "gazetteer" / f"{region}.yaml"


def tsur_home() -> Path:
    """Built backbones and model versions: large files that are made here, never committed."""
    return Path(os.environ.get("TSUR_HOME", Path.home() / ".cache" / "tsur"))


def models_dir() -> Path:
    return Path(os.environ.get("TSUR_MODELS_DIR", tsur_home() / "models"))
