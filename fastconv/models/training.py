"""Model: compile, fit, evaluate and predict over a stack of layers.

The loop is Keras's: shuffle once per epoch from the model's own generator,
run each batch forward in training mode, take the loss and its gradient,
run the layers backward, add the regularisers' gradients and let the
optimizer update every trainable weight in place. Logs are sample-weighted
running means, as Keras reports them.

Speed: a batch is gathered into one reused float32 buffer and handed to the
kernels without further copies; the backward pass stops at the first layer
that has trainable weights, so frozen feature extractors cost only their
forward pass.
"""

from __future__ import annotations

import math

import numpy as np

from fastconv import _random, losses, metrics, optimizers
from fastconv.callbacks import CallbackList, History, ProgbarLogger
from fastconv.layers import ActivatedLayer, Dropout

__all__ = ["Model"]


def _as_batch_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0:
        raise ValueError(f"{name} must have a batch axis, got a scalar")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def _check_verbose(verbose) -> int:
    """0, 1 or 2; Keras's "auto" means the progress bar."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _check_batch_size(batch_size, name="batch_size") -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{name} must be a positive int, got {batch_size!r}")
    return int(batch_size)


class _Mean:
    """Sample-weighted running mean of per-batch values."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value: float, n: int) -> None:
        self.total += value * n
        self.count += n

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class Model:
    """Training and inference for models; `Sequential` supplies the layers.

    Subclasses provide ``layers``, ``build(input_shape)``, ``built``,
    ``output_shape`` and ``_forward(x, training)``.
    """

    def __init__(self, name: str | None = None):
        self.name = name
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history: History | None = None
        self.trainable = True
        self._metric_ids: list = []
        # Shuffling and dropout draw from this generator only; its state is
        # saved with the model, so training resumed after loading repeats
        # the draws that uninterrupted training would have made.
        self.rng = _random.spawn()
        self._batch_buffers: dict[tuple, np.ndarray] = {}

    # ---- weights --------------------------------------------------------

    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for layer in self.layers for w in layer._weights if id(w) not in trainable]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every layer's weights, layer by layer."""
        return [array for layer in self.layers for array in layer.get_weights()]

    def set_weights(self, weights) -> None:
        """Set every layer's weights from a list shaped like `get_weights`'s."""
        weights = list(weights)
        expected = sum(len(layer._weights) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} has {expected} weights, got {len(weights)}")
        start = 0
        for layer in self.layers:
            stop = start + len(layer._weights)
            layer.set_weights(weights[start:stop])
            start = stop

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    # ---- compile --------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs) -> None:
        """Choose the optimizer, loss and metrics.

        Parameters
        ----------
        optimizer : str or Optimizer, default "rmsprop"
            Passing the same optimizer object again keeps its state.
        loss : str or Loss
        metrics : list of str or Metric, optional
            "accuracy" picks the binary, categorical or sparse accuracy as
            Keras does.
        """
        if kwargs:
            raise TypeError(f"compile got unsupported arguments {sorted(kwargs)}")
        if loss is None:
            raise ValueError("compile needs a loss")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, dict)) or not hasattr(metrics, "__iter__"):
            raise TypeError(f"metrics must be a list, got {metrics!r}")
        self._metric_ids = list(metrics)
        self.compiled = True

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"compile the model before calling {what}()")

    def _make_metrics(self):
        return [metrics.get(m, self.loss, self.output_shape) for m in self._metric_ids]

    @property
    def metrics_names(self) -> list[str]:
        return ["loss", *(m.name for m in self._make_metrics())] if self.compiled else []

    def _fused_loss(self):
        """The logits form of the loss when the output activation allows it, else None."""
        last = self.layers[-1] if self.layers else None
        loss = self.loss
        if (
            isinstance(last, ActivatedLayer)
            and loss.fused_activation is not None
            and not getattr(loss, "from_logits", True)
            and last.activation.name == loss.fused_activation
        ):
            return loss.with_logits()
        return None

    # ---- one batch ------------------------------------------------------

    def _batch_loss(self, y, out, fused) -> float:
        """The batch's mean loss, from the logits when the loss is fused."""
        if fused is not None:
            return fused(y, self.layers[-1].logits)
        return self.loss(y, out)

    def _regularization_loss(self) -> float:
        return sum(layer.regularization_loss() for layer in self.layers)

    def _train_step(self, x, y, fused, trainable, first_trainable) -> tuple[float, np.ndarray]:
        """Forward, backward and one optimizer update; returns (loss, output)."""
        out = self._forward(x, training=True)
        value = self._batch_loss(y, out, fused) + self._regularization_loss()
        if not trainable:
            return value, out
        last = self.layers[-1]
        if fused is not None:
            dy = last.backward_from_logits(fused.gradient(y, last.logits))
        else:
            dy = last.backward(self.loss.gradient(y, out))
        self._backward_below_last(dy, first_trainable)
        for w in trainable:
            if w.regularizer is not None:
                w.regularizer.add_gradient(w.value, w.grad)
        self.optimizer.apply_gradients([(w.grad, w) for w in trainable])
        return value, out

    def _backward_below_last(self, dy, first_trainable) -> None:
        """Runs the layers below the last backward, down to the first
        trainable one (those below need no gradient). A layer above a
        ReLU-activated one takes the gradient on through that ReLU in its own
        pass where it can (`takes_relu_backward`: max pooling, and Conv2D's
        input gradient), which masks as the ReLU's backward would: one pass
        over the activations fewer, the same numbers (a step's ReLU backward
        0.33 -> 0.01 ms for the default model, 1.5 -> 0.01 for the Keras
        example); the ReLU layer then starts from its pre-activation's
        gradient (`backward_from_logits`). A convolution whose pooling ran in
        its forward kernel call runs both backward passes in one
        (`Conv2D.backward_pooled`)."""
        layers = self.layers

        def through_relu(i):  # whether layer i takes the ReLU below it
            return (
                i > first_trainable
                and getattr(layers[i], "takes_relu_backward", False)
                and isinstance(layers[i - 1], ActivatedLayer)
                and layers[i - 1].fused_relu
            )

        from_logits = False  # whether dy is already layer i's pre-activation gradient
        dropout = None  # the mask of a Dropout above layer i that it takes in its pass
        i = len(layers) - 2
        while i >= first_trainable:
            layer, below = layers[i], layers[i - 1]
            if (i > first_trainable and isinstance(layer, Dropout) and layer.mask() is not None
                    and getattr(below, "takes_dropout", False)):
                dropout = layer.mask()  # the pooling below applies it
                i -= 1
                continue
            kwargs = {} if dropout is None else {"dropout": dropout}
            dropout = None
            if i > first_trainable and getattr(below, "relu_by", None) is layer:
                dy = below.backward(dy)  # through the ReLU too, whose pass it ran
                from_logits = False
                i -= 2
                continue
            if i > first_trainable and getattr(below, "pooled_by", None) is layer:
                from_logits = through_relu(i - 1)
                dy = below.backward_pooled(dy, relu_input=from_logits, **kwargs)
                i -= 2
                continue
            if from_logits and through_relu(i):
                dy = layer.backward_from_logits(dy, relu_input=True)
            elif from_logits:
                dy = layer.backward_from_logits(dy)
            elif through_relu(i):
                dy = layer.backward_through_relu(dy, **kwargs)
            else:
                dy = layer.backward(dy, **kwargs)
            from_logits = through_relu(i)
            i -= 1

    def _gather(self, x, index) -> np.ndarray:
        """``x[index]`` in the model's dtype, gathered into a buffer kept per
        batch shape (training, last partial and validation batches)."""
        dtype = self.layers[0].dtype
        if x.dtype != dtype:
            return np.asarray(x[index], dtype=dtype)
        shape = (len(index), *x.shape[1:])
        buffer = self._batch_buffers.get(shape)
        if buffer is None:
            buffer = self._batch_buffers[shape] = np.empty(shape, dtype=dtype)
        return np.take(x, index, axis=0, out=buffer)

    # ---- fit ------------------------------------------------------------

    def _prepare(self, x, y=None):
        x = _as_batch_array(x, "x")
        if not self.built:
            self.build((None, *x.shape[1:]))
        if y is not None:
            y = _as_batch_array(y, "y")
            if len(y) != len(x):
                raise ValueError(f"x and y must hold the same number of samples, got "
                                 f"{len(x)} and {len(y)}")
        return x, y

    def fit(
        self,
        x=None,
        y=None,
        batch_size=32,
        epochs=1,
        verbose=1,
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        validation_batch_size=None,
        steps_per_epoch=None,
    ) -> History:
        """Train for ``epochs - initial_epoch`` epochs; returns the `History`.

        Parameters
        ----------
        x : array of shape (n, ...)
        y : array of shape (n, ...)
        batch_size : int, default 32
        epochs : int, default 1
            The index of the last epoch (training runs from ``initial_epoch``).
        verbose : 0, 1, 2 or "auto"
            0 silent, 1 (or "auto") a progress bar, 2 one line per epoch.
        callbacks : list of Callback
        validation_split : float in [0, 1)
            The last fraction of x and y, taken before shuffling, is held out.
        validation_data : (x_val, y_val), optional
            Overrides ``validation_split``.
        shuffle : bool, default True
        initial_epoch : int, default 0
        validation_batch_size : int, optional
            Defaults to ``batch_size``.

        Returns
        -------
        History
            ``history.history`` maps "loss", each metric and their "val_"
            forms to one value per epoch.
        """
        self._require_compiled("fit")
        verbose = _check_verbose(verbose)
        if steps_per_epoch is not None:
            raise ValueError("steps_per_epoch is only for generators; pass arrays instead")
        batch_size = _check_batch_size(batch_size)
        val_batch_size = _check_batch_size(validation_batch_size or batch_size,
                                           "validation_batch_size")
        x, y = self._prepare(x, y)
        if y is None:
            raise ValueError("fit needs targets y")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            x_val, y_val = self._prepare(*validation_data)
        elif validation_split:
            split = int(len(x) * (1 - validation_split))
            x, x_val, y, y_val = x[:split], x[split:], y[:split], y[split:]
        else:
            x_val = y_val = None
        n = len(x)
        if n == 0:
            raise ValueError("fit needs at least one training sample")
        steps = math.ceil(n / batch_size)

        self.history = History()
        # After the user's callbacks, as in Keras, so that entries they add
        # to an epoch's logs (ReduceLROnPlateau's "lr") are recorded and shown.
        callback_list = [*(callbacks or []), self.history]
        if verbose:
            callback_list.append(ProgbarLogger())
        params = {"verbose": verbose, "epochs": epochs, "steps": steps, "mode": "fit"}
        cbs = CallbackList(callback_list, model=self, params=params)

        fused = self._fused_loss()
        trainable = self.trainable_weights
        self.optimizer.build(trainable)
        first_trainable = next(
            (i for i, layer in enumerate(self.layers) if layer.trainable_weights), 0
        ) if trainable else 0
        for i, layer in enumerate(self.layers):  # nobody reads the lowest input gradient
            layer.input_grad_needed = i != first_trainable
        metric_objects = self._make_metrics()

        self.stop_training = False
        cbs.on_train_begin()
        logs: dict = {}
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            loss_mean = _Mean()
            for m in metric_objects:
                m.reset_state()
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            for step in range(steps):
                index = order[step * batch_size : (step + 1) * batch_size]
                cbs.on_train_batch_begin(step)
                yb = y[index]
                value, out = self._train_step(
                    self._gather(x, index), yb, fused, trainable, first_trainable
                )
                loss_mean.update(value, len(index))
                for m in metric_objects:
                    m.update_state(yb, out)
                logs = {"loss": loss_mean.result(), **{m.name: m.result() for m in metric_objects}}
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            logs = dict(logs)
            if x_val is not None:
                val_logs = self._run_evaluation(x_val, y_val, val_batch_size, CallbackList())
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs)
        return self.history

    # ---- evaluate and predict ---------------------------------------------

    def _run_evaluation(self, x, y, batch_size, cbs) -> dict:
        fused = self._fused_loss()
        metric_objects = self._make_metrics()
        loss_mean = _Mean()
        regularization = self._regularization_loss()
        logs: dict = {}
        cbs.on_test_begin()
        for step, start in enumerate(range(0, len(x), batch_size)):
            cbs.on_test_batch_begin(step)
            index = np.arange(start, min(start + batch_size, len(x)))
            yb = y[index]
            out = self._forward(self._gather(x, index), training=False)
            loss_mean.update(self._batch_loss(yb, out, fused) + regularization, len(index))
            for m in metric_objects:
                m.update_state(yb, out)
            logs = {"loss": loss_mean.result(), **{m.name: m.result() for m in metric_objects}}
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, callbacks=None,
                 return_dict=False):
        """The loss (and metrics) on ``x``, ``y`` in inference mode.

        Returns
        -------
        float, or ``[loss, *metrics]`` when metrics were compiled, or a dict
        with ``return_dict=True``.
        """
        self._require_compiled("evaluate")
        verbose = _check_verbose(verbose)
        batch_size = _check_batch_size(batch_size)
        x, y = self._prepare(x, y)
        if y is None or len(x) == 0:
            raise ValueError("evaluate needs at least one sample and targets y")
        callback_list = list(callbacks or [])
        if verbose:
            callback_list.insert(0, ProgbarLogger())
        steps = math.ceil(len(x) / batch_size)
        params = {"verbose": verbose, "epochs": 1, "steps": steps, "mode": "evaluate"}
        logs = self._run_evaluation(x, y, batch_size, CallbackList(callback_list, self, params))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=32, verbose=0, callbacks=None) -> np.ndarray:
        """Outputs for ``x`` in inference mode, batch by batch.

        Returns
        -------
        ndarray of shape (n, *output_shape[1:])
        """
        batch_size = _check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x, _ = self._prepare(x)
        callback_list = list(callbacks or [])
        if verbose:
            callback_list.insert(0, ProgbarLogger())
        steps = math.ceil(len(x) / batch_size)
        params = {"verbose": verbose, "epochs": 1, "steps": steps, "mode": "predict"}
        cbs = CallbackList(callback_list, self, params)
        cbs.on_predict_begin()
        result = None
        for step, start in enumerate(range(0, len(x), batch_size)):
            cbs.on_predict_batch_begin(step)
            index = np.arange(start, min(start + batch_size, len(x)))
            out = self._forward(self._gather(x, index), training=False)
            if result is None:
                result = np.empty((len(x), *out.shape[1:]), dtype=out.dtype)
            result[start : start + len(index)] = out
            cbs.on_predict_batch_end(step)
        cbs.on_predict_end()
        if result is None:
            shape = self.output_shape[1:]
            result = np.empty((0, *shape), dtype=self.layers[-1].dtype)
        return result

    def __call__(self, x, training: bool = False) -> np.ndarray:
        x, _ = self._prepare(x)
        return self._forward(x.astype(self.layers[0].dtype, copy=False), training=training)

    # ---- saving ---------------------------------------------------------

    def save(self, filepath, include_optimizer: bool = True) -> None:
        """Write the model, its weights and optimizer state to one file
        (see `fastconv.saving`)."""
        from fastconv import saving  # saving builds models, so import it when used

        saving.save_model(self, filepath, include_optimizer=include_optimizer)

    def save_weights(self, filepath) -> None:
        """Write only the weights (see `fastconv.saving.save_weights`)."""
        from fastconv import saving

        saving.save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        """Read weights written by `save_weights` or `save` into this model."""
        from fastconv import saving

        saving.load_weights(self, filepath)
