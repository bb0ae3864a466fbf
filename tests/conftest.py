"""Shared setup of the tests: every kernel call uses all the threads it is given.

By default a call whose work is small stays on one thread
(`fastconv.set_parallel_threshold`); the tests' inputs are small, so without
this most calls made with 2 or 3 threads would never run the parallel code
whose results they check. Child processes the tests start keep the default.
"""

import fastconv

fastconv.set_parallel_threshold(0)
