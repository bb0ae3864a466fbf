/* Max pooling's row kernels for one SIMD path, written in the vector
 * vocabulary of simd_avx2.h or simd_avx512.h (VEC, VW floats, VMASK) and
 * compiled once per path, as conv2d_direct_simd.h. They take the common
 * case: whole windows side by side (stride = window, no padding in them),
 * channels a multiple of VW, so that every window is the same loop over its
 * cells and its channels' maxima stay in registers. pool2d.c calls them
 * where they apply and takes every other case itself.
 *
 * Each window's maximum is searched for as pool2d.c searches it: from -inf,
 * each cell in row-major order replacing it when larger, or when NaN while
 * the maximum is not (the first NaN stays; a window of -inf keeps -inf, the
 * bits of its first cell). */

/* The gradient of one window for channels [0, NV * VW) from x (its first
 * cell; rows `row` floats apart, pixels c): the first cell holding the
 * maximum's bits gets g (through a ReLU below, only if the maximum is
 * positive), the others zero; streamed past the cache with `stream`. */
static inline __attribute__((always_inline)) void
window_gradient(const int NV, const float *x, const float *g, float *dx, ptrdiff_t kh,
                ptrdiff_t kw, ptrdiff_t row, ptrdiff_t c, int relu, int stream)
{
    VEC best[4], grad[4];
    VMASK taken[4];
    for (int v = 0; v < NV; ++v)
        best[v] = V_SET1(-INFINITY);
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = 0; j < kw; ++j) {
            const float *cell = x + i * row + j * c;
            for (int v = 0; v < NV; ++v) {
                const VEC xv = V_LOADU(cell + v * VW);
                best[v] = V_SELECT(V_TAKES(xv, best[v]), xv, best[v]);
            }
        }
    for (int v = 0; v < NV; ++v) {
        grad[v] = V_LOADU(g + v * VW);
        if (relu)
            grad[v] = V_SELECT(V_POSITIVE(best[v]), grad[v], V_ZERO());
        taken[v] = M_NONE;
    }
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = 0; j < kw; ++j) {
            const float *cell = x + i * row + j * c;
            float *out = dx + i * row + j * c;
            for (int v = 0; v < NV; ++v) {
                const VMASK hit = M_ANDNOT(V_SAME_BITS(V_LOADU(cell + v * VW), best[v]), taken[v]);
                taken[v] = M_OR(taken[v], hit);
                const VEC o = V_SELECT(hit, grad[v], V_ZERO());
                if (stream)
                    V_STREAM(out + v * VW, o);
                else
                    V_STOREU(out + v * VW, o);
            }
        }
}

static void max_backward_row(const float *x, const float *g, float *dx, ptrdiff_t windows,
                             ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t w, ptrdiff_t c, int relu,
                             int stream)
{
    const ptrdiff_t row = w * c, step = kw * c;
    for (ptrdiff_t p = 0; p < windows; ++p, x += step, dx += step, g += c) {
        /* Four vectors at a time (as many loads and stores in flight), then
         * two and one as they fit. */
        ptrdiff_t ch = 0;
        for (; ch + 4 * VW <= c; ch += 4 * VW)
            window_gradient(4, x + ch, g + ch, dx + ch, kh, kw, row, c, relu, stream);
        if (ch + 2 * VW <= c) {
            window_gradient(2, x + ch, g + ch, dx + ch, kh, kw, row, c, relu, stream);
            ch += 2 * VW;
        }
        if (ch < c)
            window_gradient(1, x + ch, g + ch, dx + ch, kh, kw, row, c, relu, stream);
    }
}

static const fc_pool_kernel_set pool_set = {VW, max_backward_row};

const fc_pool_kernel_set *SET_FN(void) { return &pool_set; }
