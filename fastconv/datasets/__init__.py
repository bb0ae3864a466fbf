"""Standard image-classification datasets, returned as Keras returns them.

Each module has ``load_data(path=None)`` returning ``(x_train, y_train), (x_test, y_test)``
as uint8 NumPy arrays:

- `mnist`: handwritten digits, x of shape (n, 28, 28), y of shape (n,);
- `fashion_mnist`: Zalando's clothing images, same format as MNIST;
- `cifar10`: colour images, x of shape (n, 32, 32, 3), y of shape (n, 1).

Files are looked for in ``path``, then ``$FASTCONV_DATA/<dataset>``, then
``~/.fastconv/datasets/<dataset>``, and downloaded into the last when found nowhere.
`DatasetNotFoundError` (an `OSError`) says where it looked when that fails too.
"""

from fastconv.datasets import cifar10, fashion_mnist, mnist
from fastconv.datasets._files import DatasetNotFoundError

__all__ = ["DatasetNotFoundError", "cifar10", "fashion_mnist", "mnist"]
