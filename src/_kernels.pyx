# The Cython boundary of the C kernels: check that every buffer has the shape
# its descriptor implies, allocate the outputs, release the GIL around the
# kernel, and turn a status code into a Python exception. The friendly
# argument handling (dtype conversion, padding words, messages in the user's
# terms) lives in fastconv.ops; this layer guarantees memory safety on its own
# so that no call into it can read or write out of bounds.
from libc.stddef cimport ptrdiff_t

import numbers
import os

import numpy as np

# ---- threads and configuration ----------------------------------------------

cdef int _n_threads = 0

# More threads than this gain nothing on any machine, and an OpenMP runtime
# asked for tens of thousands of them can exhaust the process's thread limit,
# which libgomp answers with a crash.
MAX_THREADS = 1024


def default_num_threads():
    """Threads used when none were set: $OMP_NUM_THREADS, else the processors."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return min(int(value), MAX_THREADS)
    return min(max(1, fc_default_threads()), MAX_THREADS)


def _check_threads(value, str name):
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    if value > MAX_THREADS:
        raise ValueError(f"{name} must be at most {MAX_THREADS}, got {value}")
    return int(value)


def set_num_threads(n):
    global _n_threads
    _n_threads = _check_threads(n, "n")


def get_num_threads():
    global _n_threads
    if _n_threads == 0:
        _n_threads = default_num_threads()
    return _n_threads


cdef inline int _resolve_threads(object n_threads) except -1:
    if n_threads is None:
        return get_num_threads()
    return _check_threads(n_threads, "n_threads")


SIMD_PATHS = tuple(fc_simd_name(p).decode() for p in range(FC_SIMD_COUNT))


def simd_available():
    """Names of the SIMD paths this build and CPU can run."""
    return tuple(fc_simd_name(p).decode() for p in range(FC_SIMD_COUNT) if fc_simd_available(p))


def simd_current():
    return fc_simd_name(fc_simd_current()).decode()


def simd_select(str name):
    if name not in SIMD_PATHS:
        raise ValueError(f"SIMD path must be one of {SIMD_PATHS}, got {name!r}")
    if fc_simd_select(SIMD_PATHS.index(name)) != FC_OK:
        raise ValueError(
            f"SIMD path {name!r} is not available on this build and CPU; "
            f"available: {simd_available()}"
        )


WINOGRAD_MODES = tuple(fc_winograd_name(m).decode() for m in range(FC_WINOGRAD_COUNT))


def winograd_current():
    return fc_winograd_name(fc_winograd_current()).decode()


def winograd_select(str mode):
    if mode not in WINOGRAD_MODES:
        raise ValueError(f"Winograd mode must be one of {WINOGRAD_MODES}, got {mode!r}")
    fc_winograd_select(WINOGRAD_MODES.index(mode))


def _checked_scale(scale):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    if not 0 <= scale <= 1e6:  # NaN fails too
        raise ValueError(f"scale must be between 0 and 1e6, got {scale!r}")
    return float(scale)


def winograd_threshold_current():
    return fc_winograd_threshold_current()


def winograd_threshold_select(scale):
    fc_winograd_threshold_select(_checked_scale(scale))


def parallel_threshold_current():
    return fc_parallel_threshold_current()


def parallel_threshold_select(scale):
    fc_parallel_threshold_select(_checked_scale(scale))


def openmp_enabled():
    return bool(fc_openmp_enabled())


def stream_min_bytes():
    """Bytes from which a GEMM's output bypasses the cache (fc_stream_min_bytes)."""
    return fc_stream_min_bytes()


def compiler():
    return fc_compiler().decode()


def peak_gflops(n_threads=None, double seconds=0.2):
    cdef int nt = _resolve_threads(n_threads)
    cdef double result
    with nogil:
        result = fc_peak_gflops(nt, seconds)
    return result


def triad_gbs(n_threads=None, Py_ssize_t n_floats=32 * 1024 * 1024, int repeats=5):
    cdef int nt = _resolve_threads(n_threads)
    cdef double result
    with nogil:
        result = fc_triad_gbs(nt, n_floats, repeats)
    if result < 0:
        raise MemoryError(f"no memory for three arrays of {n_floats} floats")
    return result


cdef int _check(int status) except -1:
    if status == FC_OK:
        return 0
    message = fc_strerror(status).decode()
    if status == FC_ERR_NOMEM:
        raise MemoryError(message)
    raise RuntimeError(message)


