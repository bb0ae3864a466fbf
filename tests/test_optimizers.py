"""Tests of `fastconv.optimizers`: each update against its formula, written out
independently here, over several steps; decay, clipping, schedules, state,
configuration and convergence."""

from __future__ import annotations

import numpy as np
import pytest

from fastconv import optimizers
from fastconv.layers import Weight
from fastconv.optimizers import schedules

RNG = np.random.default_rng(11)
STEPS = 4


def run(optimizer, w0, grads):
    weight = Weight("w", w0.copy(), path="layer/w")
    for g in grads:
        optimizer.apply_gradients([(g.copy(), weight)])
    return weight.value


def data():
    w0 = RNG.standard_normal((3, 4))
    grads = [RNG.standard_normal((3, 4)) for _ in range(STEPS)]
    return w0, grads


def sgd_formula(w, grads, lr, momentum=0.0, nesterov=False):
    v = np.zeros_like(w)
    for g in grads:
        v = momentum * v - lr * g
        w = w + (momentum * v - lr * g if nesterov else v)
    return w


def adam_formula(w, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    m, v, vhat = (np.zeros_like(w) for _ in range(3))
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = np.maximum(vhat, v)
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - lr_t * m / (np.sqrt(vhat if amsgrad else v) + eps)
    return w


def rmsprop_formula(w, grads, lr=1e-3, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    ms, mg, mom = (np.zeros_like(w) for _ in range(3))
    for g in grads:
        ms = rho * ms + (1 - rho) * g * g
        mg = rho * mg + (1 - rho) * g
        d = ms - mg * mg if centered else ms
        if momentum:
            mom = momentum * mom + lr * g / np.sqrt(d + eps)
            w = w - mom
        else:
            w = w - lr * g / (np.sqrt(d) + eps)
    return w


def adagrad_formula(w, grads, lr=1e-3, init=0.1, eps=1e-7):
    acc = np.full_like(w, init)
    for g in grads:
        acc = acc + g * g
        w = w - lr * g / (np.sqrt(acc) + eps)
    return w


def adadelta_formula(w, grads, lr=1.0, rho=0.95, eps=1e-6):
    acc, acc_u = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        acc = rho * acc + (1 - rho) * g * g
        u = g * np.sqrt(acc_u + eps) / np.sqrt(acc + eps)
        acc_u = rho * acc_u + (1 - rho) * u * u
        w = w - lr * u
    return w


CASES = [
    (lambda: optimizers.SGD(), lambda w, g: sgd_formula(w, g, 0.01)),
    (lambda: optimizers.SGD(0.1, momentum=0.9), lambda w, g: sgd_formula(w, g, 0.1, 0.9)),
    (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
     lambda w, g: sgd_formula(w, g, 0.1, 0.9, True)),
    (lambda: optimizers.Adam(), adam_formula),
    (lambda: optimizers.Adam(0.01, beta_1=0.8, amsgrad=True),
     lambda w, g: adam_formula(w, g, 0.01, b1=0.8, amsgrad=True)),
    (lambda: optimizers.RMSprop(), rmsprop_formula),
    (lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
     lambda w, g: rmsprop_formula(w, g, 0.01, momentum=0.5, centered=True)),
    (lambda: optimizers.Adagrad(), adagrad_formula),
    (lambda: optimizers.Adadelta(), adadelta_formula),
]


@pytest.mark.parametrize("make, formula", CASES, ids=lambda c: None)
def test_update_matches_formula(make, formula):
    w0, grads = data()
    np.testing.assert_allclose(run(make(), w0, grads), formula(w0, grads), rtol=1e-12, atol=1e-14)


def numpy_adam_float32(w, grads, lr, b1, b2, eps, amsgrad):
    """Adam's NumPy formula in float32, operation by operation as the
    optimizer wrote it before its C sweep."""
    import math
    w = w.copy()
    m, v, vhat = (np.zeros_like(w) for _ in range(3))
    for t, g in enumerate(grads, start=1):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * np.square(g)
        u = v
        if amsgrad:
            np.maximum(vhat, v, out=vhat)
            u = vhat
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        denom = np.sqrt(u)
        denom += eps
        w -= lr_t * m / denom
    return w


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_float32_is_bitwise_its_numpy_formula(amsgrad):
    """float32 weights take a one-pass C sweep: it must round exactly as the
    NumPy formula (no fused multiply-adds, no flushed denormals), on enough
    weights for several threads, through tiny, huge and non-finite gradients."""
    rng = np.random.default_rng(21)
    w0 = rng.standard_normal(300_007).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) * np.float32(scale)
             for scale in (1.0, 1e-20, 1e3, 0.5)]
    grads[1][:3] = [np.nan, np.inf, -np.inf]
    opt = optimizers.Adam(0.01, beta_1=0.8, amsgrad=amsgrad)
    got = run(opt, w0, grads)
    with np.errstate(invalid="ignore"):  # inf / inf where a gradient is infinite
        want = numpy_adam_float32(w0, grads, 0.01, 0.8, 0.999, 1e-7, amsgrad)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def numpy_adadelta_float32(w0, grads, lr, rho, eps):
    """The NumPy formula of Adadelta._update, step by step, in float32."""
    w = w0.copy()
    acc, acc_u = np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        acc *= rho
        acc += (1 - rho) * np.square(g)
        u = g * np.sqrt(acc_u + eps) / np.sqrt(acc + eps)
        acc_u *= rho
        acc_u += (1 - rho) * np.square(u)
        w -= lr * u
    return w


