"""MLflow runs: search trials nested under their final run, in the same experiment; unique run
names, family-only params, the git commit and the training datasets."""

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


def test_runs_carry_the_family_params_datasets_git_commit_and_unique_names(
    tmp_path, monkeypatch, tiny_processed, tiny_noisy
):
    import subprocess

    from mlflow import MlflowClient

    from specdenoise import tracking
    from specdenoise.data.noise import add_noise
    from specdenoise.training.train import train_one

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"], check=True
    )
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    params = parse_params({"train": {"val_size": 40}, "tracking": {"experiment": "test-ident", "log_models": False}})
    low = params.noise.model_copy(update={"sigma": 0.01})
    noisy_low = add_noise(tiny_processed["flux"], tiny_processed["wave"], low, params.preprocess.norm)
    a = train_one("pca", 2, params, tiny_processed, tiny_noisy, tmp_path / "pca_2")
    b = train_one("pca", 2, params, tiny_processed, noisy_low, tmp_path / "pca_2_n0.01_s0", level=0.01)
    client = MlflowClient()
    ra, rb = client.get_run(a["run_id"]), client.get_run(b["run_id"])
    assert ra.info.run_name == "pca-2d" and rb.info.run_name == "pca-2d-n0.01-s0"
    assert rb.data.params["noise.sigma"] == "0.01" and rb.data.tags["noise_level"] == "0.01"
    assert ra.data.tags["mlflow.source.git.commit"] == head
    assert not {"train.kl_weight", "train.batch_size", "train.max_epochs"} & set(ra.data.params)
    assert ra.data.params["train.seed"] == str(params.train.seed)
    contexts = {i.tags[0].value for i in ra.inputs.dataset_inputs}
    assert contexts == {"training", "validation"}
    import json

    saved = json.loads((tmp_path / "pca_2/metrics.json").read_text())
    assert saved["experiment_id"] == ra.info.experiment_id == tracking.setup(params.tracking)
    assert (saved["noise_level"], saved["seed_index"]) == (0.04, 0)


def test_metrics_added_to_a_finished_run_arrive_in_one_batch_without_nans(tmp_path, monkeypatch):
    """More metrics than one MLflow batch holds (1,000) all arrive; a NaN is left out; texts are logged."""
    from mlflow import MlflowClient

    from specdenoise import tracking
    from specdenoise.tracking.runs import add_to_runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = parse_params({"tracking": {"experiment": "test-add"}})
    exp_id = tracking.setup(params.tracking)
    client = MlflowClient()
    run_id = client.create_run(exp_id).info.run_id
    client.set_terminated(run_id)
    values = {f"line_{i}": float(i) for i in range(1200)} | {"undefined": float("nan")}
    add_to_runs(params, {run_id: values}, {run_id: {"notes.txt": "measured"}})
    got = client.get_run(run_id).data.metrics
    assert len(got) == 1200 and got["line_1199"] == 1199.0 and "undefined" not in got
    assert [a.path for a in client.list_artifacts(run_id)] == ["notes.txt"]
