"""The text table `Model.summary` prints, in Keras's layout."""

from __future__ import annotations

__all__ = ["print_summary"]


def _shape_text(shape) -> str:
    return "multiple" if shape is None else str(tuple(shape)).replace(",)", ")")


def print_summary(model, line_length=None, positions=None, print_fn=None) -> None:
    """Print one row per layer (name and type, output shape, parameters) and
    the totals of all, trainable and non-trainable parameters.

    Parameters
    ----------
    line_length : int, default 65
    positions : sequence of 3 floats or ints, default (.45, .85, 1.)
        Right ends of the columns, as fractions of the line or absolute.
    print_fn : callable, default print
    """
    print_fn = print_fn or print
    line_length = line_length or 65
    positions = positions or (0.45, 0.85, 1.0)
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]

    def row(fields):
        # Each cell starts with a space and is cut one short of its column's
        # end, so long names are truncated rather than shifting the table.
        line = ""
        for field, end in zip(fields, positions):
            line = (line + " " + str(field))[: end - 1]
            line += " " * (end - len(line))
        print_fn(line)

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * line_length)
    row(["Layer (type)", "Output Shape", "Param #"])
    print_fn("=" * line_length)
    for i, layer in enumerate(model.layers):
        params = layer.count_params() if layer.built else 0
        row([f"{layer.name} ({type(layer).__name__})", _shape_text(layer.output_shape), params])
        if i < len(model.layers) - 1:
            print_fn(" " * line_length)
    print_fn("=" * line_length)
    trainable = sum(w.value.size for w in model.trainable_weights)
    total = model.count_params()
    print_fn(f"Total params: {total:,}")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn("_" * line_length)
