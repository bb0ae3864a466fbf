"""Shared setup of the tests: every kernel call uses all the threads it is
given, and every layer a Winograd method applies to takes it.

By default a call whose work is small stays on one thread
(`fastconv.set_parallel_threshold`), and a layer with too few tiles to pay
for transforming its kernel takes the GEMM (`fastconv.set_winograd_threshold`);
the tests' inputs are small, so without this most calls made with 2 or 3
threads would never run the parallel code, nor most layers the Winograd
kernels, whose results they check. Child processes the tests start keep the
defaults.
"""

import fastconv

fastconv.set_parallel_threshold(0)
fastconv.set_winograd_threshold(0)
