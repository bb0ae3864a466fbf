"""The scripts in examples/ run, on a few hundred MNIST images for one epoch."""

import os
from pathlib import Path

import pytest
from child_process import run_python

ROOT = Path(__file__).resolve().parent.parent
MNIST = Path(os.environ.get("FASTCONV_DATA", "/nonexistent")) / "mnist"

pytestmark = pytest.mark.skipif(
    not MNIST.is_dir(),
    reason="the MNIST files are not in $FASTCONV_DATA/mnist (set FASTCONV_DATA to run)",
)


def _run(script, *args):
    result = run_python([str(ROOT / "examples" / script), *args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "downloading" not in result.stdout + result.stderr
    return result.stdout


def test_mnist_cnn(tmp_path, capsys):
    out = _run("mnist_cnn.py", "--subset", "256", "--epochs", "1", "--save",
               str(tmp_path / "m.fcm"))
    assert "256 train samples" in out and "Test accuracy:" in out
    accuracy = float(out.split("Test accuracy:")[1].split()[0])
    # `fastconv evaluate` reads the saved model (one-hot labels, unlike the zoo's).
    from fastconv import cli

    assert cli.main(["evaluate", str(tmp_path / "m.fcm"), "--subset", "256",
                     "--data", str(MNIST)]) == 0
    assert f"test accuracy {100 * accuracy:.2f}%" in capsys.readouterr().out


def test_mnist_transfer():
    out = _run("mnist_transfer.py", "--subset", "600", "--epochs", "1")
    assert "Digits 0-4, all layers" in out
    # Frozen convolutions leave only the dense layers' 590,597 weights to train.
    assert "feature layers frozen" in out and "590,597 trainable parameters" in out
    assert out.count("Test accuracy:") == 2


def test_lenet5():
    out = _run("lenet5.py", "--subset", "300", "--epochs", "1")
    assert "Total params: 61,706" in out and "Test accuracy:" in out
