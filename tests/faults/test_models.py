"""Bad saved models given to ``denoise`` (and the Python API): corrupt, truncated, incomplete or
unsafe files and a ``preprocess.json`` of another model. One ``error:`` line naming the file,
exit 3, no output folder, the model files untouched."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from tests.faults.harness import assert_fails, cli, fingerprint
from tests.faults.projects import keras_model_dir, random_bytes, real_spectrum

from specdenoise.errors import EXIT_DATA

#: marshalled ``lambda x: x`` as Keras serialises a Lambda layer's function (base64)
LAMBDA_CODE = (
    "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA+gg8c3RkaW4+2gg8bGFtYmRhPgEAAABzAAAAAA=="
)


@pytest.fixture(scope="session")
def keras_template(tmp_path_factory):
    """A small, real Keras AE model folder (with the pca model's preprocess.json)."""
    return keras_model_dir(tmp_path_factory.mktemp("keras") / "model")


def _denoise(proj, model_dir):
    out = proj / "out"
    before = fingerprint(proj)
    res = cli("denoise", real_spectrum(), "--model", model_dir, "--out", out, "--workers", 0, cwd=proj)
    assert not out.exists()  # nothing written
    assert fingerprint(proj) == before  # the model and the data untouched
    return res


def _keras(proj, keras_template):
    import shutil

    dst = proj / "models" / "ae_2" / "model"
    shutil.copytree(keras_template, dst)
    shutil.copy(proj / "models/pca_2/model/preprocess.json", dst / "preprocess.json")
    return dst


# ---------------------------------------------------------------- family.json and linear.npz
@pytest.mark.parametrize(
    "content, says",
    [
        (b"{}", "needs 'family'"),
        (b"[]", "needs 'family'"),
        (b'{"family": "pca"}', "latent_dim"),
        (b'{"family": "pca", "latent_dim": "two"}', "latent_dim"),
        (b'{"family": "nope", "latent_dim": 2}', "unknown model family 'nope'"),
        (b'{"family": "pca", "latent_dim": 2, "hyper": [1]}', "'hyper'"),
        (b"not json at all", "not valid JSON"),
        (random_bytes(300), "not valid JSON"),
    ],
    ids=["empty-object", "list", "no-dim", "str-dim", "unknown-family", "hyper-list", "text", "binary"],
)
def test_bad_family_json(proj, content, says):
    model = proj / "models/pca_2/model"
    (model / "family.json").write_bytes(content)
    assert_fails(_denoise(proj, model), EXIT_DATA, str(model / "family.json"), says)


def test_missing_family_json(proj):
    model = proj / "models/pca_2/model"
    (model / "family.json").unlink()
    assert_fails(_denoise(proj, model), EXIT_DATA, str(model), "no family.json")


def _rewrite_npz(path, **change):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    for k in [k for k, v in change.items() if v is None]:
        del arrays[k]
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "case", ["object-array", "missing-array", "wrong-shape", "nan", "truncated", "random", "deleted"]
)
def test_bad_linear_npz(proj, case):
    model = proj / "models/pca_2/model"
    npz = model / "linear.npz"
    if case == "object-array":
        _rewrite_npz(npz, left=np.array([{"a": 1}, None], dtype=object))
    elif case == "missing-array":
        _rewrite_npz(npz, right=None)
    elif case == "wrong-shape":
        _rewrite_npz(npz, mean_out=np.zeros(3))
    elif case == "nan":
        _rewrite_npz(npz, mean_in=np.full(825, np.nan))
    elif case == "truncated":
        npz.write_bytes(npz.read_bytes()[:1000])
    elif case == "random":
        npz.write_bytes(random_bytes(5000))
    else:
        npz.unlink()
    assert_fails(_denoise(proj, model), EXIT_DATA, str(npz))


# ---------------------------------------------------------------- Keras files
@pytest.mark.parametrize("case", ["truncated", "random", "empty", "missing", "not-a-zip"])
def test_bad_keras_file(proj, keras_template, case):
    model = _keras(proj, keras_template)
    f = model / "model.keras"
    blob = f.read_bytes()
    if case == "truncated":
        f.write_bytes(blob[: len(blob) // 2])
    elif case == "random":
        f.write_bytes(random_bytes(len(blob)))
    elif case == "empty":
        f.write_bytes(b"")
    elif case == "missing":
        f.unlink()
    else:
        f.write_text('{"class_name": "Functional"}')
    res = _denoise(proj, model)
    assert_fails(res, EXIT_DATA, str(f))
    assert "File not found" not in res.stderr or case == "missing"


def _edit_keras_config(path, edit):
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(files["config.json"])
    edit(cfg)
    files["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)


def _layers(cfg):
    return cfg["config"]["layers"]


def test_keras_file_with_a_lambda_layer_is_refused(proj, keras_template):
    model = _keras(proj, keras_template)

    def add_lambda(cfg):
        dense = _layers(cfg)[-1]
        dense.update(
            {
                "class_name": "Lambda",
                "module": "keras.layers",
                "registered_name": None,
                "config": {
                    "name": dense["config"]["name"],
                    "function": {
                        "class_name": "__lambda__",
                        "config": {
                            "code": LAMBDA_CODE,
                            "defaults": None,
                            "closure": None,
                        },
                    },
                    "output_shape": None,
                    "arguments": {},
                },
            }
        )

    _edit_keras_config(model / "model.keras", add_lambda)
    assert_fails(_denoise(proj, model), EXIT_DATA, str(model / "model.keras"))


def test_keras_file_naming_os_system_is_refused(proj, keras_template, tmp_path):
    model = _keras(proj, keras_template)
    marker = tmp_path / "pwned"

    def os_system(cfg):
        layer = _layers(cfg)[-1]
        layer.update({"module": "os", "class_name": "system", "registered_name": "system"})
        layer["config"] = {"command": f"touch {marker}"}

    _edit_keras_config(model / "model.keras", os_system)
    assert_fails(_denoise(proj, model), EXIT_DATA, str(model / "model.keras"))
    assert not marker.exists()


# ---------------------------------------------------------------- preprocess.json vs the model
def test_preprocess_json_of_another_grid_blames_the_model(proj):
    model = proj / "models/pca_2/model"
    pre = model / "preprocess.json"
    rec = json.loads(pre.read_text())
    rec["preprocess"]["n_pix"] = 500
    pre.write_text(json.dumps(rec))
    assert_fails(_denoise(proj, model), EXIT_DATA, str(pre), "500", "825")


def test_preprocess_json_of_another_grid_keras(proj, keras_template):
    model = _keras(proj, keras_template)
    pre = model / "preprocess.json"
    rec = json.loads(pre.read_text())
    rec["preprocess"]["n_pix"] = 600
    pre.write_text(json.dumps(rec))
    assert_fails(_denoise(proj, model), EXIT_DATA, str(pre), "600", "825")


def test_api_raises_model_error(proj):
    from specdenoise.errors import ModelError
    from specdenoise.survey.denoiser import Denoiser

    model = proj / "models/pca_2/model"
    (model / "family.json").write_text("{}")
    with pytest.raises(ModelError, match="family.json"):
        Denoiser.load(model, params=proj / "params.yaml")
