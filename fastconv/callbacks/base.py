"""Callback, the hooks a training loop calls, and CallbackList, which fans them out."""

from __future__ import annotations

__all__ = ["Callback", "CallbackList"]


class Callback:
    """Base class of callbacks; override the hooks you need.

    Attributes
    ----------
    model : the model being trained (set before training starts)
    params : dict
        ``{"verbose", "epochs", "steps"}`` for the running loop.

    Every hook receives ``logs``, a dict of the current averages by name
    ("loss", each metric, and "val_..." ones at the end of an epoch). Hooks
    may add entries to an epoch's logs (as ReduceLROnPlateau adds "lr").
    """

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...

    def on_train_end(self, logs=None): ...

    def on_epoch_begin(self, epoch, logs=None): ...

    def on_epoch_end(self, epoch, logs=None): ...

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch, logs=None): ...

    def on_batch_end(self, batch, logs=None): ...

    def on_test_begin(self, logs=None): ...

    def on_test_end(self, logs=None): ...

    def on_test_batch_begin(self, batch, logs=None): ...

    def on_test_batch_end(self, batch, logs=None): ...

    def on_predict_begin(self, logs=None): ...

    def on_predict_end(self, logs=None): ...

    def on_predict_batch_begin(self, batch, logs=None): ...

    def on_predict_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Calls a hook on every callback in order."""

    def __init__(self, callbacks=None, model=None, params=None):
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must be fastconv.callbacks.Callback instances, got {callback!r}"
                )
            if model is not None:
                callback.set_model(model)
            if params is not None:
                callback.set_params(params)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)

        return call
