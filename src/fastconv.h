/* fastconv: the public C interface of the kernels.
 *
 * Layout everywhere: activations NHWC float32, C-contiguous (n, h, w, c);
 * weights HWIO (kh, kw, c, f); outputs (n, ho, wo, f). Sizes are ptrdiff_t.
 *
 * Every kernel takes a const descriptor, then inputs, then outputs, then
 * n_threads, and returns 0 or a negative status (see fc_strerror). The C code
 * does not validate shapes: the Cython boundary does, and the descriptors must
 * be consistent (ho/wo computed from the other fields, kernel extent not larger
 * than the padded input). Kernels are re-entrant; they allocate their scratch
 * per call, aligned to 64 bytes.
 */
#ifndef FASTCONV_H
#define FASTCONV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    FC_OK = 0,
    FC_ERR_NOMEM = -1,
    FC_ERR_UNSUPPORTED = -2,
};

const char *fc_strerror(int status);

/* ---- output buffers ----------------------------------------------------- */

/* bytes of 64-byte aligned memory for a kernel's output, or NULL. Released
 * blocks are kept (bounded) and handed to a later request of about the same
 * size: a training loop asks for the same sizes every step, and a fresh
 * block from the system costs a page fault per 4 KiB on first touch (more
 * than the kernel itself for an output of a few MB). */
void *fc_buffer_alloc(size_t bytes);
void fc_buffer_free(void *p);

/* ---- configuration ---------------------------------------------------- */

enum {
    FC_SIMD_PORTABLE = 0, /* plain C, compiled for the baseline ISA */
    FC_SIMD_AVX2 = 1,     /* AVX2 + FMA */
    FC_SIMD_AVX512 = 2,   /* AVX-512F */
    FC_SIMD_COUNT = 3,
};

/* 1 when the path is compiled in and the running CPU supports it. */
int fc_simd_available(int path);
/* The path the kernels use now: the best available unless forced. */
int fc_simd_current(void);
/* Force a path; FC_ERR_UNSUPPORTED when it is not available. */
int fc_simd_select(int path);
const char *fc_simd_name(int path);

/* Which Winograd methods 3x3 and larger stride-1 layers may use. */
enum {
    FC_WINOGRAD_OFF = 0,      /* none: the GEMM and direct kernels only */
    FC_WINOGRAD_ACCURATE = 1, /* F(2x2, 3x3) only, rounding like the direct method */
    FC_WINOGRAD_FAST = 2,     /* also F(4x4, 3x3), F(2x2, 5x5) and their transposes
                               * where they pay (the default; 10-50x the rounding) */
    FC_WINOGRAD_COUNT = 3,
};
/* The mode in use, and its setter (FC_ERR_UNSUPPORTED for an unknown mode);
 * a process-wide setting like the SIMD path. */
int fc_winograd_current(void);
int fc_winograd_select(int mode);
const char *fc_winograd_name(int mode);

/* The scale of the multiply-adds a Winograd method must save for a forward
 * or backward-input pass (or a large kernel's weight gradient) to take it,
 * per float of the kernel it transforms
 * (1 by default; 0: wherever the mode lets one apply), and its setter
 * (FC_ERR_UNSUPPORTED unless 0 <= scale <= 1e6). Process-wide. */
double fc_winograd_threshold_current(void);
int fc_winograd_threshold_select(double scale);

/* The scale of the work a call needs per thread before it wakes another
 * (1 by default, tuned on 2-vCPU VMs; 0: always every thread asked for), and
 * its setter (FC_ERR_UNSUPPORTED unless 0 <= scale <= 1e6). Process-wide. */
double fc_parallel_threshold_current(void);
int fc_parallel_threshold_select(double scale);

/* Bytes from which a GEMM's output written in one pass bypasses the cache
 * (streaming stores): an eighth of the last-level cache Linux reports,
 * between 4 and 64 MiB (64 MiB where it reports none). Read once. */
ptrdiff_t fc_stream_min_bytes(void);

int fc_openmp_enabled(void);
/* Number of processors OpenMP would use by default (1 without OpenMP). */
int fc_default_threads(void);
const char *fc_compiler(void);

/* Peak FMA throughput of the selected SIMD path, measured by a register-only
 * loop on n_threads threads for about `seconds`. Returns GFLOP/s. */
double fc_peak_gflops(int n_threads, double seconds);

/* Memory bandwidth in GB/s from a STREAM-like triad a = b + s*c over three
 * arrays of n_floats each (choose far larger than the last-level cache), the
 * best of `repeats` runs. Returns a negative value when out of memory. */
double fc_triad_gbs(int n_threads, ptrdiff_t n_floats, int repeats);

