/* The ReLU's backward pass from its output: one threaded, vectorised sweep,
 * where NumPy's dy * (y > 0) makes a boolean temporary and a second pass. */
#include "fc_internal.h"

FC_VECTOR_CLONES int fc_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y,
                                          float *dz, int n_threads)
{
    n_threads = fc_threads_for((double)n, n_threads);
    const ptrdiff_t blocks = fc_ceil_div(n, FC_ELEMENTWISE_BLOCK);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads) if (n_threads > 1)
#endif
    for (ptrdiff_t bi = 0; bi < blocks; ++bi) {
        const ptrdiff_t i1 = fc_min(n, (bi + 1) * FC_ELEMENTWISE_BLOCK);
        for (ptrdiff_t i = bi * FC_ELEMENTWISE_BLOCK; i < i1; ++i) /* a select: 0, never 0 * inf */
            dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
    return FC_OK;
}
