"""Fixtures of the fault tests: a tiny real project folder (see :mod:`tests.faults.projects`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from tests.faults.projects import PARAMS

from specdenoise.config import parse_params


@pytest.fixture(scope="session")
def fault_template(tmp_path_factory, tiny_processed, tiny_noisy) -> Path:
    from specdenoise.data.artefacts import NoisySet, Spectra
    from specdenoise.training.train import train_one

    root = tmp_path_factory.mktemp("fault-project")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    keys = [f.name for f in Spectra.__dataclass_fields__.values() if f.name in tiny_processed]
    Spectra.from_arrays({k: tiny_processed[k] for k in keys}).save(root / "data" / "spectra.npz")
    NoisySet.from_arrays(tiny_noisy).save(root / "data" / "noisy.npz")
    train_one("pca", 2, parse_params(PARAMS), tiny_processed, tiny_noisy, root / "models" / "pca_2", tracking=False)
    return root


@pytest.fixture
def proj(fault_template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template project; MLflow points at its own ``mlflow.db``."""
    dst = tmp_path / "proj"
    shutil.copytree(fault_template, dst)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return dst


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Path:
    """A real, empty MLflow sqlite store (schema and the project's experiment), made once."""
    from specdenoise import tracking

    db = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    tracking.setup(parse_params(PARAMS).tracking.model_copy(update={"uri": f"sqlite:///{db}"}))
    return db