cdef class _OutputBlock:
    """The memory of one output array, from fastconv's buffer pool.

    The array is a view of this block (through the buffer protocol) and keeps
    it alive; when the last view goes, the block returns to the pool, so the
    next call of the same size reuses memory already mapped instead of
    faulting in fresh pages. Blocks start on a 64-byte boundary (NumPy's
    allocator promises 16): a whole cache line per vector store, which
    streaming stores require.
    """
    cdef float *data
    cdef Py_ssize_t n
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t n):
        self.data = <float *>fc_buffer_alloc(<size_t>(n if n > 0 else 1) * sizeof(float))
        if self.data == NULL:
            raise MemoryError(f"no memory for an output of {n} floats")
        self.n = n
        self.shape[0] = n
        self.strides[0] = sizeof(float)

    def __dealloc__(self):
        fc_buffer_free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = self.data
        view.obj = self
        view.len = self.n * sizeof(float)
        view.readonly = 0
        view.itemsize = sizeof(float)
        view.format = b"f"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef object _empty(tuple shape):
    cdef Py_ssize_t n = 1
    for dim in shape:
        n *= dim
    return np.frombuffer(_OutputBlock(n), dtype=np.float32, count=n).reshape(shape)


def empty(tuple shape):
    """A new float32 array of shape whose memory comes from fastconv's buffer
    pool, as the kernels' outputs' does (see _OutputBlock): for the outputs
    of fastconv.ops' elementwise passes."""
    return _empty(shape)


cdef object _empty_bytes(tuple shape):
    """_empty's uint8 twin, from the same pool."""
    cdef Py_ssize_t n = 1
    for dim in shape:
        n *= dim
    return np.frombuffer(_OutputBlock((n + 3) // 4), dtype=np.uint8, count=n).reshape(shape)


cdef inline void _expect(tuple got, tuple expected, str name) except *:
    if got != expected:
        raise ValueError(f"{name} must have shape {expected}, got {got}")


# The kernels compute sizes, offsets and indices in ptrdiff_t. Descriptors are
# checked in Python integers first, and refused when a size, or a product of
# sizes the kernels form (an operand's element count, the im2col matrix's),
# reaches this bound: that keeps all of that arithmetic far from overflow.
cdef object _SIZE_LIMIT = 2**62


cdef object _product(tuple sizes):
    cdef object p = 1
    for s in sizes:
        p *= max(s, 1)  # empty operands still index with their other sizes
    return p


cdef tuple _ints(object values, Py_ssize_t count, str name):
    """values as a tuple of count Python ints (TypeError for non-integers)."""
    if not isinstance(values, tuple) or len(values) != count:
        raise ValueError(f"{name} must be a tuple of {count} ints, got {values!r}")
    for v in values:
        if type(v) is int:  # the usual case, without the slow ABC check
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must hold ints, got {values!r}")
    return tuple(int(v) for v in values)


cdef object _out_size(object padded, object extent, object stride, str what):
    if extent > padded:
        raise ValueError(f"{what} of extent {extent} is larger than the padded input {padded}")
    return (padded - extent) // stride + 1


cdef inline tuple _shape4(const float[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


# Pointers to the first element, or NULL for an empty buffer (never dereferenced).
cdef inline const float *_p4(const float[:, :, :, ::1] a):
    return NULL if a.size == 0 else &a[0, 0, 0, 0]

cdef inline float *_w4(float[:, :, :, ::1] a):
    return NULL if a.size == 0 else &a[0, 0, 0, 0]

cdef inline const float *_p2(const float[:, ::1] a):
    return NULL if a.size == 0 else &a[0, 0]

cdef inline float *_w2(float[:, ::1] a):
    return NULL if a.size == 0 else &a[0, 0]

cdef inline const float *_p1(const float[::1] a):
    return NULL if a.shape[0] == 0 else &a[0]

cdef inline float *_w1(float[::1] a):
    return NULL if a.shape[0] == 0 else &a[0]

cdef float[::1] _slot(object a, ptrdiff_t n, str name):
    """An optimizer's optional slot: a 1-D float32 view of length n, or None."""
    if a is None:
        return None
    cdef float[::1] view = a
    _expect((view.shape[0],), (n,), name)
    return view

cdef inline float *_slot_ptr(float[::1] a):
    return NULL if a is None else _w1(a)


# ---- GEMM -------------------------------------------------------------------

def gemm(const float[:, ::1] a, const float[:, ::1] b, bias=None, bint relu=False,
         n_threads=None, bint trans_a=False, bint trans_b=False):
    """c = op(a) @ op(b) (+ bias) (ReLU), float32, C-contiguous; op transposes
    when asked, reading the stored matrix in place."""
    cdef fc_gemm_desc d
    cdef const float[::1] bv
    cdef const float *bias_p = NULL
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t ka = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if ka != kb:
        raise ValueError(
            f"op(a) has {ka} columns but op(b) has {kb} rows "
            f"(a {a.shape[0]}x{a.shape[1]}, b {b.shape[0]}x{b.shape[1]}, "
            f"trans_a={trans_a}, trans_b={trans_b})"
        )
    if bias is not None:
        bv = bias
        _expect((bv.shape[0],), (n,), "bias")
        bias_p = _p1(bv)
    d.m, d.k, d.n = m, ka, n
    d.lda, d.ldb, d.ldc = a.shape[1], b.shape[1], n
    d.relu = relu
    d.trans_a, d.trans_b = trans_a, trans_b
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.m, d.n))
    cdef float[:, ::1] c = out
    cdef const float *a_p = _p2(a)
    cdef const float *b_p = _p2(b)
    cdef float *c_p = _w2(c)
    cdef int status
    with nogil:
        status = fc_gemm_f32(&d, a_p, b_p, bias_p, c_p, nt)
    _check(status)
    return out


# ---- convolution ------------------------------------------------------------

cdef fc_conv2d_desc _conv_desc(tuple x_shape, tuple w_shape, tuple params) except *:
    n, h, w, c = _ints(x_shape, 4, "x_shape")
    kh, kw, wc, f = _ints(w_shape, 4, "w_shape")
    sh, sw, dh, dw, pt, pb, pl, pr = _ints(params, 8, "params")
    if wc != c:
        raise ValueError(f"w must have {c} input channels, got shape {w_shape}")
    if min(n, h, w, c, f) < 0 or min(kh, kw, sh, sw, dh, dw) < 1:
        raise ValueError(f"invalid convolution sizes x {x_shape}, w {w_shape}, params {params}")
    if min(pt, pb, pl, pr) < 0:
        raise ValueError(f"padding must not be negative, got {params[4:]}")
    hp, wp = h + pt + pb, w + pl + pr
    ho = _out_size(hp, (kh - 1) * dh + 1, sh, "kernel")
    wo = _out_size(wp, (kw - 1) * dw + 1, sw, "kernel")
    if max(hp, wp, sh, sw, dh, dw, _product((n, hp, wp, c)), _product((kh, kw, c, f)),
           _product((n, ho, wo, f)), _product((n, ho, wo, kh, kw, c))) >= _SIZE_LIMIT:
        raise ValueError(f"convolution too large: x {x_shape}, w {w_shape}, params {params}")
    cdef fc_conv2d_desc d
    d.n, d.h, d.w, d.c = n, h, w, c
    d.kh, d.kw, d.f = kh, kw, f
    d.sh, d.sw, d.dh, d.dw, d.pt, d.pb, d.pl, d.pr = sh, sw, dh, dw, pt, pb, pl, pr
    d.ho, d.wo = ho, wo
    d.relu = 0
    return d


def conv2d_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, b,
                   tuple params, bint relu=False, n_threads=None):
    """y = conv(x, w) + b (ReLU). params = (sh, sw, dh, dw, pt, pb, pl, pr)."""
    cdef fc_conv2d_desc d = _conv_desc(_shape4(x), _shape4(w), params)
    d.relu = relu
    cdef const float[::1] bv
    cdef const float *b_p = NULL
    if b is not None:
        bv = b
        _expect((bv.shape[0],), (d.f,), "b")
        b_p = _p1(bv)
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.n, d.ho, d.wo, d.f))
    cdef float[:, :, :, ::1] y = out
    cdef const float *x_p = _p4(x)
    cdef const float *w_p = _p4(w)
    cdef float *y_p = _w4(y)
    cdef int status
    with nogil:
        status = fc_conv2d_forward_f32(&d, x_p, w_p, b_p, y_p, nt)
    _check(status)
    return out


