"""Pooling layers: MaxPooling2D, AveragePooling2D and their global forms.

One base class, `_Pooling2D`, does the work on fastconv's pooling kernels;
the subclasses only fix which kernel (max or average) and the window. Global
pooling is pooling with a window as large as the input, so it shares the
kernels' NaN and tie rules rather than re-implementing them in NumPy.
"""

from __future__ import annotations

from fastconv import backend
from fastconv._geometry import POOL_ARGMAX_MAX_CELLS, as_pair, pool2d_geometry
from fastconv.layers.base import Layer
from fastconv.layers.conv import check_data_format, check_padding

__all__ = [
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalMaxPool2D",
    "GlobalAvgPool2D",
]


class _Pooling2D(Layer):
    """Pooling of ``(n, h, w, c)`` to ``(n, ho, wo, c)`` by windows of ``pool_size``.

    Parameters
    ----------
    pool_size : int or (kh, kw), default (2, 2)
    strides : int or (sh, sw), optional
        Defaults to ``pool_size``.
    padding : "valid" or "same", default "valid"
    data_format : None or "channels_last"
    """

    _kind = ""  # "max" or "avg", set by subclasses

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format)
        self.pool_size = as_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides")
        self.padding = check_padding(padding)
        # What the backward pass reads: the input, or after a training
        # forward of max pooling, where each maximum is (one byte an output
        # instead of the input's four bytes a cell) and the input's shape.
        self._x = None
        self._argmax = None
        self._x_shape = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} needs (n, h, w, c) inputs, got {input_shape}")
        n, h, w, c = input_shape
        if h is None or w is None:
            return (n, None, None, c)
        g = pool2d_geometry((1, h, w, c), self.pool_size, self.strides, self.padding)
        return (n, g.ho, g.wo, c)

    def _args(self, x_shape):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}

    # Whether a Dropout layer right above can run in this layer's passes: its
    # mask applied as the output is written (forward(..., dropout=...)) and as
    # the gradient is read (backward(..., dropout=...)), the same numbers.
    takes_dropout = True

    def pooling_args(self, x_shape, dropout=None) -> dict:
        """This layer's kernel arguments for an input of ``x_shape``."""
        args = self._args(x_shape)
        if dropout is not None:
            args["dropout"] = dropout
        return args

    def keeps_argmax(self, x_shape) -> bool:
        """Whether a training forward keeps the argmax rather than x."""
        kh, kw = as_pair(self._args(x_shape)["pool_size"], "pool_size")
        return self._kind == "max" and kh * kw <= POOL_ARGMAX_MAX_CELLS

    @property
    def pools_after_conv(self) -> bool:
        """Whether a Conv2D below can run this layer in its own kernel call
        (`Conv2D.forward_pooled`): max pooling can."""
        return self._kind == "max"

    def forward(self, x, training=False, dropout=None):
        """The pooled x; with dropout, the (rate, seed) of a Dropout layer
        above (`Dropout.start_mask`), applied in the same pass."""
        kernels = backend.kernels()
        args = self.pooling_args(x.shape, dropout)
        if training and self.keeps_argmax(x.shape):
            y, argmax = kernels.max_pool2d(x, return_argmax=True, **args)
            return self.pooled(y, x.shape, argmax)
        out = self.pooled(getattr(kernels, f"{self._kind}_pool2d")(x, **args), x.shape)
        self._x = x
        return out

    def pooled(self, y, x_shape, argmax=None):
        """Finish a forward pass whose pooling ran elsewhere (in the layer
        below's kernel call, or above): keep what the backward pass reads,
        and return the layer's output."""
        self._x, self._argmax, self._x_shape = None, argmax, x_shape
        return y

    def argmax_kept(self):
        """(argmax, input shape) kept by the last training forward of max
        pooling, for a backward pass that runs elsewhere
        (`Conv2D.backward_pooled`)."""
        if self._argmax is None:
            raise RuntimeError(f"{self.name}: no argmax kept; it needs a training forward first")
        return self._argmax, self._x_shape

    def _as_4d(self, dy):
        """The output gradient as ``(n, ho, wo, c)``."""
        return dy

    def backward(self, dy, dropout=None):
        """With dropout (as forward's), dy is the gradient of the Dropout
        layer's output, taken through its mask in the same pass."""
        return self._backward(dy, dropout, relu=False)

    def _backward(self, dy, dropout, relu):
        if self._argmax is None and self._x is None:
            raise RuntimeError(f"{self.name}: backward needs a forward pass in training first")
        kernels = backend.kernels()
        args = self.pooling_args(self._x_shape, dropout)
        if relu:
            args["relu"] = True
        if self._argmax is not None:
            return kernels.max_pool2d_backward_argmax(
                self._as_4d(dy), self._argmax, self._x_shape, **args
            )
        backward = getattr(kernels, f"{self._kind}_pool2d_backward")
        return backward(self._as_4d(dy), self._x, **args)

    # `backward_through_relu` exists: max and average pooling take a ReLU's
    # backward in their own pass.
    takes_relu_backward = True

    def backward_through_relu(self, dy, dropout=None):
        """The gradient with respect to the pre-activation of the ReLU whose
        output this layer pooled: ``relu_backward(backward(dy), x)`` in the
        pooling's own pass (for max pooling, a window whose maximum is not
        positive passes nothing). The model uses it below a ReLU-activated
        layer, whose own ReLU backward pass it then skips."""
        if not self.takes_relu_backward:
            raise TypeError(f"{type(self).__name__} has no backward through a ReLU")
        return self._backward(dy, dropout, relu=True)

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_size=list(self.pool_size), strides=list(self.strides), padding=self.padding
        )
        return config


class MaxPooling2D(_Pooling2D):
    """Maximum over each window; the gradient goes to the window's first maximum."""

    _kind = "max"


class AveragePooling2D(_Pooling2D):
    """Mean over each window; "same" padding leaves padded cells out of the mean."""

    _kind = "avg"


class _GlobalPooling2D(_Pooling2D):
    """Pooling over the whole image: ``(n, h, w, c)`` to ``(n, c)``.

    Parameters
    ----------
    keepdims : bool, default False
        Keep the output as ``(n, 1, 1, c)``.
    data_format : None or "channels_last"
    """

    takes_dropout = False

    def __init__(self, data_format=None, keepdims: bool = False, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} needs (n, h, w, c) inputs, got {input_shape}")
        n, c = input_shape[0], input_shape[3]
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def _args(self, x_shape):
        return {"pool_size": x_shape[1:3], "strides": (1, 1), "padding": "valid"}

    def pooled(self, y, x_shape, argmax=None):
        y = super().pooled(y, x_shape, argmax)
        return y if self.keepdims else y.reshape(y.shape[0], y.shape[3])

    def forward(self, x, training=False):  # no Dropout runs in its pass
        return super().forward(x, training)

    def _as_4d(self, dy):
        return dy.reshape(dy.shape[0], 1, 1, dy.shape[-1])

    def get_config(self):
        config = Layer.get_config(self)
        config["keepdims"] = self.keepdims
        return config


class GlobalMaxPooling2D(_GlobalPooling2D):
    _kind = "max"


class GlobalAveragePooling2D(_GlobalPooling2D):
    _kind = "avg"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