/* ---- GEMM --------------------------------------------------------------- */

/* C = op(A) op(B) (+ bias per column) (then ReLU if relu), row-major,
 * overwrites C. op(A) is m x k: A itself with row stride lda, or with trans_a
 * the transpose of a k x m matrix A with row stride lda; likewise op(B) is
 * k x n from B or, with trans_b, from an n x k B. C is m x n with row stride
 * ldc. bias may be NULL. */
typedef struct {
    ptrdiff_t m, n, k;
    ptrdiff_t lda, ldb, ldc;
    int relu;
    int trans_a, trans_b;
} fc_gemm_desc;

int fc_gemm_f32(const fc_gemm_desc *d, const float *a, const float *b,
                const float *bias, float *c, int n_threads);

/* ---- convolution -------------------------------------------------------- */

typedef struct {
    ptrdiff_t n, h, w, c;   /* input */
    ptrdiff_t kh, kw, f;    /* kernel and filters */
    ptrdiff_t sh, sw;       /* strides */
    ptrdiff_t dh, dw;       /* dilations */
    ptrdiff_t pt, pb, pl, pr; /* zero padding: top, bottom, left, right */
    ptrdiff_t ho, wo;       /* output */
    int relu;               /* forward: apply ReLU after the bias; backward
                             * (fc_conv2d_backward_f32): x is a ReLU's output,
                             * and dx is taken through that ReLU too (zero
                             * where x is not positive) */
} fc_conv2d_desc;

/* y (n, ho, wo, f) = conv(x, w) + b, then ReLU if d->relu. Overwrites y.
 * b may be NULL. */
int fc_conv2d_forward_f32(const fc_conv2d_desc *d, const float *x,
                          const float *w, const float *b, float *y,
                          int n_threads);

/* dx (n, h, w, c) = gradient of sum(y * dy) with respect to x. Overwrites dx. */
int fc_conv2d_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                 const float *w, float *dx, int n_threads);

/* dw (kh, kw, c, f) and db (f) = gradients with respect to w and b.
 * Overwrites both; db may be NULL. The batch reduction uses fixed chunks
 * added in a fixed order: results do not depend on n_threads. */
int fc_conv2d_backward_weight_f32(const fc_conv2d_desc *d, const float *x,
                                  const float *dy, float *dw, float *db,
                                  int n_threads);

/* Both: the two calls above, or one pass over dy where that is faster.
 * dx may be NULL (not wanted), and db. With d->relu, dx is
 * fc_relu_backward_f32 of the input gradient with x as the ReLU's output. */
int fc_conv2d_backward_f32(const fc_conv2d_desc *d, const float *x,
                           const float *dy, const float *w, float *dx,
                           float *dw, float *db, int n_threads);

/* ---- pooling ------------------------------------------------------------ */

typedef struct {
    ptrdiff_t n, h, w, c;
    ptrdiff_t kh, kw;
    ptrdiff_t sh, sw;
    ptrdiff_t pt, pb, pl, pr; /* each side smaller than the window */
    ptrdiff_t ho, wo;
    int relu; /* backward passes only: x is a ReLU's output, and dx is taken
               * through that ReLU too (zero where x is not positive) */
    /* With dropout: the output goes through fc_dropout_f32 with this seed,
     * threshold and scale in the forward pass (y = dropout(pool(x))), and dy
     * is that dropout's output gradient in the backward pass
     * (dx = pool_backward(dropout(dy))), each in the pooling's own pass. */
    int dropout;
    uint64_t dropout_seed;
    uint32_t dropout_threshold;
    float dropout_scale;
} fc_pool2d_desc;

/* y (n, ho, wo, c): window maximum; padding counts as -inf; NaN propagates
 * (the window's first NaN). Overwrites y. */
int fc_max_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x,
                              float *y, int n_threads);
/* dx (n, h, w, c): each window's dy goes to its first maximum in row-major
 * window order (its first NaN, if any); with d->relu, only a positive one.
 * Overwrites dx. */
int fc_max_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x,
                               const float *dy, float *dx, int n_threads);
/* Max pooling's argmax: one byte per output element, the cell of the window
 * its gradient goes to (the cell the backward from x picks), numbered
 * row-major in the kh x kw window, padding included (i * kw + j), plus
 * FC_POOL_POSITIVE when the window's maximum is positive (a ReLU below passes
 * its gradient). For windows of at most FC_POOL_ARGMAX_MAX_CELLS cells
 * (FC_ERR_UNSUPPORTED beyond). Keeping it, the backward reads a byte per
 * output instead of the whole input. */
