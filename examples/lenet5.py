"""LeNet-5 (LeCun et al., 1998) on MNIST, in its common modern form, with fastconv.

Two 5x5 convolutions of 6 and 16 filters, each followed by 2x2 average
pooling ("subsampling"), then dense layers of 120 and 84 units and a 10-way
softmax; ReLU activations replace the original's scaled tanh, and the first
convolution pads the 28x28 digits to keep their size (the original read
32x32 images). 61,706 parameters.

    python examples/lenet5.py                          # 10 epochs
    python examples/lenet5.py --subset 2000 --epochs 1 # a quick try
"""

import argparse
import time

import numpy as np

import fastconv
from fastconv import layers, optimizers, utils
from fastconv.datasets import mnist
from fastconv.models import Sequential

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--subset", type=int, default=None, help="use the first N images of each split")
parser.add_argument("--threads", type=int, default=None)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--save", default=None, help="save the trained model to this file")
args = parser.parse_args()

if args.threads:
    fastconv.set_num_threads(args.threads)
utils.set_random_seed(args.seed)

(x_train, y_train), (x_test, y_test) = mnist.load_data()
if args.subset:
    x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    x_test, y_test = x_test[: args.subset], y_test[: args.subset]
x_train = (x_train.astype("float32") / 255)[..., np.newaxis]
x_test = (x_test.astype("float32") / 255)[..., np.newaxis]

model = Sequential([
    layers.Conv2D(6, 5, padding="same", activation="relu", input_shape=(28, 28, 1)),
    layers.AveragePooling2D(2),
    layers.Conv2D(16, 5, activation="relu"),
    layers.AveragePooling2D(2),
    layers.Flatten(),
    layers.Dense(120, activation="relu"),
    layers.Dense(84, activation="relu"),
    layers.Dense(10, activation="softmax"),
], name="lenet5")
model.summary()
model.compile(optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])

start = time.perf_counter()
model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=1,
          validation_split=0.1)
seconds = time.perf_counter() - start
loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
print(f"Test loss: {loss:.4f}  Test accuracy: {accuracy:.4f}")
print(f"{seconds / args.epochs:.1f} s per epoch, {fastconv.get_num_threads()} threads")
if args.save:
    model.save(args.save)
