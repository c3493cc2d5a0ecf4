"""Runs killed with SIGKILL at chosen points (``SPECDENOISE_TEST_KILL_AT``, see
:func:`specdenoise.io.kill_point`): no model is lost, ``evaluate``'s model list never counts the
hidden leftovers, the next run cleans them up, a killed training's MLflow run is marked KILLED
and a killed atomic write's temporary file is removed by the next write of the same output."""

from __future__ import annotations

import os
import shutil
import signal

import yaml
from tests.faults.harness import cli, cli_subprocess, fingerprint
from tests.faults.projects import PARAMS, train_args

from specdenoise.config import deep_merge
from specdenoise.models import store

KILLED = -signal.SIGKILL


def _kill_training_at(proj, point, *extra):
    res = cli_subprocess(
        *train_args(proj, "-m", "pca", "-d", 2, *extra), cwd=proj, env={"SPECDENOISE_TEST_KILL_AT": point}
    )
    assert res.code == KILLED, res.stderr[-2000:]


def _model_files(root):
    return {k.replace(str(root), ""): v for k, v in fingerprint(root).items()}


def test_kill_between_moving_the_old_model_out_and_the_new_in(proj):
    models = proj / "models"
    old = _model_files(models / "pca_2")
    _kill_training_at(proj, "replace-moved-old", "--no-tracking")
    assert not (models / "pca_2").exists()
    assert _model_files(models / ".pca_2.old") == old  # the earlier model is complete, aside
    assert store.list_models(models) == []  # evaluate never counts a hidden folder as a model
    # the next training restores it first, then replaces it; nothing hidden is left
    res = cli(*train_args(proj, "-m", "pca", "-d", 2, "--no-tracking"), cwd=proj)
    assert res.code == 0, res.stderr[-2000:]
    assert "restored the earlier model" in res.stderr
    assert [m.name for m in store.list_models(models)] == ["pca_2"]
    assert sorted(p.name for p in models.iterdir()) == ["pca_2"]
    store.TrainedModel.at(models / "pca_2").load()


def test_kill_after_the_new_model_is_in(proj):
    models = proj / "models"
    _kill_training_at(proj, "replace-moved-new", "--no-tracking")
    assert (models / ".pca_2.old").exists()  # the earlier one, not yet removed
    assert [m.name for m in store.list_models(models)] == ["pca_2"]  # one model, complete
    store.TrainedModel.at(models / "pca_2").load()
    new = _model_files(models / "pca_2")
    store.recover(models / "pca_2")  # what the next training does first
    assert sorted(p.name for p in models.iterdir()) == ["pca_2"]
    assert _model_files(models / "pca_2") == new


def test_killed_training_run_is_marked_killed_by_the_next(proj, mlflow_store):
    from mlflow import MlflowClient

    shutil.copy(mlflow_store, proj / "mlflow.db")  # a made store: no schema migration in the timed child
    (proj / "params.yaml").write_text(yaml.safe_dump(deep_merge(PARAMS, {"tracking": {"log_models": False}})))
    _kill_training_at(proj, "training-run-started")
    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    exp = client.get_experiment_by_name("specdenoise")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "RUNNING" and run.data.tags["pid"].isdigit() and run.data.tags["host"]
    res = cli(*train_args(proj, "-m", "pca", "-d", 2), cwd=proj)
    assert res.code == 0, res.stderr[-2000:]
    assert f"MLflow run {run.info.run_id}" in res.stderr and "marked KILLED" in res.stderr
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
    assert statuses == ["FINISHED", "KILLED"]
    assert sorted(p.name for p in (proj / "models").iterdir()) == ["pca_2"]  # the work folder is gone


def test_killed_atomic_write_leaves_a_named_temp_file_that_the_next_write_removes(proj):
    out = proj / "data" / "raw" / "universe.parquet"
    args = ["data", "universe", "--params", proj / "params.yaml", "--n", 40, "--out", out]
    res = cli_subprocess(*args, cwd=proj, env={"SPECDENOISE_TEST_KILL_AT": "atomic-write"})
    assert res.code == KILLED, res.stderr[-2000:]
    assert not out.exists()  # never a partial output
    (left,) = list(out.parent.iterdir())
    assert left.name.startswith(".universe.parquet.") and ".tmp" in left.name
    pid = int(left.name.split(".")[3].removeprefix("p"))
    # a live writer's temp file is never touched
    live = out.parent / f".universe.parquet.p{os.getpid()}.abcdef.tmp.parquet"
    live.write_bytes(b"")
    res = cli(*args, cwd=proj)
    assert res.code == 0, res.stderr[-2000:]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, live.name])
    assert pid != os.getpid()
