/* SGD's update of one float32 weight in a single threaded sweep, with
 * optional (Nesterov) momentum; NumPy's formula makes two to six passes and
 * a temporary (3.3 ms a step of the Keras example's 1.2M weights with
 * Nesterov momentum, 0.3 in C).
 *
 * It rounds exactly as that formula does in float32 (each product and sum
 * rounded on its own: this file is compiled without FMA contraction, and
 * without flushing denormals), so the result is bitwise the NumPy one on every
 * SIMD path. */
#include "fc_internal.h"

FC_VECTOR_CLONES int fc_sgd_update_f32(ptrdiff_t n, float *w, const float *g, float *velocity,
                                       double lr, double momentum, int nesterov, int n_threads)
{
    const float lr_f = (float)lr, mom = (float)momentum;
    n_threads = fc_threads_for(4.0 * (double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float step = lr_f * g[i];
            if (!velocity) {
                w[i] = w[i] - step;
                continue;
            }
            const float v = velocity[i] * mom - step;
            velocity[i] = v;
            w[i] = nesterov ? w[i] + (mom * v - step) : w[i] + v;
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}
