# C declarations of fastconv.h for the Cython boundary.
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from "fastconv.h" nogil:
    enum:
        FC_OK
        FC_ERR_NOMEM
        FC_ERR_UNSUPPORTED
        FC_SIMD_PORTABLE
        FC_SIMD_AVX2
        FC_SIMD_AVX512
        FC_SIMD_COUNT
        FC_WINOGRAD_COUNT

    const char *fc_strerror(int status)
    void *fc_buffer_alloc(size_t bytes)
    void fc_buffer_free(void *p)
    int fc_simd_available(int path)
    int fc_simd_current()
    int fc_simd_select(int path)
    const char *fc_simd_name(int path)
    int fc_winograd_current()
    int fc_winograd_select(int mode)
    const char *fc_winograd_name(int mode)
    double fc_winograd_threshold_current()
    int fc_winograd_threshold_select(double scale)
    double fc_parallel_threshold_current()
    int fc_parallel_threshold_select(double scale)
    ptrdiff_t fc_stream_min_bytes()
    int fc_openmp_enabled()
    int fc_default_threads()
    const char *fc_compiler()
    double fc_peak_gflops(int n_threads, double seconds)
    double fc_triad_gbs(int n_threads, ptrdiff_t n_floats, int repeats)

    ctypedef struct fc_gemm_desc:
        ptrdiff_t m, n, k
        ptrdiff_t lda, ldb, ldc
        int relu
        int trans_a, trans_b

    int fc_gemm_f32(const fc_gemm_desc *d, const float *a, const float *b,
                    const float *bias, float *c, int n_threads)

    ctypedef struct fc_conv2d_desc:
        ptrdiff_t n, h, w, c
        ptrdiff_t kh, kw, f
        ptrdiff_t sh, sw
        ptrdiff_t dh, dw
        ptrdiff_t pt, pb, pl, pr
        ptrdiff_t ho, wo
        int relu

    int fc_conv2d_forward_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                              const float *b, float *y, int n_threads)
    int fc_conv2d_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                     const float *w, float *dx, int n_threads)
    int fc_conv2d_backward_weight_f32(const fc_conv2d_desc *d, const float *x,
                                      const float *dy, float *dw, float *db, int n_threads)
    int fc_conv2d_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                               const float *w, float *dx, float *dw, float *db, int n_threads)

    ctypedef struct fc_pool2d_desc:
        ptrdiff_t n, h, w, c
        ptrdiff_t kh, kw
        ptrdiff_t sh, sw
        ptrdiff_t pt, pb, pl, pr
        ptrdiff_t ho, wo
        int relu
        int dropout
        uint64_t dropout_seed
        uint32_t dropout_threshold
        float dropout_scale

    int fc_max_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x, float *y,
                                  int n_threads)
    int fc_max_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x, const float *dy,
                                   float *dx, int n_threads)
    int fc_max_pool2d_forward_argmax_f32(const fc_pool2d_desc *d, const float *x, float *y,
                                         uint8_t *argmax, int n_threads)
    int fc_max_pool2d_backward_argmax_f32(const fc_pool2d_desc *d, const uint8_t *argmax,
                                          const float *dy, float *dx, int n_threads)
    int FC_POOL_ARGMAX_MAX_CELLS
    int fc_avg_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x, float *y,
                                  int n_threads)
    int fc_conv2d_max_pool2d_forward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                         const float *x, const float *w, const float *b,
                                         float *y, uint8_t *argmax, int n_threads)
    int fc_conv2d_max_pool2d_backward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                          const float *x, const float *dy,
                                          const uint8_t *argmax, const float *w, float *dx,
                                          float *dw, float *db, int n_threads)
    int fc_avg_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x, const float *dy,
                                   float *dx, int n_threads)

    int fc_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y, float *dz,
                             int n_threads)
    int fc_leaky_relu_f32(ptrdiff_t n, const float *x, float negative_slope, float max_value,
                          float *y, int n_threads)
    int fc_leaky_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y,
                                   float negative_slope, float max_value, float *dz,
                                   int n_threads)
    int fc_dropout_f32(ptrdiff_t n, const float *x, float *y, uint64_t seed,
                       uint32_t threshold, float scale, int n_threads)
    int fc_batch_norm_statistics_f32(ptrdiff_t m, ptrdiff_t c, const float *x, float *mean,
                                     float *var, int n_threads)
    int fc_batch_norm_forward_f32(ptrdiff_t m, ptrdiff_t c, const float *x, const float *mean,
                                  const float *inv, const float *gamma, const float *beta,
                                  int relu, float *y, int n_threads)
    int fc_batch_norm_backward_f32(ptrdiff_t m, ptrdiff_t c, const float *x, const float *dy,
                                   const float *mean, const float *inv, const float *gamma,
                                   const float *relu_beta, float *dx, float *dgamma,
                                   float *dbeta, int n_threads)
    int fc_adam_update_f32(ptrdiff_t n, float *w, const float *g, float *m, float *v,
                           float *vhat, double lr_t, double beta_1, double beta_2,
                           double epsilon, int n_threads)
    int fc_adadelta_update_f32(ptrdiff_t n, float *w, const float *g, float *acc, float *acc_u,
                               double lr, double rho, double epsilon, int n_threads)
    int fc_rmsprop_update_f32(ptrdiff_t n, float *w, const float *g, float *ms, float *mg,
                              float *mom, double lr, double decay, double weight,
                              double momentum, double epsilon, int n_threads)
    int fc_sgd_update_f32(ptrdiff_t n, float *w, const float *g, float *velocity, double lr,
                          double momentum, int nesterov, int n_threads)
