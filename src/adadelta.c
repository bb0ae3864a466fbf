/* Adadelta's update of one float32 weight in a single threaded sweep, where
 * the NumPy formula makes a dozen passes over the weight and its two slots
 * (the Keras example's optimizer: 7 ms of its 31 ms training step).
 *
 * It rounds exactly as that formula does in float32 (each product, sum,
 * square root and quotient rounded on its own: this file is compiled without
 * FMA contraction, and without flushing denormals), so the result is bitwise
 * the NumPy one on every SIMD path. */
#include <math.h>

#include "fc_internal.h"

FC_VECTOR_CLONES int fc_adadelta_update_f32(ptrdiff_t n, float *w, const float *g, float *acc,
                                            float *acc_u, double lr, double rho, double epsilon,
                                            int n_threads)
{
    const float r = (float)rho, c = (float)(1.0 - rho), eps = (float)epsilon, lr_f = (float)lr;
    /* About ten operations an element: that is the work to weigh. */
    n_threads = fc_threads_for(10.0 * (double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float gi = g[i];
            const float a = acc[i] * r + c * (gi * gi);
            const float u = gi * sqrtf(acc_u[i] + eps) / sqrtf(a + eps);
            acc[i] = a;
            acc_u[i] = acc_u[i] * r + c * (u * u);
            w[i] = w[i] - lr_f * u;
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}
