/* RMSprop's update of one float32 weight in a single threaded sweep, where
 * NumPy's formula makes seven to eleven passes and two to four temporaries
 * (2.7 ms a step of the Keras example's 1.2M weights in Keras's default
 * variant); with decay and weight 1, Adagrad's (2.2 ms).
 *
 * It rounds exactly as that formula does in float32 (each product, sum,
 * square root and quotient rounded on its own: this file is compiled without
 * FMA contraction, and without flushing denormals), so the result is bitwise
 * the NumPy one on every SIMD path. */
#include <math.h>

#include "fc_internal.h"

/* Element i; mg and mom are NULL or not for the whole sweep (GCC takes the
 * tests out of the loop, one vectorised loop per variant). */
static inline __attribute__((always_inline)) void
rmsprop_element(ptrdiff_t i, float *w, const float *g, float *ms, float *mg, float *mom,
                float lr, float r, float c, float mu, float eps)
{
    const float gi = g[i];
    const float m = ms[i] * r + c * (gi * gi);
    ms[i] = m;
    float d = m;
    if (mg) {
        const float a = mg[i] * r + c * gi;
        mg[i] = a;
        d = m - a * a;
    }
    if (mom) {
        const float v = mom[i] * mu + (lr * gi) / sqrtf(d + eps);
        mom[i] = v;
        w[i] = w[i] - v;
    } else {
        w[i] = w[i] - (lr * gi) / (sqrtf(d) + eps);
    }
}

FC_VECTOR_CLONES int fc_rmsprop_update_f32(ptrdiff_t n, float *w, const float *g, float *ms,
                                           float *mg, float *mom, double lr, double decay,
                                           double weight, double momentum, double epsilon,
                                           int n_threads)
{
    const float r = (float)decay, c = (float)weight, eps = (float)epsilon, lr_f = (float)lr;
    const float mu = (float)momentum;
    const double passes = 7.0 + (mg ? 4.0 : 0.0) + (mom ? 2.0 : 0.0);
    n_threads = fc_threads_for(passes * (double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i)
            rmsprop_element(i, w, g, ms, mg, mom, lr_f, r, c, mu, eps);
        fc_team_leave(&team);
    }
    return FC_OK;
}
