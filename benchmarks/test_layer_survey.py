"""The layer survey against PyTorch runs (two small layers, one round).

The real measurement is ``python benchmarks/layer_survey.py --threads 2``; its
results are in benchmarks/RESULTS.md.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "layer_survey", Path(__file__).with_name("layer_survey.py"))
layer_survey = importlib.util.module_from_spec(spec)
sys.modules["layer_survey"] = layer_survey  # dataclasses look their module up
spec.loader.exec_module(layer_survey)


def test_survey_checks_both_layouts_and_reports():
    pytest.importorskip("torch")
    layers = [layer_survey.Layer("small", (2, 9, 9, 16), 24, 3, padding=1),
              layer_survey.Layer("strided dilated", (2, 12, 11, 8), 16, 3, stride=2, padding=2,
                                 dilation=2)]
    results = layer_survey.run(layers, threads=1, rounds=1)
    for _, passes in results:
        assert list(passes) == ["forward", "backward"]
        for ms in passes.values():
            assert set(ms) == {"fastconv", "torch-nchw", "torch-nhwc"}
            assert all(v > 0 for v in ms.values())
    table = layer_survey.report(results)
    assert "| small | 2x9x9x16 -> 24, 3x3 | forward |" in table
    assert "2x12x11x8 -> 16, 3x3 s2 d2 | backward |" in table


def test_survey_layers_have_distinct_names():
    names = [layer.name for layer in layer_survey.LAYERS]
    assert len(names) == len(set(names))
