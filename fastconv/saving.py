"""One-file model archives: architecture, weights and optimizer state.

Format (version 1): a ZIP archive, like NumPy's ``.npz``, holding

- ``fastconv_model.json``: the format name and version, the model's
  configuration (its layers' configs), the compile configuration, an index
  of the arrays below (weight path, shape, dtype), the optimizer's iteration
  count and the states of the model's random generators;
- ``weights/<i>.npy``: the weights, in `Model.get_weights` order;
- ``optimizer/<i>.npy``: the optimizer's per-weight slots.

Loading never executes code: the JSON names layer, loss and optimizer
classes only from fastconv's own registries, and arrays are read with
``allow_pickle=False`` after their headers are checked against the index.
Anything else (not a ZIP, truncated, a bad checksum, an unknown version,
member names that are absolute or climb with "..", unexpected members,
shapes that disagree with the index or the data, sizes no real model has)
raises `ValueError`.

Saving writes a temporary file in the destination's folder, flushes it to
disk and renames it over the destination, so a crash leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile

import numpy as np

from fastconv import _random, losses, optimizers
from fastconv.layers.base import uninitialized_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]

FORMAT_NAME = "fastconv-model"
FORMAT_VERSION = 1
_META = "fastconv_model.json"
_ARRAY_MEMBER = re.compile(r"(weights|optimizer)/(0|[1-9][0-9]{0,8})\.npy")
_ALLOWED_DTYPES = {"float32", "float64"}
# Far beyond any model this library trains, small enough to refuse a header
# that claims terabytes before anything is allocated.
_MAX_ARRAY_BYTES = 1 << 34
_MAX_META_BYTES = 1 << 26
# A deflated member may expand this much at most (a ZIP bomb expands more;
# fastconv itself writes uncompressed members).
_MAX_RATIO = 100


# ---- writing --------------------------------------------------------------


def _version() -> str:
    from fastconv import __version__  # the package imports this module's users first

    return __version__


def _rng_states(model) -> dict:
    states = {"model": model.rng.bit_generator.state, "layers": {}}
    for layer in model.layers:
        if getattr(layer, "seed", None) is not None and getattr(layer, "rng", None) is not None:
            states["layers"][layer.name] = layer.rng.bit_generator.state
    return states


def _metric_id(metric):
    if isinstance(metric, str):
        return metric
    return getattr(metric, "__name__", None) or getattr(metric, "name", None)


def _write_atomically(filepath, members: dict[str, object]) -> None:
    """Write ``members`` (name -> bytes or ndarray) as a ZIP via a temporary file."""
    filepath = os.fspath(filepath)
    folder = os.path.dirname(os.path.abspath(filepath))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(filepath)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, content in members.items():
                    with archive.open(name, "w", force_zip64=True) as member:
                        if isinstance(content, np.ndarray):
                            np.lib.format.write_array(member, content, allow_pickle=False)
                        else:
                            member.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable; not every platform can open a folder
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _array_entry(members, kind, array, **fields) -> dict:
    member = f"{kind}/{len([m for m in members if m.startswith(kind + '/')])}.npy"
    members[member] = np.ascontiguousarray(array)
    return {**fields, "member": member, "shape": list(array.shape), "dtype": array.dtype.name}


def _archive(model, kind: str, include_optimizer: bool) -> dict[str, object]:
    if not model.built:
        raise ValueError("build the model (or fit it once) before saving it")
    members: dict[str, object] = {}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastconv_version": _version(),
        "kind": kind,
        "model_config": {"class_name": type(model).__name__, "config": model.get_config()},
        "weights": [
            _array_entry(members, "weights", w.value, path=w.path)
            for layer in model.layers
            for w in layer._weights
        ],
    }
    if kind == "model":
        meta["rng"] = _rng_states(model)
        if model.compiled:
            meta["training_config"] = {
                "loss": losses.serialize(model.loss),
                "metrics": [_metric_id(m) for m in model._metric_ids],
                "optimizer": optimizers.serialize(model.optimizer),
            }
            if include_optimizer:
                slots = [
                    _array_entry(members, "optimizer", array, path=path, slot=slot)
                    for path, named in model.optimizer.get_slots().items()
                    for slot, array in named.items()
                ]
                meta["optimizer_state"] = {
                    "iterations": model.optimizer.iterations,
                    "slots": slots,
                }
    blob = json.dumps(meta, allow_nan=False).encode("utf-8")
    return {_META: blob, **members}


def save_model(model, filepath, include_optimizer: bool = True) -> None:
    """Save ``model`` to ``filepath``: architecture, weights and, if compiled,
    the compile arguments and optimizer state, so training can resume exactly."""
    _write_atomically(filepath, _archive(model, "model", include_optimizer))


def save_weights(model, filepath) -> None:
    """Save only the weights of ``model`` (with its configuration, for reference)."""
    _write_atomically(filepath, _archive(model, "weights", False))


# ---- reading --------------------------------------------------------------


class _Archive:
    """A validated, open archive; use as a context manager."""

    def __init__(self, filepath):
        self.path = os.fspath(filepath)
        try:
            self.zip = zipfile.ZipFile(self.path, "r")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise ValueError(f"{self.path!r} is not a fastconv model file: {exc}") from None
        except OSError:
            raise
        try:
            self._check_members()
            self.meta = self._read_meta()
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def _fail(self, message: str):
        raise ValueError(f"{self.path!r}: {message}")

    def _check_members(self) -> None:
        names = set()
        for info in self.zip.infolist():
            name = info.filename
            if name in names:
                self._fail(f"the archive holds {name!r} twice")
            names.add(name)
            if name != _META and not _ARRAY_MEMBER.fullmatch(name):
                self._fail(f"unexpected member {name!r} (absolute paths, '..' and names "
                           f"outside the format are refused)")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._fail(f"member {name!r} uses an unsupported compression")
            limit = _MAX_META_BYTES if name == _META else _MAX_ARRAY_BYTES
            if info.file_size > limit:
                self._fail(f"member {name!r} declares {info.file_size} bytes, over the limit")
            if (
                info.compress_type == zipfile.ZIP_DEFLATED
                and info.file_size > _MAX_RATIO * info.compress_size + (1 << 20)
            ):
                self._fail(f"member {name!r} expands implausibly ({info.compress_size} bytes "
                           f"to {info.file_size})")
        if _META not in names:
            self._fail(f"no {_META} member: not a fastconv model file")
        self.members = names

    def _read(self, name: str) -> bytes:
        try:
            with self.zip.open(name) as member:
                return member.read()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            self._fail(f"member {name!r} is corrupt or truncated: {exc}")

    def _read_meta(self) -> dict:
        try:
            meta = json.loads(self._read(_META).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            self._fail(f"the model description is not valid JSON: {exc}")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            self._fail("not a fastconv model file (format name missing)")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            self._fail(f"format version {version!r} is not supported (this fastconv reads "
                       f"version {FORMAT_VERSION}); save it again with a matching fastconv")
        if meta.get("kind") not in ("model", "weights"):
            self._fail(f"unknown kind {meta.get('kind')!r}")
        return meta

    def array(self, entry) -> np.ndarray:
        """The array an index entry describes, after checking it against its header."""
        if not isinstance(entry, dict):
            self._fail(f"an array index entry must be an object, got {entry!r}")
        name, shape, dtype = entry.get("member"), entry.get("shape"), entry.get("dtype")
        if name not in self.members or name == _META:
            self._fail(f"the index names a missing member {name!r}")
        if dtype not in _ALLOWED_DTYPES:
            self._fail(f"array {name!r} has dtype {dtype!r}; only {sorted(_ALLOWED_DTYPES)}")
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s for s in shape)
        ):
            self._fail(f"array {name!r} has an invalid shape {shape!r}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > _MAX_ARRAY_BYTES:
            self._fail(f"array {name!r} declares an absurd shape {shape}")
        info = self.zip.getinfo(name)
        try:
            with self.zip.open(name) as member:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    self._fail(f"array {name!r} has an unknown .npy version {version}")
                reader = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                    (3, 0): np.lib.format.read_array_header_2_0,
                }[version]
                header_shape, fortran, header_dtype = reader(member)
                if (
                    list(header_shape) != shape
                    or fortran
                    or header_dtype != np.dtype(dtype)
                    or header_dtype.hasobject
                ):
                    self._fail(
                        f"array {name!r} holds {header_dtype} {header_shape} "
                        f"(fortran order {fortran}), but the index says {dtype} {tuple(shape)}"
                    )
                if info.file_size - member.tell() != nbytes:
                    self._fail(f"array {name!r} has {info.file_size - member.tell()} data "
                               f"bytes for a {dtype} array of shape {tuple(shape)}")
                data = member.read(nbytes)
                # Reading to the end makes zipfile verify the member's checksum.
                trailing = member.read()
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            self._fail(f"array {name!r} is corrupt or truncated: {exc}")
        except ValueError as exc:
            if str(exc).startswith(repr(self.path)):
                raise
            self._fail(f"array {name!r} has an invalid .npy header: {exc}")
        if len(data) != nbytes or trailing:
            self._fail(f"array {name!r} is truncated")
        return np.frombuffer(data, dtype=header_dtype).reshape(shape).copy()


def _set_rng_state(generator: np.random.Generator, state, path: str, what: str) -> None:
    if not isinstance(state, dict) or state.get("bit_generator") != type(
        generator.bit_generator
    ).__name__:
        raise ValueError(f"{path!r}: the random state of {what} is invalid")
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"{path!r}: the random state of {what} is invalid: {exc}") from None


def _build_model(archive: _Archive):
    from fastconv.models.sequential import Sequential  # models import this module

    config = archive.meta.get("model_config")
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        archive._fail("the file does not describe a Sequential model")
    try:
        # The model's own generator is replaced by the saved one below, so
        # seeding it must not advance the global stream either.
        with uninitialized_weights(), _random.preserved():
            model = Sequential.from_config(config.get("config"))
            model.build()
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, MemoryError) as exc:
        archive._fail(f"the model configuration is invalid: {exc!r}")
    return model


def _read_weights(archive: _Archive, model, by_path: bool) -> None:
    entries = archive.meta.get("weights")
    targets = [w for layer in model.layers for w in layer._weights]
    if not isinstance(entries, list) or len(entries) != len(targets):
        archive._fail(
            f"the file holds {len(entries) if isinstance(entries, list) else 'no'} weight "
            f"arrays but the model has {len(targets)}"
        )
    values = []
    for entry, weight in zip(entries, targets):
        if by_path and entry.get("path") != weight.path:
            archive._fail(f"weight {entry.get('path')!r} is stored where {weight.path!r} belongs")
        if isinstance(entry, dict) and entry.get("shape") != list(weight.shape):
            archive._fail(f"weight {weight.path!r} has shape {tuple(weight.shape)} in the model "
                          f"but {entry.get('shape')} in the file")
        values.append(archive.array(entry))
    for value, weight in zip(values, targets):
        weight.value[...] = value


def _compile(archive: _Archive, model) -> None:
    training = archive.meta.get("training_config")
    if training is None:
        return
    try:
        optimizer = optimizers.deserialize(training["optimizer"])
        loss = losses.get(training["loss"])
        metric_ids = training.get("metrics", [])
        if not isinstance(metric_ids, list) or not all(isinstance(m, str) for m in metric_ids):
            raise ValueError(f"metrics must be a list of names, got {metric_ids!r}")
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_ids)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        archive._fail(f"the training configuration is invalid: {exc}")
    state = archive.meta.get("optimizer_state")
    if state is None:
        return
    iterations = state.get("iterations") if isinstance(state, dict) else None
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        archive._fail(f"the optimizer's iteration count {iterations!r} is invalid")
    weights = {w.path: w for layer in model.layers for w in layer._weights}
    slots: dict[str, dict[str, np.ndarray]] = {}
    for entry in state.get("slots", []) if isinstance(state.get("slots"), list) else [None]:
        if not isinstance(entry, dict) or entry.get("path") not in weights:
            archive._fail(f"an optimizer slot belongs to no weight: {entry!r}")
        weight = weights[entry["path"]]
        dtype = weight.value.dtype.name
        if entry.get("shape") != list(weight.shape) or entry.get("dtype") != dtype:
            archive._fail(f"an optimizer slot of {weight.path!r} does not match the weight")
        slot = entry.get("slot")
        if not isinstance(slot, str):
            archive._fail(f"an optimizer slot of {weight.path!r} has no name")
        slots.setdefault(weight.path, {})[slot] = archive.array(entry)
    try:
        optimizer.set_slots(slots)
    except ValueError as exc:
        archive._fail(f"the optimizer state is invalid: {exc}")
    optimizer.iterations = iterations


def _restore_rng(archive: _Archive, model) -> None:
    states = archive.meta.get("rng")
    if states is None:
        return
    if not isinstance(states, dict) or not isinstance(states.get("layers", {}), dict):
        archive._fail("the random states are invalid")
    _set_rng_state(model.rng, states.get("model"), archive.path, "the model")
    for name, state in states.get("layers", {}).items():
        layer = next((lay for lay in model.layers if lay.name == name), None)
        if layer is None or getattr(layer, "rng", None) is None:
            archive._fail(f"a random state belongs to no seeded layer: {name!r}")
        _set_rng_state(layer.rng, state, archive.path, f"layer {name!r}")


def load_model(filepath, custom_objects=None, compile: bool = True):
    """Load a model written by `save_model` (or `Model.save`).

    Parameters
    ----------
    filepath : str or path
    custom_objects : None
        Accepted for Keras compatibility; a fastconv file names only
        fastconv's own classes, so there is nothing to pass.
    compile : bool, default True
        Restore the loss, metrics, optimizer and its state, so that `fit`
        continues exactly where the saved model stopped.

    Raises
    ------
    ValueError
        If the file is not a valid fastconv model file of a supported version.
    """
    if custom_objects:
        raise ValueError("custom_objects are not supported: fastconv files hold no code")
    with _Archive(filepath) as archive:
        if archive.meta["kind"] != "model":
            archive._fail("this file holds only weights; use model.load_weights()")
        model = _build_model(archive)
        _read_weights(archive, model, by_path=True)
        if compile:
            _compile(archive, model)
        _restore_rng(archive, model)
    return model


def load_weights(model, filepath) -> None:
    """Copy the weights stored in ``filepath`` into ``model``, layer by layer in
    order (names may differ; shapes must match)."""
    if not model.built:
        raise ValueError("build the model before loading weights into it")
    with _Archive(filepath) as archive:
        _read_weights(archive, model, by_path=False)