def numpy_sgd_float32(w0, grads, lr, momentum, nesterov):
    """The NumPy formula of SGD._update, step by step, in float32."""
    w, v = w0.copy(), np.zeros_like(w0)
    for g in grads:
        if not momentum:
            w -= lr * g
            continue
        v *= momentum
        v -= lr * g
        if nesterov:
            w += momentum * v - lr * g
        else:
            w += v
    return w


def numpy_rmsprop_float32(w0, grads, lr, rho, eps, momentum=0.0, centered=False):
    """The NumPy formula of RMSprop._update."""
    w, ms, mg, mom = w0.copy(), np.zeros_like(w0), np.zeros_like(w0), np.zeros_like(w0)
    for g in grads:
        ms *= rho
        ms += (1 - rho) * np.square(g)
        d = ms
        if centered:
            mg *= rho
            mg += (1 - rho) * g
            d = ms - np.square(mg)
        if momentum:
            mom *= momentum
            mom += lr * g / np.sqrt(d + eps)
            w -= mom
        else:
            denom = np.sqrt(d)
            denom += eps
            w -= lr * g / denom
    return w


def numpy_adagrad_float32(w0, grads, lr, initial, eps):
    """The NumPy formula of Adagrad._update."""
    w, acc = w0.copy(), np.full_like(w0, initial)
    for g in grads:
        acc += np.square(g)
        denom = np.sqrt(acc)
        denom += eps
        w -= lr * g / denom
    return w


@pytest.mark.parametrize("name", ["adadelta", "sgd", "momentum", "nesterov", "rmsprop",
                                  "rmsprop-centered", "rmsprop-momentum",
                                  "rmsprop-centered-momentum", "adagrad"])
def test_other_optimizers_float32_are_bitwise_their_numpy_formulas(name):
    """As Adam's: the C sweeps round exactly as the NumPy formulas (a
    product or sum regrouped in C fails this)."""
    rng = np.random.default_rng(23)
    w0 = rng.standard_normal(300_007).astype(np.float32)
    grads = [rng.standard_normal(w0.shape).astype(np.float32) * np.float32(scale)
             for scale in (1.0, 1e-20, 1e3, 0.5)]
    grads[1][:3] = [np.nan, np.inf, -np.inf]
    if name == "adadelta":
        opt, formula = optimizers.Adadelta(0.7, rho=0.9, epsilon=1e-5), lambda: (
            numpy_adadelta_float32(w0, grads, 0.7, 0.9, 1e-5))
    elif name.startswith("rmsprop"):
        momentum, centered = (0.7 if "momentum" in name else 0.0), "centered" in name
        opt = optimizers.RMSprop(0.01, rho=0.8, momentum=momentum, centered=centered)
        formula = lambda: numpy_rmsprop_float32(  # noqa: E731
            w0, grads, 0.01, 0.8, 1e-7, momentum, centered)
    elif name == "adagrad":
        opt, formula = optimizers.Adagrad(0.02), lambda: numpy_adagrad_float32(
            w0, grads, 0.02, 0.1, 1e-7)
    else:
        momentum = 0.0 if name == "sgd" else 0.9
        opt = optimizers.SGD(0.03, momentum=momentum, nesterov=name == "nesterov")
        formula = lambda: numpy_sgd_float32(w0, grads, 0.03, momentum, name == "nesterov")  # noqa: E731
    got = run(opt, w0, grads)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, inf / inf
        want = formula()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_keras_defaults():
    assert optimizers.SGD().learning_rate == 0.01
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    delta = optimizers.Adadelta()
    assert (delta.learning_rate, delta.rho, delta.epsilon) == (1.0, 0.95, 1e-6)
    assert optimizers.RMSprop().rho == 0.9
    assert optimizers.Adagrad().initial_accumulator_value == 0.1
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert optimizers.SGD(lr=0.5).lr == 0.5


def test_update_is_in_place_and_float32_stays_float32():
    value = np.ones(5, np.float32)
    weight = Weight("w", value)
    optimizers.Adam().apply_gradients([(np.ones(5, np.float32), weight)])
    assert weight.value is value and value.dtype == np.float32
    assert np.all(value < 1)


