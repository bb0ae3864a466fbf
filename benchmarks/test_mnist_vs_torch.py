"""The fastconv-against-PyTorch MNIST script runs (a few steps, random data).

The real measurement is ``python benchmarks/mnist_vs_torch.py --threads 2``;
its results are in benchmarks/RESULTS.md. PyTorch is optional: without it the
script times fastconv alone.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "mnist_vs_torch", Path(__file__).with_name("mnist_vs_torch.py"))
mnist_vs_torch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mnist_vs_torch)


@pytest.mark.parametrize("with_torch", [False, True])
def test_script_times_both_and_reports(with_torch, monkeypatch):
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setitem(sys.modules, "torch", None)
    result = mnist_vs_torch.run(threads=1, steps=3, chunks=2, rounds=1, subset=384,
                                with_torch=with_torch, random=True)
    assert result["steps"] == 3 and result["images"] == 384
    names = list(result["results"])
    assert names == (["fastconv", "pytorch"] if with_torch else ["fastconv"])
    for r in result["results"].values():
        assert r["epoch_seconds"] > 0 and r["inference_images_per_second"] > 0
    table = mnist_vs_torch.report(result)
    assert "| fastconv |" in table
    assert ("fastconv/pytorch" in table) == with_torch
