/* The ReLU's backward pass from its output: one threaded, vectorised sweep,
 * where NumPy's dy * (y > 0) makes a boolean temporary and a second pass. */
#include "fc_internal.h"

FC_VECTOR_CLONES int fc_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y,
                                          float *dz, int n_threads)
{
    n_threads = fc_threads_for((double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) /* a select: 0, never 0 * inf */
            dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        fc_team_leave(&team);
    }
    return FC_OK;
}