def conv2d_backward_input(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] w,
                          tuple x_shape, tuple params, n_threads=None):
    """dx for conv2d_forward; x_shape = (n, h, w, c) of the forward input."""
    cdef fc_conv2d_desc d = _conv_desc(x_shape, _shape4(w), params)
    _expect(_shape4(dy), (d.n, d.ho, d.wo, d.f), "dy")
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.n, d.h, d.w, d.c))
    cdef float[:, :, :, ::1] dx = out
    cdef const float *dy_p = _p4(dy)
    cdef const float *w_p = _p4(w)
    cdef float *dx_p = _w4(dx)
    cdef int status
    with nogil:
        status = fc_conv2d_backward_input_f32(&d, dy_p, w_p, dx_p, nt)
    _check(status)
    return out


def conv2d_backward_weight(const float[:, :, :, ::1] x, const float[:, :, :, ::1] dy,
                           tuple w_shape, tuple params, n_threads=None):
    """(dw, db) for conv2d_forward; w_shape = (kh, kw, c, f)."""
    cdef fc_conv2d_desc d = _conv_desc(_shape4(x), w_shape, params)
    _expect(_shape4(dy), (d.n, d.ho, d.wo, d.f), "dy")
    cdef int nt = _resolve_threads(n_threads)
    dw_out = _empty((d.kh, d.kw, d.c, d.f))
    db_out = _empty((d.f,))
    cdef float[:, :, :, ::1] dw = dw_out
    cdef float[::1] db = db_out
    cdef int status
    if d.n * d.ho * d.wo == 0:  # an empty batch has zero gradients
        dw_out.fill(0)
        db_out.fill(0)
        return dw_out, db_out
    cdef const float *x_p = _p4(x)
    cdef const float *dy_p = _p4(dy)
    cdef float *dw_p = _w4(dw)
    cdef float *db_p = _w1(db)
    with nogil:
        status = fc_conv2d_backward_weight_f32(&d, x_p, dy_p, dw_p, db_p, nt)
    _check(status)
    return dw_out, db_out