#define FC_POOL_POSITIVE 0x80u
#define FC_POOL_ARGMAX_MAX_CELLS 128
/* fc_max_pool2d_forward_f32, also writing argmax (n, ho, wo, c). */
int fc_max_pool2d_forward_argmax_f32(const fc_pool2d_desc *d, const float *x,
                                     float *y, uint8_t *argmax, int n_threads);
/* fc_max_pool2d_backward_f32 from the forward's switches instead of x: the
 * same bits. */
int fc_max_pool2d_backward_argmax_f32(const fc_pool2d_desc *d, const uint8_t *argmax,
                                      const float *dy, float *dx, int n_threads);
/* y: mean over the window's real cells (padding is left out of the count).
 * Overwrites y. */
int fc_avg_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x,
                              float *y, int n_threads);
/* dx: dy / count spread over each window's real cells; with d->relu, x is a
 * ReLU's output and dx is taken through that ReLU too (fc_relu_backward_f32
 * of it, the same bits; x is read only then). Overwrites dx. */
int fc_avg_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x, const float *dy,
                               float *dx, int n_threads);

/* ---- convolution then max pooling ---------------------------------------- */

/* y = fc_max_pool2d_forward_f32(p, fc_conv2d_forward_f32(d, x, w, b)), and
 * with argmax (not NULL) that pooling's argmax, bit for bit; p pools the
 * convolution's output (p->n, h, w, c are d's n, ho, wo, f). Layers the
 * direct kernels take (few input channels), with pooling windows that do not
 * overlap vertically, and layers of the 6x6 Winograd method pooled by 2x2
 * windows, stride 2, unpadded, never write the convolution's output to
 * memory; the others go through it. */
int fc_conv2d_max_pool2d_forward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                     const float *x, const float *w, const float *b, float *y,
                                     uint8_t *argmax, int n_threads);
/* The backward of that pair from the pooling's argmax: fc_conv2d_backward_f32
 * (d, x, dz, w, dx, dw, db) of dz = fc_max_pool2d_backward_argmax_f32(p,
 * argmax, dy), bit for bit (p->relu: the convolution's ReLU, taken by the
 * pooling; d->relu: x is a ReLU's output, as fc_conv2d_backward_f32's). The
 * 3x3 layers whose gradients come from one pass of the 6x6 Winograd method
 * (fc_conv2d_backward_f32), pooled by 2x2 windows, stride 2, unpadded, read
 * dz's tiles from dy and argmax as they go and never write dz. dx may be
 * NULL (not wanted), and db. */
int fc_conv2d_max_pool2d_backward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                      const float *x, const float *dy, const uint8_t *argmax,
                                      const float *w, float *dx, float *dw, float *db,
                                      int n_threads);

/* ---- ReLU family -------------------------------------------------------- */

/* dz[i] = dy[i] where the ReLU's output y[i] > 0, else 0 (a NaN y passes no
 * gradient; an infinite dy where y <= 0 gives 0, not NaN), for i < n.
 * Overwrites dz, which may be dy itself. */
int fc_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y, float *dz,
                         int n_threads);

/* The leaky ReLU, capped at max_value (+inf: no cap): y[i] = x[i] where
 * x[i] > 0, negative_slope * x[i] (0 for a slope of 0) where x[i] <= 0, then
 * max_value wherever that is above it; NaN stays NaN. Overwrites y, which
 * may be x itself. FC_ERR_UNSUPPORTED unless 0 <= negative_slope < inf and
 * max_value >= 0. */
int fc_leaky_relu_f32(ptrdiff_t n, const float *x, float negative_slope, float max_value,
                      float *y, int n_threads);

/* Its gradient from its output y: dz[i] = 0 where a cap is set and
 * y[i] >= max_value, else dy[i] where y[i] > 0, else negative_slope * dy[i]
 * (0 for a slope of 0, also where dy[i] is infinite or NaN). At 0 the slope
 * is negative_slope, as TensorFlow's and PyTorch's gradients take it.
 * Overwrites dz, which may be dy itself. Arguments as fc_leaky_relu_f32's. */
int fc_leaky_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y,
                               float negative_slope, float max_value, float *dz,
                               int n_threads);

/* ---- dropout ------------------------------------------------------------ */

/* y[i] = x[i] * keep * scale for i < n, keep 1 where the 24 high bits of the
 * hash of (seed, i) are at least threshold, else 0 (see dropout.c and
 * fastconv.reference.dropout). For rate r: threshold = ceil(r * 2^24), scale
 * the float32 of 1 / (1 - r). y may be x itself. */
int fc_dropout_f32(ptrdiff_t n, const float *x, float *y, uint64_t seed, uint32_t threshold,
                   float scale, int n_threads);

