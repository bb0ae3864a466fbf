/* Adam's update of one float32 weight in a single threaded sweep, where the
 * NumPy formula makes a dozen passes over the weight and its slots.
 *
 * It rounds exactly as that formula does in float32 (each product and sum
 * rounded on its own: this file is compiled without FMA contraction, and
 * without flushing denormals), so the result is bitwise the NumPy one on every
 * SIMD path. */
#include <math.h>

#include "fc_internal.h"

FC_VECTOR_CLONES int fc_adam_update_f32(ptrdiff_t n, float *w, const float *g, float *m, float *v,
                                        float *vhat, double lr_t, double beta_1, double beta_2,
                                        double epsilon, int n_threads)
{
    const float b1 = (float)beta_1, c1 = (float)(1.0 - beta_1);
    const float b2 = (float)beta_2, c2 = (float)(1.0 - beta_2);
    const float lr = (float)lr_t, eps = (float)epsilon;
    /* About eight operations an element: that is the work to weigh. */
    n_threads = fc_threads_for(8.0 * (double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float gi = g[i];
            const float mi = m[i] * b1 + c1 * gi;
            float vi = v[i] * b2 + c2 * (gi * gi);
            m[i] = mi;
            v[i] = vi;
            if (vhat) { /* np.maximum: a NaN in either wins */
                vi = (vhat[i] >= vi || vhat[i] != vhat[i]) ? vhat[i] : vi;
                vhat[i] = vi;
            }
            w[i] = w[i] - (lr * mi) / (sqrtf(vi) + eps);
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}
