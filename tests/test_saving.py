"""Tests of `fastconv.saving`: faithful round trips, bit-identical resumed
training, atomic writes, and refusal of corrupt or hostile files."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from fastconv import layers, optimizers, saving, utils
from fastconv.models import Sequential, load_model

META = "fastconv_model.json"


def make_model(seed=0):
    utils.set_random_seed(seed)
    model = Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Dropout(0.3),
        layers.Flatten(),
        layers.Dense(6, activation="relu", kernel_regularizer="l2"),
        layers.Dropout(0.2, seed=5),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizers.Adam(0.01, amsgrad=True), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data(n=60):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 8, 8, 1)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture
def saved(tmp_path):
    model = make_model()
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.fcm"
    model.save(path)
    return model, path


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, content: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, blob in content.items():
            archive.writestr(name, blob)


def edit_meta(path, change) -> None:
    content = members(path)
    meta = json.loads(content[META])
    change(meta)
    content[META] = json.dumps(meta).encode()
    write_zip(path, content)


def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


# ---- round trips -----------------------------------------------------------


def test_save_load_predict_identical(saved):
    model, path = saved
    x, _ = data()
    clone = load_model(path)
    np.testing.assert_array_equal(model.predict(x), clone.predict(x))
    assert clone.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert type(clone.optimizer) is optimizers.Adam and clone.optimizer.amsgrad
    assert clone.optimizer.iterations == model.optimizer.iterations == 4
    for path_, slots in model.optimizer.get_slots().items():
        for name, array in slots.items():
            np.testing.assert_array_equal(array, clone.optimizer.get_slots()[path_][name])
    assert clone.metrics_names == ["loss", "accuracy"]


def test_training_resumed_after_load_is_bit_identical(tmp_path):
    x, y = data()
    straight = make_model()
    straight.fit(x, y, batch_size=16, epochs=3, verbose=0)

    first = make_model()
    first.fit(x, y, batch_size=16, epochs=1, verbose=0)
    first.save(tmp_path / "ckpt.fcm")
    del first
    resumed = load_model(tmp_path / "ckpt.fcm")
    resumed.fit(x, y, batch_size=16, epochs=3, initial_epoch=1, verbose=0)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert straight.optimizer.iterations == resumed.optimizer.iterations


def test_load_without_compile_and_without_optimizer(saved, tmp_path):
    model, path = saved
    assert not load_model(path, compile=False).compiled
    model.save(tmp_path / "light.fcm", include_optimizer=False)
    clone = load_model(tmp_path / "light.fcm")
    assert clone.compiled and clone.optimizer.iterations == 0


def test_weights_only_round_trip_into_a_fresh_model(saved, tmp_path):
    model, _ = saved
    model.save_weights(tmp_path / "w.fcw")
    fresh = make_model(seed=9)  # different names and values
    fresh.load_weights(tmp_path / "w.fcw")
    x, _ = data()
    np.testing.assert_array_equal(model.predict(x), fresh.predict(x))
    with pytest.raises(ValueError, match="only weights"):
        load_model(tmp_path / "w.fcw")


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    model, path = saved
    original = path.read_bytes()
    model.save(path)  # overwriting works and leaves no temporary behind
    assert sorted(os.listdir(tmp_path)) == ["model.fcm"]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.fcm"]
    assert len(path.read_bytes()) == len(original)
    monkeypatch.undo()
    load_model(path)


_SAVE_FOREVER = """
import sys
import fastconv as keras
from fastconv import layers
model = keras.Sequential([keras.Input((64,)), layers.Dense(2048), layers.Dense(2048), layers.Dense(10)])
model.compile("adam", "mse")
checkpoint = keras.callbacks.ModelCheckpoint(sys.argv[1])
checkpoint.set_model(model)
print("saving", flush=True)
while True:  # until killed: each save replaces the file
    model.save(sys.argv[1])
    checkpoint.on_epoch_end(0, {"loss": 1.0})
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="needs SIGKILL")
def test_killed_saves_leave_a_whole_file(tmp_path):
    """A process killed at arbitrary points of save and ModelCheckpoint (about
    17 MB files) always leaves a whole model file that loads (a SIGKILL can
    leave the temporary beside it, never a half-written model)."""
    import subprocess
    import time

    from child_process import popen_python

    path = tmp_path / "model.fcm"
    for delay in (0.3, 0.7, 1.1):
        proc = popen_python(["-c", _SAVE_FOREVER, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == "saving"
        time.sleep(delay)
        proc.kill()
        proc.wait()
        proc.stdout.close()
        if path.exists():  # killed before the first rename leaves nothing, never a part
            assert load_model(path).count_params() == 64 * 2048 + 2048 + 2048 * 2048 + 2048 + 20490


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="build"):
        Sequential([layers.Dense(2)]).save(tmp_path / "m.fcm")


# ---- refusing bad files ----------------------------------------------------


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing.fcm")


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.fcm"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="not a fastconv model file"):
        load_model(path)


def test_truncated_files_are_refused(saved):
    _, path = saved
    blob = path.read_bytes()
    for cut in (10, len(blob) // 3, len(blob) // 2, len(blob) - 30, len(blob) - 1):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError):
            load_model(path)


def test_flipped_byte_in_the_weights_is_caught_by_the_checksum(saved):
    _, path = saved
    blob = bytearray(path.read_bytes())
    start = blob.index(b"weights/0.npy") + len(b"weights/0.npy") + 200
    blob[start] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="corrupt|truncated"):
        load_model(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(format_version=2), "version 2 is not supported"),
        (lambda m: m.update(format="keras"), "not a fastconv model file"),
        (lambda m: m["model_config"]["config"]["layers"][1].update(class_name="Lambda"),
         "unknown layer class"),
        (lambda m: m["model_config"]["config"]["layers"][1]["config"].update(filters=-4),
         "configuration is invalid"),
        (lambda m: m["model_config"]["config"]["layers"][1]["config"].update(evil=1),
         "configuration is invalid"),
        (lambda m: m["weights"][0].update(shape=[2**40, 2**20]), "shape"),
        (lambda m: m["model_config"]["config"]["layers"][-1]["config"].update(units=10**13),
         "configuration is invalid|shape"),
        (lambda m: m["model_config"]["config"]["layers"][0]["config"].update(
            batch_input_shape=[None, 10**6, 10**6, 1]), "configuration is invalid|shape"),
        (lambda m: m["weights"][0].update(dtype="object"), "dtype"),
        (lambda m: m["weights"][0].update(member="../../etc/passwd"), "missing member"),
        (lambda m: m["weights"].pop(), "weight arrays"),
        (lambda m: m["training_config"]["optimizer"].update(class_name="Eval"),
         "unknown optimizer"),
        (lambda m: m["optimizer_state"].update(iterations=-1), "iteration count"),
        (lambda m: m["optimizer_state"]["slots"][0].update(path="x/y"), "belongs to no weight"),
        (lambda m: m["rng"].update(model={"bit_generator": "MT19937"}), "random state"),
        (lambda m: m["rng"]["model"]["state"].update(state="zz"), "random state"),
    ],
)
def test_hostile_or_inconsistent_descriptions(saved, change, message):
    _, path = saved
    edit_meta(path, change)
    with pytest.raises(ValueError, match=message):
        load_model(path)