def conv2d_backward(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x,
                    const float[:, :, :, ::1] w, tuple params, bint input_grad=True,
                    n_threads=None, bint relu=False):
    """(dx, dw, db) for conv2d_forward, dx None unless input_grad. With relu,
    x is a ReLU's output and dx is taken through that ReLU (0 where x <= 0)."""
    if not input_grad:
        return (None,) + conv2d_backward_weight(x, dy, _shape4(w), params, n_threads)
    cdef fc_conv2d_desc d = _conv_desc(_shape4(x), _shape4(w), params)
    d.relu = relu
    _expect(_shape4(dy), (d.n, d.ho, d.wo, d.f), "dy")
    cdef int nt = _resolve_threads(n_threads)
    dx_out = _empty((d.n, d.h, d.w, d.c))
    dw_out = _empty((d.kh, d.kw, d.c, d.f))
    db_out = _empty((d.f,))
    if d.n * d.ho * d.wo == 0:  # an empty batch has zero gradients
        dx_out.fill(0)
        dw_out.fill(0)
        db_out.fill(0)
        return dx_out, dw_out, db_out
    cdef float[:, :, :, ::1] dx = dx_out
    cdef float[:, :, :, ::1] dw = dw_out
    cdef float[::1] db = db_out
    cdef const float *dy_p = _p4(dy)
    cdef const float *x_p = _p4(x)
    cdef const float *w_p = _p4(w)
    cdef float *dx_p = _w4(dx)
    cdef float *dw_p = _w4(dw)
    cdef float *db_p = _w1(db)
    cdef int status
    with nogil:
        status = fc_conv2d_backward_f32(&d, x_p, dy_p, w_p, dx_p, dw_p, db_p, nt)
    _check(status)
    return dx_out, dw_out, db_out


# ---- pooling ----------------------------------------------------------------

cdef fc_pool2d_desc _pool_desc(tuple x_shape, tuple params) except *:
    n, h, w, c = _ints(x_shape, 4, "x_shape")
    kh, kw, sh, sw, pt, pb, pl, pr = _ints(params, 8, "params")
    if min(n, c) < 0 or min(h, w, kh, kw, sh, sw) < 1:
        raise ValueError(f"invalid pooling sizes x {x_shape}, params {params}")
    if min(pt, pb, pl, pr) < 0 or max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise ValueError(f"padding must be in [0, pool size) on every side, got {params[4:]}")
    hp, wp = h + pt + pb, w + pl + pr
    ho = _out_size(hp, kh, sh, "pool window")
    wo = _out_size(wp, kw, sw, "pool window")
    if max(hp, wp, sh, sw, _product((n, hp, wp, c)), _product((n, ho, wo, c))) >= _SIZE_LIMIT:
        raise ValueError(f"pooling too large: x {x_shape}, params {params}")
    cdef fc_pool2d_desc d
    d.n, d.h, d.w, d.c = n, h, w, c
    d.kh, d.kw, d.sh, d.sw, d.pt, d.pb, d.pl, d.pr = kh, kw, sh, sw, pt, pb, pl, pr
    d.ho, d.wo = ho, wo
    d.relu = 0
    d.dropout = 0
    d.dropout_seed, d.dropout_threshold, d.dropout_scale = 0, 0, 1.0
    return d


cdef void _set_dropout(fc_pool2d_desc *d, object dropout) except *:
    """dropout: None, or (seed, threshold, scale) as fastconv.ops.dropout makes them."""
    if dropout is None:
        return
    seed, threshold, scale = dropout
    d.dropout = 1
    d.dropout_seed, d.dropout_threshold, d.dropout_scale = seed, threshold, scale


cdef fc_pool2d_desc _argmax_backward_desc(tuple x_shape, tuple params,
                                          const uint8_t[:, :, :, ::1] argmax,
                                          const float[:, :, :, ::1] dy, bint relu,
                                          object dropout) except *:
    """The pooling of a backward pass from its argmax, argmax and dy checked."""
    cdef fc_pool2d_desc d = _pool_desc(x_shape, params)
    _check_argmax_window(&d)
    _set_dropout(&d, dropout)
    d.relu = relu
    _expect((argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3]),
            (d.n, d.ho, d.wo, d.c), "argmax")
    _expect(_shape4(dy), (d.n, d.ho, d.wo, d.c), "dy")
    return d


