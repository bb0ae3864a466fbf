"""The competitors fastconv is measured against: NumPy im2col + matmul, and PyTorch.

Used by ``python -m fastconv.bench`` and by the pytest-benchmark suites in
``benchmarks/``; not part of the API. Everything here is NHWC / HWIO in and
out, like `fastconv.ops`, so results compare directly.

* ``im2col_*``: the fastest plain NumPy convolution, as a NumPy user would
  write it: gather every receptive field into one ``(n*ho*wo, kh*kw*c)``
  matrix (`numpy.lib.stride_tricks.sliding_window_view` plus one copy) and
  make the convolution one big matmul (OpenBLAS sgemm). The backward passes
  are the same GEMMs transposed; backward-input scatters its columns back
  with col2im, one strided add per kernel tap.
* ``Torch*``: PyTorch's CPU kernels (oneDNN underneath), in either layout:
  ``"nchw"``, PyTorch's default (the input is converted once, outside any
  timed call), or ``"nhwc"``, channels-last, which reads fastconv's own
  arrays without a copy. torch is imported only when one of these classes
  is built: it is an optional extra, never a dependency.
"""

from __future__ import annotations

import importlib.util

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastconv._geometry import Conv2DGeometry, Pool2DGeometry

__all__ = [
    "im2col",
    "im2col_conv2d",
    "im2col_conv2d_backward_input",
    "im2col_conv2d_backward_weight",
    "im2col_conv2d_backward",
    "torch_available",
    "TorchConv2D",
    "TorchPool2D",
    "TORCH_LAYOUTS",
]

TORCH_LAYOUTS = ("nchw", "nhwc")


# ---- NumPy im2col + matmul ---------------------------------------------------


def _pad(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    if g.pt == g.pb == g.pl == g.pr == 0:
        return x
    return np.pad(x, ((0, 0), (g.pt, g.pb), (g.pl, g.pr), (0, 0)))


def im2col(x: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """Receptive fields of x ``(n, h, w, c)`` as rows: ``(n*ho*wo, kh*kw*c)``.

    Columns run in (ki, kj, ci) order, so ``w.reshape(kh*kw*c, f)`` (HWIO)
    is the matching weight matrix.
    """
    eh, ew = (g.kh - 1) * g.dh + 1, (g.kw - 1) * g.dw + 1
    # (n, h', w', c, eh, ew): one view, no copy yet.
    windows = sliding_window_view(_pad(x, g), (eh, ew), axis=(1, 2))
    windows = windows[:, :: g.sh, :: g.sw, :, :: g.dh, :: g.dw]
    # The one copy: (n, ho, wo, kh, kw, c), channels innermost.
    cols = np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3))
    return cols.reshape(g.n * g.ho * g.wo, g.kh * g.kw * g.c)


def im2col_conv2d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None, g: Conv2DGeometry
) -> np.ndarray:
    """Forward convolution as ``im2col(x) @ w``: y of shape ``(n, ho, wo, f)``."""
    y = im2col(x, g) @ w.reshape(-1, g.f)
    if b is not None:
        y += b
    return y.reshape(g.y_shape)


def im2col_conv2d_backward_input(dy: np.ndarray, w: np.ndarray, g: Conv2DGeometry) -> np.ndarray:
    """dx as ``col2im(dy @ w^T)``: one GEMM, then one strided add per kernel tap."""
    dcols = (dy.reshape(-1, g.f) @ w.reshape(-1, g.f).T).reshape(g.n, g.ho, g.wo, g.kh, g.kw, g.c)
    dxp = np.zeros((g.n, g.h + g.pt + g.pb, g.w + g.pl + g.pr, g.c), dtype=dcols.dtype)
    for ki in range(g.kh):
        rows = slice(ki * g.dh, ki * g.dh + (g.ho - 1) * g.sh + 1, g.sh)
        for kj in range(g.kw):
            cols = slice(kj * g.dw, kj * g.dw + (g.wo - 1) * g.sw + 1, g.sw)
            # Within one tap the target cells are distinct: no collisions.
            dxp[:, rows, cols, :] += dcols[:, :, :, ki, kj, :]
    if g.pt == g.pb == g.pl == g.pr == 0:
        return dxp
    return np.ascontiguousarray(dxp[:, g.pt : g.pt + g.h, g.pl : g.pl + g.w, :])


def im2col_conv2d_backward_weight(
    x: np.ndarray, dy: np.ndarray, g: Conv2DGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """(dw, db): ``im2col(x)^T @ dy`` (one GEMM) and the sum of dy."""
    dy2 = dy.reshape(-1, g.f)
    dw = (im2col(x, g).T @ dy2).reshape(g.w_shape)
    return dw, dy2.sum(axis=0)


def im2col_conv2d_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: Conv2DGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db), the two passes above one after the other."""
    dx = im2col_conv2d_backward_input(dy, w, g)
    dw, db = im2col_conv2d_backward_weight(x, dy, g)
    return dx, dw, db


# ---- PyTorch -----------------------------------------------------------------


def torch_available() -> bool:
    """True when torch can be imported (it is never required)."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch  # noqa: F401
    except Exception:  # a broken install counts as absent
        return False
    return True