/* ---- batch normalisation ------------------------------------------------- */

/* Over m rows of c channels (channels last): the mean and biased variance
 * of each channel, summed in double over chunks of rows fixed by m (the same
 * bits for any thread count), the variance around the mean. Writes mean and
 * var (c each). */
int fc_batch_norm_statistics_f32(ptrdiff_t m, ptrdiff_t c, const float *x, float *mean,
                                 float *var, int n_threads);
/* y[r][j] = (x[r][j] - mean[j]) (inv[j] gamma[j]) + beta[j]: a batch
 * normalisation's forward pass once its statistics (or the moving ones) are
 * known, inv = 1 / sqrt(var + epsilon); with relu, then max(y, 0) (NaN
 * stays). Overwrites y, which may be x. */
int fc_batch_norm_forward_f32(ptrdiff_t m, ptrdiff_t c, const float *x, const float *mean,
                              const float *inv, const float *gamma, const float *beta, int relu,
                              float *y, int n_threads);
/* Through y = (x - mean) inv gamma + beta with x's batch statistics (mean, and
 * inv = 1 / sqrt(var + epsilon)): dgamma = sum of dy xhat, dbeta = sum of dy
 * (xhat = (x - mean) inv; sums in double, as above), and
 * dx = gamma inv (dy - dbeta / m - xhat dgamma / m). With relu_beta (the
 * forward's beta) not NULL, through max(y, 0) as well: dy taken as 0 where y
 * (recomputed from x, the forward's bits) is not positive. Overwrites dx,
 * dgamma, dbeta; dx may be dy itself (dy is summed over in full first,
 * then each dx element written after its dy is read), but must not otherwise
 * overlap x or dy. */
int fc_batch_norm_backward_f32(ptrdiff_t m, ptrdiff_t c, const float *x, const float *dy,
                               const float *mean, const float *inv, const float *gamma,
                               const float *relu_beta, float *dx, float *dgamma, float *dbeta,
                               int n_threads);

/* ---- Adam ---------------------------------------------------------------- */

/* One Adam step of n weights, in place (see fastconv/optimizers/adam.py):
 *   m = beta_1*m + (1-beta_1)*g;  v = beta_2*v + (1-beta_2)*g*g;
 *   vhat = max(vhat, v) when vhat is not NULL (AMSGrad), used in place of v;
 *   w -= lr_t*m / (sqrt(v) + epsilon)
 * in float32, each operation rounded separately, as the NumPy formula does. */
int fc_adam_update_f32(ptrdiff_t n, float *w, const float *g, float *m, float *v, float *vhat,
                       double lr_t, double beta_1, double beta_2, double epsilon,
                       int n_threads);

/* ---- Adadelta ------------------------------------------------------------ */

/* One Adadelta step of n weights, in place (see fastconv/optimizers/adadelta.py):
 *   acc = rho*acc + (1-rho)*g*g;  u = g*sqrt(acc_u + epsilon) / sqrt(acc + epsilon);
 *   acc_u = rho*acc_u + (1-rho)*u*u;  w -= lr*u
 * in float32, each operation rounded separately, as the NumPy formula does. */
int fc_adadelta_update_f32(ptrdiff_t n, float *w, const float *g, float *acc, float *acc_u,
                           double lr, double rho, double epsilon, int n_threads);

/* ---- RMSprop and SGD ----------------------------------------------------- */

/* One RMSprop step (fastconv/optimizers/rmsprop.py; decay = rho, weight =
 * 1 - rho), or Adagrad's (adagrad.py; both 1, mg and mom NULL):
 *   ms = decay*ms + weight*g*g;  d = ms, or when centered (mg not NULL)
 *   mg = decay*mg + weight*g;  d = ms - mg*mg;  then w -= lr*g / (sqrt(d) + epsilon),
 *   or with momentum (mom not NULL) mom = momentum*mom + lr*g / sqrt(d + epsilon);  w -= mom
 * and one SGD step (sgd.py): w -= lr*g, or with velocity (not NULL)
 *   v = momentum*v - lr*g;  w += v, or w += momentum*v - lr*g (nesterov)
 * in float32, each operation rounded separately, as the NumPy formulas do. */
int fc_rmsprop_update_f32(ptrdiff_t n, float *w, const float *g, float *ms, float *mg,
                          float *mom, double lr, double decay, double weight, double momentum,
                          double epsilon, int n_threads);
int fc_sgd_update_f32(ptrdiff_t n, float *w, const float *g, float *velocity, double lr,
                      double momentum, int nesterov, int n_threads);

#ifdef __cplusplus
}
#endif

#endif /* FASTCONV_H */