cdef void _check_argmax_window(const fc_pool2d_desc *d) except *:
    if d.kh * d.kw > FC_POOL_ARGMAX_MAX_CELLS:
        raise ValueError(
            f"argmax needs windows of at most {FC_POOL_ARGMAX_MAX_CELLS} cells, "
            f"got {d.kh}x{d.kw}"
        )


def pool2d_forward(str kind, const float[:, :, :, ::1] x, tuple params, n_threads=None,
                   dropout=None, bint with_argmax=False):
    """kind 'max' or 'avg'; params = (kh, kw, sh, sw, pt, pb, pl, pr). With
    dropout = (seed, threshold, scale), the output goes through that dropout.
    with_argmax (max only): returns (y, argmax), argmax uint8 (n, ho, wo, c)
    as fastconv.h describes it."""
    cdef fc_pool2d_desc d = _pool_desc(_shape4(x), params)
    _set_dropout(&d, dropout)
    cdef bint is_max = kind == "max"
    if not is_max and kind != "avg":
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    if with_argmax and not is_max:
        raise ValueError("with_argmax is for max pooling only")
    if with_argmax:
        _check_argmax_window(&d)
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.n, d.ho, d.wo, d.c))
    cdef float[:, :, :, ::1] y = out
    cdef const float *x_p = _p4(x)
    cdef float *y_p = _w4(y)
    cdef uint8_t[:, :, :, ::1] a
    cdef uint8_t *a_p = NULL
    if with_argmax:
        argmax = _empty_bytes((d.n, d.ho, d.wo, d.c))
        a = argmax
        a_p = NULL if a.size == 0 else &a[0, 0, 0, 0]
    cdef int status
    with nogil:
        if with_argmax:
            status = fc_max_pool2d_forward_argmax_f32(&d, x_p, y_p, a_p, nt)
        elif is_max:
            status = fc_max_pool2d_forward_f32(&d, x_p, y_p, nt)
        else:
            status = fc_avg_pool2d_forward_f32(&d, x_p, y_p, nt)
    _check(status)
    return (out, argmax) if with_argmax else out


def conv2d_max_pool2d_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, b,
                              tuple conv_params, bint relu, tuple pool_params, n_threads=None,
                              dropout=None, bint with_argmax=False):
    """pool2d_forward('max', conv2d_forward(x, w, b, conv_params, relu),
    pool_params, n_threads, dropout, with_argmax), bit for bit, in one pass
    where the kernels allow it."""
    cdef fc_conv2d_desc d = _conv_desc(_shape4(x), _shape4(w), conv_params)
    d.relu = relu
    cdef fc_pool2d_desc p = _pool_desc((d.n, d.ho, d.wo, d.f), pool_params)
    _set_dropout(&p, dropout)
    if with_argmax:
        _check_argmax_window(&p)
    cdef const float[::1] bv
    cdef const float *b_p = NULL
    if b is not None:
        bv = b
        _expect((bv.shape[0],), (d.f,), "b")
        b_p = _p1(bv)
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((p.n, p.ho, p.wo, p.c))
    cdef float[:, :, :, ::1] y = out
    cdef const float *x_p = _p4(x)
    cdef const float *w_p = _p4(w)
    cdef float *y_p = _w4(y)
    cdef uint8_t[:, :, :, ::1] a
    cdef uint8_t *a_p = NULL
    if with_argmax:
        argmax = _empty_bytes((p.n, p.ho, p.wo, p.c))
        a = argmax
        if a.size:
            a_p = &a[0, 0, 0, 0]
    cdef int status
    with nogil:
        status = fc_conv2d_max_pool2d_forward_f32(&d, &p, x_p, w_p, b_p, y_p, a_p, nt)
    _check(status)
    return (out, argmax) if with_argmax else out


def conv2d_max_pool2d_backward(const float[:, :, :, ::1] dy, const uint8_t[:, :, :, ::1] argmax,
                               const float[:, :, :, ::1] x, const float[:, :, :, ::1] w,
                               tuple conv_params, bint relu, tuple pool_params, n_threads=None,
                               dropout=None, bint input_grad=True, bint relu_input=False):
    """conv2d_backward(max_pool2d_backward_argmax(argmax, dy, z_shape, pool_params,
    n_threads, relu, dropout), x, w, conv_params, input_grad, n_threads,
    relu_input), bit for bit, z the convolution's output; its output gradient
    is never written where the kernels allow it."""
    cdef fc_conv2d_desc d = _conv_desc(_shape4(x), _shape4(w), conv_params)
    d.relu = relu_input
    cdef fc_pool2d_desc p = _argmax_backward_desc((d.n, d.ho, d.wo, d.f), pool_params, argmax,
                                                  dy, relu, dropout)
    cdef int nt = _resolve_threads(n_threads)
    dx_out = _empty((d.n, d.h, d.w, d.c)) if input_grad else None
    dw_out = _empty((d.kh, d.kw, d.c, d.f))
    db_out = _empty((d.f,))
    if d.n * d.ho * d.wo == 0:  # an empty batch has zero gradients
        for out in (dx_out, dw_out, db_out):
            if out is not None:
                out.fill(0)
        return dx_out, dw_out, db_out
    cdef float[:, :, :, ::1] dx
    cdef float *dx_p = NULL
    if input_grad:
        dx = dx_out
        dx_p = _w4(dx)
    cdef float[:, :, :, ::1] dw = dw_out
    cdef float[::1] db = db_out
    cdef const float *dy_p = _p4(dy)
    cdef const uint8_t *a_p = NULL
    if argmax.size:
        a_p = &argmax[0, 0, 0, 0]
    cdef const float *x_p = _p4(x)
    cdef const float *w_p = _p4(w)
    cdef float *dw_p = _w4(dw)
    cdef float *db_p = _w1(db)
    cdef int status
    with nogil:
        status = fc_conv2d_max_pool2d_backward_f32(&d, &p, x_p, dy_p, a_p, w_p, dx_p, dw_p, db_p,
                                                   nt)
    _check(status)
    return dx_out, dw_out, db_out


