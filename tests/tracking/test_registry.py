"""MLflow round-trip: train -> log -> register -> alias champion -> load by alias in a fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from specdenoise.config import parse_params


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_register_alias_and_load_in_subprocess(store, tiny_processed, tiny_noisy):
    from specdenoise import tracking
    from specdenoise.training.train import train_one

    params = parse_params(
        {
            "train": {"val_size": 40, "max_epochs": 2, "vae": {"units": [64, 32], "dropout": 0.1}},
            "search": {"trials": 0},
            "tracking": {"experiment": "test-registry", "registered_model": "test-vae"},
        }
    )
    recs = [train_one("vae", d, params, tiny_processed, tiny_noisy, store / f"vae_{d}") for d in (2, 3)]
    train_one("pca", 2, params, tiny_processed, tiny_noisy, store / "pca_2")
    tracking.setup(params.tracking)
    champ = tracking.set_champion(params.tracking)
    best = min(recs, key=lambda r: r["metrics"]["test_loss"])
    assert champ["run_id"] == best["run_id"]
    assert champ["version"] in (1, 2)
    uri = tracking.tracking_uri(params.tracking)
    assert uri.startswith("sqlite:////") or uri.startswith("sqlite:///" + str(store))
    x = tiny_noisy["noisy"][0][:3].astype(np.float32)
    np.save(store / "x.npy", x)
    code = textwrap.dedent(
        f"""
        import json, mlflow, numpy as np
        mlflow.set_tracking_uri({uri!r})
        x = np.load("x.npy")
        k = mlflow.keras.load_model("models:/test-vae@champion")
        p = mlflow.pyfunc.load_model("models:/test-vae@champion")
        a = k.predict(x, verbose=0); b = np.asarray(p.predict(x))
        assert a.shape == (3, 825) and np.allclose(a, b, atol=1e-5)
        runs = mlflow.search_runs(experiment_names=["test-registry"], filter_string="tags.family = 'pca'")
        lin = mlflow.pyfunc.load_model(f"runs:/{{runs.run_id.iloc[0]}}/model")
        assert np.asarray(lin.predict(x)).shape == (3, 825)
        print()
        print("OK " + json.dumps(a[0, :3].tolist()))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=store, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK" in res.stdout
    # the champion's predictions are those of the saved model
    from specdenoise.models import load_model

    local = load_model(store / f"vae_{best['latent_dim']}" / "model").denoise(x)
    import json

    line = [ln for ln in res.stdout.splitlines() if ln.startswith("OK ")][-1]
    assert np.allclose(local[0, :3], json.loads(line[3:]), atol=1e-4)
    # every final run of one benchmark carries the same grouping tag
    import mlflow

    runs = mlflow.search_runs(experiment_names=["test-registry"], filter_string="tags.role = 'final'")
    assert set(runs["tags.benchmark"]) == {tracking.benchmark_tag(params)}
    # a stage promotes among the runs it trained: a better version of another run does not stay champion
    worst = max(recs, key=lambda r: r["metrics"]["test_loss"])
    assert worst["run_id"] != best["run_id"]
    only = tracking.set_champion(params.tracking, run_ids={worst["run_id"]})
    assert only["run_id"] == worst["run_id"]
    from mlflow import MlflowClient

    assert MlflowClient().get_model_version_by_alias("test-vae", "champion").run_id == worst["run_id"]
    assert tracking.set_champion(params.tracking, run_ids={"not-a-run"}) is None  # alias left as it is
    assert MlflowClient().get_model_version_by_alias("test-vae", "champion").run_id == worst["run_id"]
