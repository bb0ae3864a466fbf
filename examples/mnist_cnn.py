"""Trains a simple convnet on the MNIST dataset: the Keras example, in fastconv.

Keras published 99.25% test accuracy after 12 epochs for this model; with
fastconv it trains on the CPU's cores through C/OpenMP kernels.

    python examples/mnist_cnn.py                  # the full run: 12 epochs
    python examples/mnist_cnn.py --subset 1000 --epochs 1   # a quick try

The data comes from `fastconv.datasets.mnist.load_data` ($FASTCONV_DATA/mnist,
~/.fastconv/datasets/mnist, or a download).
"""

import argparse
import time

import numpy as np

import fastconv
from fastconv import layers, optimizers, utils
from fastconv.datasets import mnist
from fastconv.models import Sequential

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--subset", type=int, default=None, help="use the first N images of each split")
parser.add_argument("--threads", type=int, default=None)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--optimizer", default="adadelta",
                    help="adadelta (Keras's example: rate 1.0) or any other optimizer name")
parser.add_argument("--save", default=None, help="save the trained model to this file")
args = parser.parse_args()

if args.threads:
    fastconv.set_num_threads(args.threads)
utils.set_random_seed(args.seed)
num_classes = 10

# The data, split between train and test sets; channels last, scaled to [0, 1].
(x_train, y_train), (x_test, y_test) = mnist.load_data()
if args.subset:
    x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    x_test, y_test = x_test[: args.subset], y_test[: args.subset]
x_train = (x_train.astype("float32") / 255)[..., np.newaxis]
x_test = (x_test.astype("float32") / 255)[..., np.newaxis]
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

y_train = utils.to_categorical(y_train, num_classes)
y_test = utils.to_categorical(y_test, num_classes)

model = Sequential([
    layers.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)),
    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Dropout(0.25),
    layers.Flatten(),
    layers.Dense(128, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(num_classes, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer=optimizers.get(args.optimizer),
              metrics=["accuracy"])

start = time.perf_counter()
history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                    verbose=1, validation_data=(x_test, y_test))
seconds = time.perf_counter() - start
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
print(f"{seconds / args.epochs:.1f} s per epoch (validation included), "
      f"{fastconv.get_num_threads()} threads")
if args.save:
    model.save(args.save)
