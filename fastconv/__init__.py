"""fastconv: fast convolutional networks on the CPU."""

__version__ = "0.1.0"
