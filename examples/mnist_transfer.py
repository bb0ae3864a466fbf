"""Transfer learning on MNIST: the Keras example mnist_transfer_cnn.py, in fastconv.

1. Train a small convnet on the digits 0-4.
2. Freeze its convolutional (feature) layers.
3. Fine-tune the dense (classification) layers on the digits 5-9.

Only the dense layers learn in step 3, and fastconv runs no backward pass
through the frozen layers, so an epoch there costs little more than the
forward pass.

    python examples/mnist_transfer.py                          # 5 + 5 epochs
    python examples/mnist_transfer.py --subset 2000 --epochs 1 # a quick try
"""

import argparse
import time

import numpy as np

import fastconv
from fastconv import layers, optimizers, utils
from fastconv.datasets import mnist
from fastconv.models import Sequential

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=5, help="epochs of each of the two phases")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--subset", type=int, default=None, help="use the first N images of each split")
parser.add_argument("--threads", type=int, default=None)
parser.add_argument("--seed", type=int, default=0)
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

# Two datasets: digits below 5, and digits 5 and above (relabelled 0-4).
lt5_train, lt5_test = y_train < 5, y_test < 5
x_lt5, y_lt5 = x_train[lt5_train], y_train[lt5_train]
x_lt5_test, y_lt5_test = x_test[lt5_test], y_test[lt5_test]
x_gte5, y_gte5 = x_train[~lt5_train], y_train[~lt5_train] - 5
x_gte5_test, y_gte5_test = x_test[~lt5_test], y_test[~lt5_test] - 5

feature_layers = [
    layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"),
    layers.MaxPooling2D(pool_size=2),
    layers.Dropout(0.25),
    layers.Flatten(),
]
classification_layers = [
    layers.Dense(128, activation="relu"),
    layers.Dropout(0.5),
    layers.Dense(5, activation="softmax"),
]
model = Sequential(feature_layers + classification_layers)


def train(x, y, x_test, y_test, title):
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizers.Adadelta(),
                  metrics=["accuracy"])
    trainable = sum(w.value.size for w in model.trainable_weights)
    print(f"\n{title}: {len(x)} training images, {trainable:,} trainable parameters")
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=1,
              validation_data=(x_test, y_test))
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test loss: {loss:.4f}  Test accuracy: {accuracy:.4f}  "
          f"({seconds / args.epochs:.1f} s per epoch)")
    return accuracy


# Train the whole model on the digits 0-4.
train(x_lt5, y_lt5, x_lt5_test, y_lt5_test, "Digits 0-4, all layers")

# Freeze the feature layers and retrain the classifier on the digits 5-9.
for layer in feature_layers:
    layer.trainable = False
train(x_gte5, y_gte5, x_gte5_test, y_gte5_test, "Digits 5-9, feature layers frozen")
