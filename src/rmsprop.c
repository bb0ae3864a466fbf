/* RMSprop's update (Keras's default: not centered, no momentum) of one
 * float32 weight in a single threaded sweep, where NumPy's formula makes
 * seven passes and two temporaries (2.7 ms a step of the Keras example's
 * 1.2M weights); with decay and weight 1, Adagrad's (2.2 ms).
 *
 * It rounds exactly as that formula does in float32 (each product, sum,
 * square root and quotient rounded on its own: this file is compiled without
 * FMA contraction, and without flushing denormals), so the result is bitwise
 * the NumPy one on every SIMD path. */
#include <math.h>

#include "fc_internal.h"

FC_VECTOR_CLONES int fc_rmsprop_update_f32(ptrdiff_t n, float *w, const float *g, float *ms,
                                           double lr, double decay, double weight, double epsilon,
                                           int n_threads)
{
    const float r = (float)decay, c = (float)weight, eps = (float)epsilon, lr_f = (float)lr;
    n_threads = fc_threads_for(7.0 * (double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float gi = g[i];
            const float m = ms[i] * r + c * (gi * gi);
            ms[i] = m;
            w[i] = w[i] - (lr_f * gi) / (sqrtf(m) + eps);
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}
