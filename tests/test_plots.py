"""The optional PNG plots (matplotlib): learning curves and misclassified digits."""

import sys

import numpy as np
import pytest

from fastconv import plots
from fastconv._png import read_png


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(plots.MissingMatplotlib, match=r'pip install "fastconv\[plot\]"'):
        plots.plot_history({"loss": [1.0]}, "unused.png")
    assert issubclass(plots.MissingMatplotlib, ImportError)


def test_history_and_misclassified_plots(tmp_path):
    pytest.importorskip("matplotlib")
    history = {"loss": [0.9, 0.5], "accuracy": [0.7, 0.8], "val_loss": [0.6, 0.4],
               "val_accuracy": [0.75, 0.85]}
    plots.plot_history(history, tmp_path / "h.png", title="t")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 50)
    wrong = plots.plot_misclassified(rng.random((50, 28, 28, 1)), y, (y + (np.arange(50) < 7)) % 10,
                                     tmp_path / "m.png")
    assert wrong == 7
    assert plots.plot_misclassified(np.zeros((3, 28, 28)), y[:3], y[:3], tmp_path / "n.png") == 0
    for name in ("h.png", "m.png", "n.png"):
        assert read_png(tmp_path / name).ndim == 3
