"""Search trials are nested under their final run, in the same experiment."""

from __future__ import annotations

from specdenoise.config import parse_params


def test_search_trials_are_nested_in_the_final_runs_experiment(tmp_path, monkeypatch, tiny_processed, tiny_noisy):
    from mlflow import MlflowClient

    from specdenoise import tracking
    from specdenoise.training.train import train_one

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = parse_params(
        {
            "train": {"val_size": 40, "max_epochs": 1, "ae": {"units": [64, 32], "dropout": 0.1}},
            "search": {"trials": 2, "epochs": 1, "max_units": 200, "min_units": 100},
            "tracking": {"experiment": "test-trials"},
        }
    )
    rec = train_one("ae", 2, params, tiny_processed, tiny_noisy, tmp_path / "ae_2")
    exp_id = tracking.setup(params.tracking)
    runs = MlflowClient().search_runs([exp_id])
    trials = [r for r in runs if r.data.tags.get("role") == "search_trial"]
    assert len(trials) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {rec["run_id"]}
    default = MlflowClient().get_experiment_by_name("Default")
    assert default is None or not MlflowClient().search_runs([default.experiment_id])