def test_decay_divides_the_rate_by_one_plus_decay_times_iterations():
    w0, grads = data()
    expected = w0.copy()
    for i, g in enumerate(grads):
        expected = expected - 0.1 / (1 + 0.5 * i) * g
    np.testing.assert_allclose(run(optimizers.SGD(0.1, decay=0.5), w0, grads), expected)


def test_clipnorm_and_clipvalue():
    g = np.array([3.0, 4.0])
    got = run(optimizers.SGD(1.0, clipnorm=1.0), np.zeros(2), [g])
    np.testing.assert_allclose(got, -g / 5)
    got = run(optimizers.SGD(1.0, clipvalue=3.5), np.zeros(2), [g])
    np.testing.assert_allclose(got, [-3.0, -3.5])


def test_schedules():
    exp = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert exp(0) == 0.1 and exp(10) == pytest.approx(0.05)
    assert exp(5) == pytest.approx(0.1 / 2**0.5)
    stair = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert stair(9) == 0.1 and stair(10) == pytest.approx(0.05)
    pw = schedules.PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])
    assert [pw(s) for s in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]
    w0, grads = data()
    got = run(optimizers.SGD(pw), w0, grads)
    expected = w0 - sum(pw(i) * g for i, g in enumerate(grads))
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("make", [c[0] for c in CASES])
def test_config_round_trip_and_state(make):
    opt = make()
    clone = optimizers.deserialize(optimizers.serialize(opt))
    assert type(clone) is type(opt) and clone.get_config() == opt.get_config()
    w0, grads = data()
    run(opt, w0, grads)
    assert opt.iterations == STEPS
    assert set(opt.get_slots()) == {"layer/w"}


def test_schedule_survives_config_round_trip():
    opt = optimizers.Adam(schedules.PiecewiseConstantDecay([5], [0.1, 0.01]))
    clone = optimizers.get(optimizers.serialize(opt))
    assert isinstance(clone.learning_rate, schedules.PiecewiseConstantDecay)
    assert clone.current_learning_rate() == 0.1


@pytest.mark.parametrize("make", [c[0] for c in CASES])
def test_converges_on_a_quadratic(make):
    target = np.array([1.0, -2.0, 0.5])
    weight = Weight("w", np.zeros(3))
    opt = make()
    if isinstance(opt, optimizers.Adagrad):
        opt.learning_rate = 0.5
    elif not isinstance(opt, optimizers.Adadelta):
        opt.learning_rate = 0.05
    for _ in range(3000):
        opt.apply_gradients([(2 * (weight.value - target), weight)])
    np.testing.assert_allclose(weight.value, target, atol=0.05)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: optimizers.SGD(-1), "learning_rate"),
        (lambda: optimizers.SGD(momentum=2), "momentum"),
        (lambda: optimizers.Adam(beta_1=1.0), "beta_1"),
        (lambda: optimizers.Adam(clipnorm=0), "clipnorm"),
        (lambda: optimizers.get("adamw2"), "unknown optimizer"),
        (lambda: optimizers.deserialize({"class_name": "Nope"}), "unknown optimizer"),
        (lambda: schedules.PiecewiseConstantDecay([1, 2], [1.0]), "one more"),
    ],
)
def test_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_gradient_shape_is_checked():
    with pytest.raises(ValueError, match="shape"):
        optimizers.SGD().apply_gradients([(np.ones(3), Weight("w", np.ones(4)))])


@pytest.mark.parametrize("kernel, args, name", [
    ("rmsprop_update", lambda a, b: (a, a, a, b, None, 0.1, 0.9, 0.1, 0.0, 1e-7), "mg"),
    ("rmsprop_update", lambda a, b: (a, a, a, None, b, 0.1, 0.9, 0.1, 0.9, 1e-7), "mom"),
    ("rmsprop_update", lambda a, b: (a, b, a, None, None, 0.1, 0.9, 0.1, 0.0, 1e-7), "g"),
    ("sgd_update", lambda a, b: (a, a, b, 0.1, 0.9, False), "velocity"),
    ("adam_update", lambda a, b: (a, a, a, a, b, 0.1, 0.9, 0.999, 1e-7), "vhat"),
])
def test_update_kernels_name_a_slot_of_the_wrong_length(kernel, args, name):
    """The C sweeps write every slot over the weight's length: a shorter one
    is refused before the sweep, by name."""
    from fastconv import _kernels
    w, short = np.ones(10, np.float32), np.ones(9, np.float32)
    with pytest.raises(ValueError, match=rf"^{name} must have shape \(10,\), got \(9,\)"):
        getattr(_kernels, kernel)(*args(w, short))
    np.testing.assert_array_equal(w, np.ones(10, np.float32))
