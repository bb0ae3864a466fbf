"""Tests of `fastconv.callbacks`: the progress display and each callback's rule."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from fastconv import callbacks, layers, optimizers, utils
from fastconv.models import Sequential, load_model


def model_and_data(lr=0.01, n=40):
    utils.set_random_seed(0)
    model = Sequential([layers.Dense(4, activation="relu", input_shape=(3,)),
                        layers.Dense(1)])
    model.compile(optimizers.SGD(lr), "mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return model, x, x.sum(axis=1, keepdims=True)


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda *args, **kwargs: self.calls.append(name)
        return super().__getattribute__(name)


def test_hooks_are_called_in_keras_order():
    model, x, y = model_and_data()
    recorder = Recorder()
    model.fit(x, y, batch_size=20, epochs=2, verbose=0, callbacks=[recorder],
              validation_data=(x, y))
    assert recorder.calls == ["on_train_begin"] + [
        "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
        "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
    ] * 2 + ["on_train_end"]
    assert recorder.model is model
    assert recorder.params == {"verbose": 0, "epochs": 2, "steps": 2, "mode": "fit"}


def test_verbose_1_shows_a_bar_with_loss_and_metrics(capsys):
    model, x, y = model_and_data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=1, validation_split=0.25)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("4/4 [==============================] - ")
    assert "ms/step - loss: " in lines[1] or "us/step - loss: " in lines[1]
    for key in (" - loss: ", " - mae: ", " - val_loss: ", " - val_mae: "):
        assert key in lines[1]


def test_verbose_1_redraws_in_place_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    bar = callbacks.Progbar(10, interval=0)
    for step in range(1, 11):
        bar.update(step, [("loss", 0.5)])
    out = capsys.readouterr().out
    assert out.count("\r") == 10 and "ETA: " in out and out.endswith("\n")
    assert " 5/10 [==============>...............]" in out


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model, x, y = model_and_data()
    model.fit(x, y, batch_size=8, epochs=3, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert lines[1].startswith("5/5 - ") and "/epoch - " in lines[1] and "loss: " in lines[1]
    assert "\r" not in "".join(lines) and "[" not in lines[1]


def test_evaluate_and_predict_verbosity(capsys):
    model, x, y = model_and_data()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, batch_size=10, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("4/4 [=") and "loss: " in out and "Epoch" not in out


def test_early_stopping_stops_and_restores_the_best_weights():
    model, x, y = model_and_data()
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    snapshots = []

    class FakeValidation(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(losses)
            snapshots.append(model.get_weights())

    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[FakeValidation(), stopper])
    assert history.epoch == [0, 1, 2, 3] and stopper.stopped_epoch == 3
    assert stopper.best_epoch == 1
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_modes_and_baseline():
    assert callbacks.EarlyStopping(monitor="val_accuracy").monitor.mode == "max"
    assert callbacks.EarlyStopping(monitor="loss").monitor.mode == "min"
    model, x, y = model_and_data(lr=0.0)
    stopper = callbacks.EarlyStopping(monitor="loss", patience=3, baseline=-1.0)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stopper])
    assert len(history.epoch) == 3


def test_early_stopping_warns_when_the_quantity_is_missing():
    model, x, y = model_and_data()
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_model_checkpoint_save_best_only(tmp_path):
    model, x, y = model_and_data()
    values = iter([3.0, 2.0, 2.5, 1.0])

    class FakeValidation(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(values)

    pattern = str(tmp_path / "m-{epoch:02d}-{val_loss:.1f}.fcm")
    best = callbacks.ModelCheckpoint(pattern, save_best_only=True)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[FakeValidation(), best])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m-01-3.0.fcm", "m-02-2.0.fcm", "m-04-1.0.fcm"]
    np.testing.assert_array_equal(load_model(tmp_path / "m-04-1.0.fcm").predict(x),
                                  model.predict(x))


def test_model_checkpoint_every_epoch_and_weights_only(tmp_path):
    model, x, y = model_and_data()
    ckpt = callbacks.ModelCheckpoint(tmp_path / "w.fcw", save_weights_only=True, monitor="loss")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ckpt])
    other, _, _ = model_and_data()
    other.load_weights(tmp_path / "w.fcw")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))


def test_learning_rate_scheduler():
    model, x, y = model_and_data()
    seen = []

    class Spy(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(model.optimizer.learning_rate)

    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[scheduler, Spy()])
    assert seen == pytest.approx([0.01, 0.005, 0.0025])
    assert history.history["lr"] == pytest.approx([0.01, 0.005, 0.0025])
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[one_arg])
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_learning_rate_scheduler_refuses_to_overwrite_a_schedule():
    model, x, y = model_and_data()
    model.compile(optimizers.SGD(optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)), "mse")
    with pytest.raises(ValueError, match="schedule"):
        model.fit(x, y, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: lr)])


def test_reduce_lr_on_plateau():
    model, x, y = model_and_data(lr=1e-3)
    values = iter([1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5])

    class FakeValidation(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(values)

    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=3e-4)
    history = model.fit(x, y, epochs=8, verbose=0, callbacks=[FakeValidation(), reduce])
    # lr is logged before each epoch's decision. Epochs 2 and 3 do not improve:
    # halve after epoch 3. Epoch 4 ends the cooldown and counts again (Keras's
    # order), so epoch 5 is the second miss: halve again, clamped at min_lr.
    assert history.history["lr"] == pytest.approx(
        [1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 3e-4, 3e-4])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_terminate_on_nan(capsys):
    model, x, y = model_and_data(lr=1e30)
    history = model.fit(x * 1e10, y, batch_size=4, epochs=5, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.epoch) == 1 and not math.isfinite(history.history["loss"][0])
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_csv_logger(tmp_path):
    model, x, y = model_and_data()
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)],
              validation_data=(x, y))
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0,
              callbacks=[callbacks.CSVLogger(path, append=True)], validation_data=(x, y))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert float(rows[3][1]) == pytest.approx(model.history.history["loss"][0])


def test_callbacks_must_be_callback_objects():
    model, x, y = model_and_data()
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, verbose=0, callbacks=[print])