def max_pool2d_backward_argmax(const uint8_t[:, :, :, ::1] argmax, const float[:, :, :, ::1] dy,
                               tuple x_shape, tuple params, n_threads=None, bint relu=False,
                               dropout=None):
    """pool2d_backward for max pooling from pool2d_forward's argmax instead of
    x (x_shape = (n, h, w, c)): the same dx."""
    cdef fc_pool2d_desc d = _argmax_backward_desc(x_shape, params, argmax, dy, relu, dropout)
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.n, d.h, d.w, d.c))
    cdef float[:, :, :, ::1] dx = out
    cdef const uint8_t *a_p = NULL
    if argmax.size:
        a_p = &argmax[0, 0, 0, 0]
    cdef const float *dy_p = _p4(dy)
    cdef float *dx_p = _w4(dx)
    cdef int status
    with nogil:
        status = fc_max_pool2d_backward_argmax_f32(&d, a_p, dy_p, dx_p, nt)
    _check(status)
    return out


def pool2d_backward(str kind, const float[:, :, :, ::1] x, const float[:, :, :, ::1] dy,
                    tuple params, n_threads=None, bint relu=False, dropout=None):
    """dx of pool2d_forward; x is read by max pooling, and by average pooling
    with relu. With relu, x is a ReLU's output and dx is taken through that
    ReLU too; with dropout (as pool2d_forward's), dy is that dropout's output
    gradient."""
    cdef fc_pool2d_desc d = _pool_desc(_shape4(x), params)
    _set_dropout(&d, dropout)
    cdef bint is_max = kind == "max"
    if not is_max and kind != "avg":
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    d.relu = relu
    _expect(_shape4(dy), (d.n, d.ho, d.wo, d.c), "dy")
    cdef int nt = _resolve_threads(n_threads)
    out = _empty((d.n, d.h, d.w, d.c))
    cdef float[:, :, :, ::1] dx = out
    cdef const float *x_p = _p4(x)
    cdef const float *dy_p = _p4(dy)
    cdef float *dx_p = _w4(dx)
    cdef int status
    with nogil:
        if is_max:
            status = fc_max_pool2d_backward_f32(&d, x_p, dy_p, dx_p, nt)
        else:
            status = fc_avg_pool2d_backward_f32(&d, x_p, dy_p, dx_p, nt)
    _check(status)
    return out


# ---- ReLU backward ------------------------------------------------------------

def relu_backward(const float[::1] dy, const float[::1] y, float[::1] out, n_threads=None):
    """out = dy where y > 0, else 0, over 1-D views of equal length; out may be dy."""
    _expect((y.shape[0],), (dy.shape[0],), "y")
    _expect((out.shape[0],), (dy.shape[0],), "out")
    cdef int nt = _resolve_threads(n_threads)
    cdef ptrdiff_t n = dy.shape[0]
    cdef const float *dy_p = _p1(dy)
    cdef const float *y_p = _p1(y)
    cdef float *out_p = _w1(out)
    cdef int status
    with nogil:
        status = fc_relu_backward_f32(n, dy_p, y_p, out_p, nt)
    _check(status)


def leaky_relu(const float[::1] x, float[::1] out, float negative_slope, float max_value,
               n_threads=None):
    """out = the leaky ReLU of x capped at max_value, over 1-D views of equal
    length; out may be x."""
    _expect((out.shape[0],), (x.shape[0],), "out")
    cdef int nt = _resolve_threads(n_threads)
    cdef ptrdiff_t n = x.shape[0]
    cdef const float *x_p = _p1(x)
    cdef float *out_p = _w1(out)
    cdef int status
    with nogil:
        status = fc_leaky_relu_f32(n, x_p, negative_slope, max_value, out_p, nt)
    _check(status)


