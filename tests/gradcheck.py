"""Central-difference gradient checks shared by the model-API tests.

Layers run on `fastconv.backend.use_reference()` in float64 here, so the
differences are exact to about 1e-9 and the tolerances can be tight.
"""

from __future__ import annotations

import numpy as np

from fastconv import backend

EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8


def numerical_grad(loss, array: np.ndarray) -> np.ndarray:
    """Central-difference gradient of ``loss()`` with respect to ``array``, perturbed in place."""
    grad = np.zeros_like(array, dtype=np.float64)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPS
        plus = loss()
        array[index] = saved - EPS
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


def check_layer(layer, x: np.ndarray, *, training: bool = True, before_forward=None,
                seed: int = 0) -> None:
    """Check ``layer.backward`` (input and weight gradients) against differences of
    ``sum(layer.forward(x) * dy)`` for a random ``dy``, on the reference kernels."""
    rng = np.random.default_rng(seed)
    with backend.use_reference():
        if not layer.built:
            layer.build((None, *x.shape[1:]))

        def forward():
            if before_forward is not None:
                before_forward()
            return layer.forward(x, training=training)

        y = forward()
        dy = rng.standard_normal(y.shape)

        def loss():
            return float(np.sum(forward() * dy))

        forward()
        dx = layer.backward(dy.copy())
        grads = {w.path: w.grad.copy() for w in layer.trainable_weights}
        np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{layer.name}: input gradient")
        for w in layer.trainable_weights:
            np.testing.assert_allclose(grads[w.path], numerical_grad(loss, w.value),
                                       rtol=RTOL, atol=ATOL, err_msg=f"{w.path} gradient")