@pytest.mark.parametrize("name", ["../evil.npy", "/abs/weights.npy", "weights/../../x.npy",
                                  "weights\\0.npy", "extra.txt"])
def test_unexpected_member_names(saved, name):
    _, path = saved
    content = members(path)
    content[name] = b"x"
    write_zip(path, content)
    with pytest.raises(ValueError, match="unexpected member"):
        load_model(path)


def test_array_header_must_match_the_index(saved):
    _, path = saved
    content = members(path)
    content["weights/0.npy"] = npy(np.zeros((2, 2), np.float32))
    write_zip(path, content)
    with pytest.raises(ValueError, match="index says"):
        load_model(path)


def test_pickled_arrays_are_never_loaded(saved):
    _, path = saved
    meta = json.loads(members(path)[META])
    shape = tuple(meta["weights"][0]["shape"])
    content = members(path)
    content["weights/0.npy"] = npy(np.empty(shape, dtype=object), allow_pickle=True)
    write_zip(path, content)
    with pytest.raises(ValueError, match="weights/0.npy"):
        load_model(path)


def test_missing_description_and_bad_json(saved):
    _, path = saved
    content = members(path)
    write_zip(path, {k: v for k, v in content.items() if k != META})
    with pytest.raises(ValueError, match="no fastconv_model.json"):
        load_model(path)
    write_zip(path, {**content, META: b"[" * 100000})
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(path)
    write_zip(path, {**content, META: b"\xff\xfe"})
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(path)


def test_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.fcm"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(META, b" " * (50 << 20))
    with pytest.raises(ValueError, match="expands implausibly|over the limit"):
        load_model(path)


def test_custom_objects_are_refused(saved):
    _, path = saved
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(path, custom_objects={"f": print})
    assert saving.FORMAT_VERSION == 1


def test_new_layers_never_collide_with_loaded_names(saved):
    from fastconv import backend

    _, path = saved
    backend.clear_session()
    loaded = load_model(path)
    model = Sequential([*loaded.layers, layers.Dense(2)])
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)


def test_loading_draws_no_random_numbers(saved):
    _, path = saved

    def next_weights(load):
        utils.set_random_seed(3)
        if load:
            load_model(path)
        dense = layers.Dense(2)
        dense.build((None, 3))
        return dense.get_weights()[0]

    np.testing.assert_array_equal(next_weights(False), next_weights(True))