def leaky_relu_backward(const float[::1] dy, const float[::1] y, float[::1] out,
                        float negative_slope, float max_value, n_threads=None):
    """out = the leaky ReLU's gradient from its output y, over 1-D views of
    equal length; out may be dy."""
    _expect((y.shape[0],), (dy.shape[0],), "y")
    _expect((out.shape[0],), (dy.shape[0],), "out")
    cdef int nt = _resolve_threads(n_threads)
    cdef ptrdiff_t n = dy.shape[0]
    cdef const float *dy_p = _p1(dy)
    cdef const float *y_p = _p1(y)
    cdef float *out_p = _w1(out)
    cdef int status
    with nogil:
        status = fc_leaky_relu_backward_f32(n, dy_p, y_p, negative_slope, max_value, out_p, nt)
    _check(status)


# ---- batch normalisation -----------------------------------------------------------

def batch_norm_statistics(const float[:, ::1] x, float[::1] mean, float[::1] var,
                          n_threads=None):
    """mean and var (c each) of the rows of x (m, c), m >= 1."""
    _expect((mean.shape[0],), (x.shape[1],), "mean")
    _expect((var.shape[0],), (x.shape[1],), "var")
    if x.shape[0] < 1:
        raise ValueError("x must have at least one row")
    cdef int nt = _resolve_threads(n_threads)
    cdef ptrdiff_t m = x.shape[0], c = x.shape[1]
    cdef const float *x_p = _p2(x)
    cdef float *mean_p = _w1(mean)
    cdef float *var_p = _w1(var)
    cdef int status
    with nogil:
        status = fc_batch_norm_statistics_f32(m, c, x_p, mean_p, var_p, nt)
    _check(status)


def batch_norm_forward(const float[:, ::1] x, const float[::1] mean, const float[::1] inv,
                       const float[::1] gamma, const float[::1] beta, float[:, ::1] out,
                       bint relu=False, n_threads=None):
    """out = (x - mean) * (inv * gamma) + beta per column of x (m, c), then its
    ReLU with relu; out may be x."""
    cdef ptrdiff_t m = x.shape[0], c = x.shape[1]
    for v, name in ((mean, "mean"), (inv, "inv"), (gamma, "gamma"), (beta, "beta")):
        _expect((v.shape[0],), (c,), name)
    _expect((out.shape[0], out.shape[1]), (m, c), "out")
    cdef int nt = _resolve_threads(n_threads)
    cdef const float *x_p = _p2(x)
    cdef const float *mean_p = _p1(mean)
    cdef const float *inv_p = _p1(inv)
    cdef const float *gamma_p = _p1(gamma)
    cdef const float *beta_p = _p1(beta)
    cdef float *out_p = _w2(out)
    cdef int status
    with nogil:
        status = fc_batch_norm_forward_f32(m, c, x_p, mean_p, inv_p, gamma_p, beta_p, relu,
                                           out_p, nt)
    _check(status)


def batch_norm_backward(const float[:, ::1] dy, const float[:, ::1] x, const float[::1] mean,
                        const float[::1] inv, const float[::1] gamma, float[:, ::1] dx,
                        float[::1] dgamma, float[::1] dbeta, const float[::1] relu_beta=None,
                        n_threads=None):
    """dx (m, c), dgamma and dbeta (c) through a batch normalisation with x's
    batch statistics, and through its ReLU given the forward's beta as
    relu_beta (fc_batch_norm_backward_f32); dx may be dy itself, but must not
    otherwise overlap x or dy."""
    cdef ptrdiff_t m = x.shape[0], c = x.shape[1]
    cdef const float *relu_beta_p = NULL
    if relu_beta is not None:
        _expect((relu_beta.shape[0],), (c,), "relu_beta")
        relu_beta_p = _p1(relu_beta)
    _expect((dy.shape[0], dy.shape[1]), (m, c), "dy")
    _expect((dx.shape[0], dx.shape[1]), (m, c), "dx")
    for v, name in ((mean, "mean"), (inv, "inv"), (gamma, "gamma"), (dgamma, "dgamma"),
                    (dbeta, "dbeta")):
        _expect((v.shape[0],), (c,), name)
    cdef int nt = _resolve_threads(n_threads)
    cdef const float *dy_p = _p2(dy)
    cdef const float *x_p = _p2(x)
    cdef const float *mean_p = _p1(mean)
    cdef const float *inv_p = _p1(inv)
    cdef const float *gamma_p = _p1(gamma)
    cdef float *dx_p = _w2(dx)
    cdef float *dgamma_p = _w1(dgamma)
    cdef float *dbeta_p = _w1(dbeta)
    cdef int status
    with nogil:
        status = fc_batch_norm_backward_f32(m, c, x_p, dy_p, mean_p, inv_p, gamma_p,
                                            relu_beta_p, dx_p, dgamma_p, dbeta_p, nt)
    _check(status)


# ---- dropout -----------------------------------------------------------------------

