/* The ReLU family's elementwise passes: the plain ReLU's backward from its
 * output, and the leaky, optionally capped ReLU both ways. Each is one
 * threaded, vectorised sweep, where NumPy's np.where or dy * (y > 0) makes
 * boolean and float temporaries and a pass for each. */
#include <math.h>

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

FC_VECTOR_CLONES int fc_leaky_relu_f32(ptrdiff_t n, const float *x, float negative_slope,
                                       float max_value, float *y, int n_threads)
{
    if (!(negative_slope >= 0.0f) || !isfinite(negative_slope) || !(max_value >= 0.0f))
        return FC_ERR_UNSUPPORTED;
    /* A slope of 0 selects 0 rather than multiplying, so -inf gives 0 (not
     * 0 * -inf = NaN), as max(x, 0) does; NaN fails both tests and stays. */
    const int zero_slope = negative_slope == 0.0f;
    n_threads = fc_threads_for((double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float v = x[i];
            const float low = zero_slope && v <= 0.0f ? 0.0f : negative_slope * v;
            const float r = v > 0.0f ? v : low;
            y[i] = r > max_value ? max_value : r;
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}

FC_VECTOR_CLONES int fc_leaky_relu_backward_f32(ptrdiff_t n, const float *dy, const float *y,
                                                float negative_slope, float max_value,
                                                float *dz, int n_threads)
{
    if (!(negative_slope >= 0.0f) || !isfinite(negative_slope) || !(max_value >= 0.0f))
        return FC_ERR_UNSUPPORTED;
    const int zero_slope = negative_slope == 0.0f, capped = isfinite(max_value);
    n_threads = fc_threads_for((double)n, FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < n; ++i) {
            const float g = dy[i], v = y[i];
            /* Selects, not multiplications by 0: an infinite dy gives 0. */
            const float low = zero_slope ? 0.0f : negative_slope * g;
            const float slope_part = v > 0.0f ? g : low;
            dz[i] = capped && v >= max_value ? 0.0f : slope_part;
        }
        fc_team_leave(&team);
    }
    return FC_OK;
}
