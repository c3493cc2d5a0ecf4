"""A broken MLflow store (``mlflow.db``): one ``error:`` line naming the file, exit 3, the file left
as it was; a read-only command (loading ``models:/...``) never creates or migrates a store."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.projects import random_bytes, real_spectrum, train_args

from specdenoise.errors import EXIT_DATA

URI = "models:/specdenoise-vae@champion"


def _break(proj, how, mlflow_store):
    db = proj / "mlflow.db"
    if how == "random":
        db.write_bytes(random_bytes(64 * 1024))
    elif how == "truncated":
        blob = mlflow_store.read_bytes()
        db.write_bytes(blob[: len(blob) // 3])
    elif how == "header-only":
        db.write_bytes(mlflow_store.read_bytes()[:100])
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "other-sqlite":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE notes (x TEXT)")
        con.commit()
        con.close()
    elif how == "folder":
        db.mkdir()
    elif how == "text":
        db.write_text("this is not a database\n")
    return db


CASES = ["random", "truncated", "header-only", "empty", "other-sqlite", "folder", "text"]


@pytest.mark.parametrize("how", CASES)
def test_loading_a_registered_model_from_a_broken_store(proj, how, mlflow_store):
    db = _break(proj, how, mlflow_store)
    before = fingerprint(proj)
    out = proj / "out"
    res = cli("denoise", real_spectrum(), "--model", URI, "--out", out, "--workers", 0, cwd=proj)
    assert_fails(res, EXIT_DATA, str(db))
    assert fingerprint(proj) == before  # an empty store stays 0 bytes: no schema written
    assert not out.exists()


@pytest.mark.parametrize("how", ["random", "truncated", "other-sqlite", "text"])
def test_training_into_a_broken_store(proj, how, mlflow_store):
    db = _break(proj, how, mlflow_store)
    before = fingerprint(proj)
    res = cli(*train_args(proj, "-m", "pca", "-d", 3), cwd=proj)
    assert_fails(res, EXIT_DATA, str(db))
    assert fingerprint(proj) == before  # no models/pca_3, the store untouched


def test_a_valid_store_is_accepted(proj, mlflow_store):
    """A control: the same command on a real (empty) store fails only because no model is registered."""
    shutil.copy(mlflow_store, proj / "mlflow.db")
    res = cli("denoise", real_spectrum(), "--model", URI, "--out", proj / "out", "--workers", 0, cwd=proj)
    assert res.code == EXIT_DATA and "Registered Model with name=specdenoise-vae not found" in res.error_lines[0]