def _torch():
    import torch

    return torch


def _to_torch(array: np.ndarray, layout: str):
    """NHWC (or HWIO, read as (kh, kw, c, f)) array -> NCHW-shaped tensor in ``layout``.

    "nhwc" returns a channels-last view of the same memory; "nchw" copies.
    """
    torch = _torch()
    if layout not in TORCH_LAYOUTS:
        raise ValueError(f"layout must be one of {TORCH_LAYOUTS}, got {layout!r}")
    t = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return t.contiguous() if layout == "nchw" else t


def _to_numpy_nhwc(t) -> np.ndarray:
    """NCHW-shaped tensor (either memory format) -> C-contiguous NHWC array."""
    return np.ascontiguousarray(t.permute(0, 2, 3, 1).numpy())


def _symmetric(g: Conv2DGeometry | Pool2DGeometry) -> list[int]:
    if g.pt != g.pb or g.pl != g.pr:
        raise ValueError(
            f"PyTorch takes symmetric padding only, got ((top, bottom), (left, right)) = "
            f"{((g.pt, g.pb), (g.pl, g.pr))}"
        )
    return [g.pt, g.pl]


class TorchConv2D:
    """One convolution in PyTorch, its tensors built once from NHWC / HWIO arrays.

    The pass methods are what a benchmark times; ``to_numpy`` turns their
    results back into fastconv's layouts, outside any timed call.
    """

    def __init__(self, x, w, b, dy, g: Conv2DGeometry, layout: str = "nchw"):
        torch = _torch()
        self.g = g
        self.layout = layout
        self._F = torch.nn.functional
        self._backward = torch.ops.aten.convolution_backward
        self._inference = torch.inference_mode
        self.x = _to_torch(x, layout)
        # HWIO (kh, kw, c, f) -> OIHW (f, c, kh, kw) in the same memory format as x.
        wt = torch.from_numpy(np.ascontiguousarray(w)).permute(3, 2, 0, 1)
        if layout == "nchw":
            self.w = wt.contiguous()
        else:
            self.w = wt.contiguous(memory_format=torch.channels_last)
        self.b = None if b is None else torch.from_numpy(np.ascontiguousarray(b))
        self.dy = _to_torch(dy, layout)
        self.stride = [g.sh, g.sw]
        self.padding = _symmetric(g)
        self.dilation = [g.dh, g.dw]

    def forward(self):
        with self._inference():
            return self._F.conv2d(self.x, self.w, self.b, self.stride, self.padding, self.dilation)

    def _grads(self, mask):
        return self._backward(
            self.dy,
            self.x,
            self.w,
            [self.g.f],
            self.stride,
            self.padding,
            self.dilation,
            False,
            [0, 0],
            1,
            mask,
        )

    def backward_input(self):
        return self._grads([True, False, False])[0]

    def backward_weight(self):
        _, dw, db = self._grads([False, True, True])
        return dw, db

    def backward(self):
        return self._grads([True, True, True])

    @staticmethod
    def weight_to_numpy(dw) -> np.ndarray:
        """OIHW tensor -> HWIO array."""
        return np.ascontiguousarray(dw.permute(2, 3, 1, 0).numpy())

    to_numpy = staticmethod(_to_numpy_nhwc)


class TorchPool2D:
    """Max or average pooling in PyTorch; see `TorchConv2D`.

    Average pooling leaves padded cells out of the count, as fastconv does.
    """

    def __init__(self, kind: str, x, dy, g: Pool2DGeometry, layout: str = "nchw"):
        torch = _torch()
        if kind not in ("max", "avg"):
            raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
        self.kind = kind
        self._F = torch.nn.functional
        self._aten = torch.ops.aten
        self._inference = torch.inference_mode
        self.x = _to_torch(x, layout)
        self.dy = _to_torch(dy, layout)
        self.kernel = [g.kh, g.kw]
        self.stride = [g.sh, g.sw]
        self.padding = _symmetric(g)
        if kind == "max":
            # The indices of the forward pass, which PyTorch's backward takes as input.
            _, self.indices = self._F.max_pool2d(
                self.x, self.kernel, self.stride, self.padding, return_indices=True
            )

    def forward(self):
        with self._inference():
            if self.kind == "max":
                return self._F.max_pool2d(self.x, self.kernel, self.stride, self.padding)
            return self._F.avg_pool2d(
                self.x, self.kernel, self.stride, self.padding, count_include_pad=False
            )

    def forward_with_indices(self):
        """Max pooling's forward as training runs it: (y, indices)."""
        with self._inference():
            return self._F.max_pool2d(self.x, self.kernel, self.stride, self.padding,
                                      return_indices=True)

    def backward(self):
        if self.kind == "max":
            return self._aten.max_pool2d_with_indices_backward(
                self.dy,
                self.x,
                self.kernel,
                self.stride,
                self.padding,
                [1, 1],
                False,
                self.indices,
            )
        return self._aten.avg_pool2d_backward(
            self.dy, self.x, self.kernel, self.stride, self.padding, False, False, None
        )

    to_numpy = staticmethod(_to_numpy_nhwc)