def dropout(const float[::1] x, float[::1] out, unsigned long long seed, unsigned int threshold,
            float scale, n_threads=None):
    """out = x * keep * scale over 1-D views of equal length, keep from the hash of
    (seed, index) against threshold (fc_dropout_f32); out may be x."""
    _expect((out.shape[0],), (x.shape[0],), "out")
    cdef int nt = _resolve_threads(n_threads)
    cdef ptrdiff_t n = x.shape[0]
    cdef const float *x_p = _p1(x)
    cdef float *out_p = _w1(out)
    cdef int status
    with nogil:
        status = fc_dropout_f32(n, x_p, out_p, seed, threshold, scale, nt)
    _check(status)


# ---- Adam -------------------------------------------------------------------------

def adam_update(float[::1] w, const float[::1] g, float[::1] m, float[::1] v, vhat,
                double lr_t, double beta_1, double beta_2, double epsilon, n_threads=None):
    """One Adam step in place over 1-D float32 views of equal length (vhat: the
    AMSGrad slot, or None)."""
    cdef ptrdiff_t n = w.shape[0]
    _expect((g.shape[0],), (n,), "g")
    _expect((m.shape[0],), (n,), "m")
    _expect((v.shape[0],), (n,), "v")
    cdef float[::1] vh = _slot(vhat, n, "vhat")
    cdef float *vhat_p = _slot_ptr(vh)
    cdef int nt = _resolve_threads(n_threads)
    cdef float *w_p = _w1(w)
    cdef const float *g_p = _p1(g)
    cdef float *m_p = _w1(m)
    cdef float *v_p = _w1(v)
    cdef int status
    with nogil:
        status = fc_adam_update_f32(n, w_p, g_p, m_p, v_p, vhat_p, lr_t, beta_1, beta_2,
                                    epsilon, nt)
    _check(status)


# ---- Adadelta ---------------------------------------------------------------

def adadelta_update(float[::1] w, const float[::1] g, float[::1] acc, float[::1] acc_u,
                    double lr, double rho, double epsilon, n_threads=None):
    """One Adadelta step in place over 1-D float32 views of equal length."""
    cdef ptrdiff_t n = w.shape[0]
    _expect((g.shape[0],), (n,), "g")
    _expect((acc.shape[0],), (n,), "acc")
    _expect((acc_u.shape[0],), (n,), "acc_u")
    cdef int nt = _resolve_threads(n_threads)
    cdef float *w_p = _w1(w)
    cdef const float *g_p = _p1(g)
    cdef float *acc_p = _w1(acc)
    cdef float *acc_u_p = _w1(acc_u)
    cdef int status
    with nogil:
        status = fc_adadelta_update_f32(n, w_p, g_p, acc_p, acc_u_p, lr, rho, epsilon, nt)
    _check(status)


# ---- RMSprop and SGD --------------------------------------------------------

def rmsprop_update(float[::1] w, const float[::1] g, float[::1] ms, mg, mom, double lr,
                   double decay, double weight, double momentum, double epsilon, n_threads=None):
    """One RMSprop step (decay = rho, weight = 1 - rho; mg: the centered
    slot, mom: the momentum slot, each or None) or Adagrad step (both 1, both
    None) in place over 1-D float32 views of equal length."""
    cdef ptrdiff_t n = w.shape[0]
    _expect((g.shape[0],), (n,), "g")
    _expect((ms.shape[0],), (n,), "ms")
    cdef float[::1] mg_v = _slot(mg, n, "mg")
    cdef float[::1] mom_v = _slot(mom, n, "mom")
    cdef float *mg_p = _slot_ptr(mg_v)
    cdef float *mom_p = _slot_ptr(mom_v)
    cdef int nt = _resolve_threads(n_threads)
    cdef float *w_p = _w1(w)
    cdef const float *g_p = _p1(g)
    cdef float *ms_p = _w1(ms)
    cdef int status
    with nogil:
        status = fc_rmsprop_update_f32(n, w_p, g_p, ms_p, mg_p, mom_p, lr, decay, weight,
                                       momentum, epsilon, nt)
    _check(status)


def sgd_update(float[::1] w, const float[::1] g, velocity, double lr, double momentum,
               bint nesterov, n_threads=None):
    """One SGD step in place over 1-D float32 views of equal length (velocity:
    the momentum slot, or None)."""
    cdef ptrdiff_t n = w.shape[0]
    _expect((g.shape[0],), (n,), "g")
    cdef float[::1] v = _slot(velocity, n, "velocity")
    cdef float *v_p = _slot_ptr(v)
    cdef int nt = _resolve_threads(n_threads)
    cdef float *w_p = _w1(w)
    cdef const float *g_p = _p1(g)
    cdef int status
    with nogil:
        status = fc_sgd_update_f32(n, w_p, g_p, v_p, lr, momentum, nesterov, nt)
    _check(status)
