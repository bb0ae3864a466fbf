"""Conv2D: 2-D convolution over NHWC images on fastconv's implicit-GEMM kernel."""

from __future__ import annotations

import numpy as np

from fastconv import activations, backend, initializers, regularizers
from fastconv._geometry import as_pair, conv2d_geometry
from fastconv.layers.activated import ActivatedLayer

__all__ = ["Conv2D", "check_padding", "check_data_format"]


def check_padding(padding) -> str:
    """Keras's two padding modes, case-insensitive."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def check_data_format(data_format) -> None:
    """fastconv is channels-last throughout; refuse the other layout loudly."""
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"fastconv layers are channels-last (NHWC); data_format must be None or "
            f"'channels_last', got {data_format!r}"
        )


class Conv2D(ActivatedLayer):
    """2-D convolution layer, ``y = activation(conv(x, kernel) + bias)``.

    Parameters
    ----------
    filters : int
        Number of output channels ``f``.
    kernel_size : int or (kh, kw)
    strides : int or (sh, sw), default (1, 1)
    padding : "valid" or "same", default "valid"
    data_format : None or "channels_last"
    dilation_rate : int or (dh, dw), default (1, 1)
    activation : str or None
        "relu" is fused into the convolution kernel with the bias.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
    kernel_regularizer, bias_regularizer : Regularizer, optional
    **kwargs
        `Layer` arguments (name, trainable, input_shape, ...).

    Input ``(n, h, w, c)``, output ``(n, ho, wo, f)``; kernel ``(kh, kw, c, f)``
    (HWIO), bias ``(f,)``.
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"filters must be a positive int, got {filters!r}")
        check_data_format(data_format)
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.strides = as_pair(strides, "strides")
        self.padding = check_padding(padding)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate")
        self._set_activation(activation)
        self._last_shapes = None  # (input shape, output shape), see output_shape_for
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._x: np.ndarray | None = None
        # The pooling layer whose training forward ran in this layer's kernel
        # call (`forward_pooled`), keeping its argmax: see `backward_pooled`.
        self.pooled_by = None

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"Conv2D needs inputs of shape (n, h, w, c) with c known, got {input_shape}"
            )
        shape = (*self.kernel_size, int(input_shape[-1]), self.filters)
        self.kernel = self.add_weight(
            "kernel", shape, self.kernel_initializer, self.kernel_regularizer
        )
        self.bias = (
            self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        if h is None or w is None:
            return (n, None, None, self.filters)
        g = conv2d_geometry(
            (1, h, w, c),
            (*self.kernel_size, c, self.filters),
            self.strides,
            self.padding,
            self.dilation_rate,
        )
        return (n, g.ho, g.wo, self.filters)

    def _conv_args(self) -> dict:
        return {"stride": self.strides, "padding": self.padding, "dilation": self.dilation_rate}

    def forward(self, x, training=False):
        self._x = x
        self.pooled_by = None
        z = backend.kernels().conv2d(
            x,
            self.kernel.value,
            None if self.bias is None else self.bias.value,
            activation="relu" if self.fused_relu else None,
            **self._conv_args(),
        )
        return self._activate(z)

    def pools_in_one_pass(self, pool, x_shape, training: bool) -> bool:
        """Whether `forward_pooled` can run this layer and ``pool``, the max
        pooling above it, in one kernel call: a ReLU or no activation (the
        kernel's), and in training a pooling that keeps its argmax and takes
        the gradient through the ReLU itself (the backward pass then needs
        no output of this layer)."""
        if not getattr(pool, "pools_after_conv", False):
            return False
        if self.fused_relu:
            if training and not pool.takes_relu_backward:
                return False
        elif self.activation is not activations.linear:
            return False
        return not training or pool.keeps_argmax(self.output_shape_for(x_shape))

    def output_shape_for(self, x_shape) -> tuple:
        """The output shape for an input of shape ``x_shape`` (batch included);
        the last one asked is kept (a step asks twice per layer, and
        resolving the geometry costs tens of microseconds)."""
        x_shape = tuple(x_shape)
        last = self._last_shapes
        if last is None or last[0] != x_shape:
            y_shape = (x_shape[0], *self.compute_output_shape(x_shape)[1:])
            last = self._last_shapes = (x_shape, y_shape)
        return last[1]

    def forward_pooled(self, x, pool, training=False, dropout=None):
        """``pool.forward(self.forward(x, training), training, dropout)`` in one
        kernel call, the same numbers, where `pools_in_one_pass`: the
        convolution's output is not kept (nor, for the layers the direct
        kernels take, ever written to memory), so this layer's backward starts
        from ``pool.backward_through_relu`` (or, with no activation, from
        ``pool.backward``)."""
        self._x = x
        self._z = self._y = None
        z_shape = self.output_shape_for(x.shape)
        args = pool.pooling_args(z_shape, dropout)
        keep = training and pool.keeps_argmax(z_shape)
        out = backend.kernels().conv2d_max_pool2d(
            x,
            self.kernel.value,
            None if self.bias is None else self.bias.value,
            activation="relu" if self.fused_relu else None,
            **self._conv_args(),
            pool_size=args["pool_size"],
            pool_strides=args["strides"],
            pool_padding=args["padding"],
            dropout=args.get("dropout"),
            return_argmax=keep,
        )
        y, argmax = out if keep else (out, None)
        self.pooled_by = pool if keep else None
        return pool.pooled(y, z_shape, argmax)

    def backward_pooled(self, dy, dropout=None, relu_input=False):
        """The backward of `forward_pooled` in training, from the gradient of
        the pooling's output (``pooled_by``, with the mask of the Dropout above
        it as its backward takes it): ``backward_from_logits(
        pool.backward_through_relu(dy, dropout), relu_input)``, or from
        ``pool.backward`` with no activation, in one kernel call, the same
        numbers (the convolution's output gradient is not written out where
        the kernels allow it: the Keras example's second layer, 11.4 -> 10.0 ms
        for both passes)."""
        pool = self.pooled_by
        if pool is None:
            raise RuntimeError(f"{self.name}: backward_pooled needs a training forward_pooled")
        argmax, z_shape = pool.argmax_kept()
        args = pool.pooling_args(z_shape, dropout)
        dx, dw, db = backend.kernels().conv2d_max_pool2d_backward(
            dy, argmax, self._x, self.kernel.value,
            activation="relu" if self.fused_relu else None, **self._conv_args(),
            pool_size=args["pool_size"], pool_strides=args["strides"],
            pool_padding=args["padding"], dropout=args.get("dropout"),
            input_grad=self.input_grad_needed, relu=relu_input,
        )
        self._set_gradients(dw, db)
        return dx

    @property
    def takes_relu_backward(self) -> bool:
        return self.input_grad_needed

    def _backward_linear(self, dz, relu_input=False):
        # With relu_input, self._x is the ReLU's output that masks dx.
        dx, dw, db = backend.kernels().conv2d_backward(
            dz, self._x, self.kernel.value, input_grad=self.input_grad_needed,
            relu=relu_input, **self._conv_args()
        )
        self._set_gradients(dw, db)
        return dx

    def _set_gradients(self, dw, db):
        if self.trainable:
            self.kernel.grad = dw
            if self.bias is not None:
                self.bias.grad = db

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=list(self.dilation_rate),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
        )
        return config
