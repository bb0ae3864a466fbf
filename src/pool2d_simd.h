/* Pooling's row kernels for one SIMD path, written in the vector vocabulary
 * of simd_avx2.h or simd_avx512.h (VEC of VW floats, VMASK, VCELL) and
 * compiled once per path, as conv2d_direct_simd.h. They take the common
 * case: whole windows (no padding in them) along a row, side by side for
 * the backward passes (stride = window) and at any stride for the forward
 * ones, channels a multiple of VW, so that every window is the same loop
 * over its cells and its channels' results stay in registers. pool2d.c
 * calls them where they apply and takes every other case itself, with the
 * same bits:
 *
 * - a window's maximum starts from -inf, which its first cell replaces
 *   unless it is -inf itself (so the start from the first cell of pool2d.c's
 *   loops), then each cell in row-major order replaces it when larger, or
 *   when NaN while the maximum is not (the first NaN stays); the cell that
 *   last replaced it (the first, for a window of -inf) is the one its
 *   gradient goes to (fastconv.h's argmax);
 * - a window's mean adds its cells in row-major order to the first, then
 *   multiplies by the reciprocal of the count. */

/* Writes v at p, streamed past the cache with `stream` (p then aligned). */
static inline __attribute__((always_inline)) void store(float *p, VEC v, int stream)
{
    if (stream)
        V_STREAM(p, v);
    else
        V_STOREU(p, v);
}

/* One window's maxima for channels [0, NV * VW) into best, its first cell
 * at x (rows `row` floats apart, pixels c); with_cells, their cells'
 * numbers into cell. */
static inline __attribute__((always_inline)) void
window_search(const int NV, const int with_cells, const float *x, ptrdiff_t kh, ptrdiff_t kw,
              ptrdiff_t row, ptrdiff_t c, VEC *best, VCELL *cell)
{
    for (int v = 0; v < NV; ++v) {
        best[v] = V_SET1(-INFINITY);
        if (with_cells)
            cell[v] = C_SET1(0);
    }
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = 0; j < kw; ++j) {
            const float *at = x + i * row + j * c;
            for (int v = 0; v < NV; ++v) {
                const VEC xv = V_LOADU(at + v * VW);
                const VMASK takes = V_TAKES(xv, best[v]);
                best[v] = V_SELECT(takes, xv, best[v]);
                if (with_cells)
                    cell[v] = C_SELECT(takes, C_SET1(i * kw + j), cell[v]);
            }
        }
}

/* One window's maximum for channels [0, NV * VW) at y, as window_search;
 * with_argmax, the cells' numbers (plus FC_POOL_POSITIVE for a positive
 * maximum) at argmax. */
static inline __attribute__((always_inline)) void
window_max(const int NV, const int with_argmax, const float *x, float *y, uint8_t *argmax,
           ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t row, ptrdiff_t c, int stream)
{
    VEC best[4];
    VCELL cell[4];
    window_search(NV, with_argmax, x, kh, kw, row, c, best, cell);
    for (int v = 0; v < NV; ++v) {
        store(y + v * VW, best[v], stream);
        if (with_argmax)
            C_STORE_BYTES(argmax + v * VW,
                          C_MARK(V_POSITIVE(best[v]), cell[v], FC_POOL_POSITIVE));
    }
}

/* One window's mean for channels [0, NV * VW), as window_max. */
static inline __attribute__((always_inline)) void
window_mean(const int NV, const float *x, float *y, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t row,
            ptrdiff_t c, int stream)
{
    VEC sum[4];
    for (int v = 0; v < NV; ++v)
        sum[v] = V_LOADU(x + v * VW);
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = (i == 0); j < kw; ++j) {
            const float *at = x + i * row + j * c;
            for (int v = 0; v < NV; ++v)
                sum[v] = V_ADD(sum[v], V_LOADU(at + v * VW));
        }
    const VEC scale = V_SET1(1.0f / (float)(kh * kw));
    for (int v = 0; v < NV; ++v)
        store(y + v * VW, V_MUL(sum[v], scale), stream);
}

/* One window's gradient from x for channels [0, NV * VW): the first cell
 * holding the maximum's bits gets g (through a ReLU below, only if the
 * maximum is positive), the others zero. */
static inline __attribute__((always_inline)) void
window_gradient(const int NV, const float *x, const float *g, float *dx, ptrdiff_t kh,
                ptrdiff_t kw, ptrdiff_t row, ptrdiff_t c, int relu, int stream)
{
    VEC best[4], grad[4];
    VMASK taken[4];
    window_search(NV, 0, x, kh, kw, row, c, best, NULL);
    for (int v = 0; v < NV; ++v) {
        grad[v] = V_LOADU(g + v * VW);
        if (relu)
            grad[v] = V_SELECT(V_POSITIVE(best[v]), grad[v], V_ZERO());
        taken[v] = M_NONE;
    }
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = 0; j < kw; ++j) {
            const float *at = x + i * row + j * c;
            float *out = dx + i * row + j * c;
            for (int v = 0; v < NV; ++v) {
                const VMASK hit = M_ANDNOT(V_SAME_BITS(V_LOADU(at + v * VW), best[v]), taken[v]);
                taken[v] = M_OR(taken[v], hit);
                store(out + v * VW, V_SELECT(hit, grad[v], V_ZERO()), stream);
            }
        }
}

/* The same from the forward's argmax (a: the window's c bytes) instead of
 * x: the same cells, the same bits. */
static inline __attribute__((always_inline)) void
window_gradient_argmax(const int NV, const uint8_t *a, const float *g, float *dx, ptrdiff_t kh,
                       ptrdiff_t kw, ptrdiff_t row, ptrdiff_t c, int relu, int stream)
{
    VEC grad[4];
    VCELL cell[4];
    for (int v = 0; v < NV; ++v) {
        const VCELL code = C_LOAD_BYTES(a + v * VW);
        grad[v] = V_LOADU(g + v * VW);
        if (relu)
            grad[v] = V_SELECT(C_HAS(code, FC_POOL_POSITIVE), grad[v], V_ZERO());
        cell[v] = C_WITHOUT(code, FC_POOL_POSITIVE);
    }
    for (ptrdiff_t i = 0; i < kh; ++i)
        for (ptrdiff_t j = 0; j < kw; ++j) {
            float *out = dx + i * row + j * c;
            for (int v = 0; v < NV; ++v)
                store(out + v * VW, V_SELECT(C_EQ(cell[v], i * kw + j), grad[v], V_ZERO()),
                      stream);
        }
}

/* Each window's channels in blocks of four vectors (as many loads and
 * stores in flight), then of two and one as they fit: `body(NV, ch)` for
 * channels [ch, ch + NV * VW). */
#define FOR_CHANNEL_BLOCKS(c, body)                                                              \
    do {                                                                                         \
        ptrdiff_t ch_ = 0;                                                                       \
        for (; ch_ + 4 * VW <= (c); ch_ += 4 * VW)                                               \
            body(4, ch_);                                                                        \
        if (ch_ + 2 * VW <= (c)) {                                                               \
            body(2, ch_);                                                                        \
            ch_ += 2 * VW;                                                                       \
        }                                                                                        \
        if (ch_ < (c))                                                                           \
            body(1, ch_);                                                                        \
    } while (0)

static void max_forward_windows(const float *x, float *y, uint8_t *argmax, ptrdiff_t windows,
                                ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t w,
                                ptrdiff_t c, int stream)
{
    const ptrdiff_t row = w * c, step = sw * c;
#define MAX_BLOCK(NV, ch) window_max(NV, 0, x + (ch), y + (ch), NULL, kh, kw, row, c, stream)
#define MAX_ARGMAX_BLOCK(NV, ch)                                                                 \
    window_max(NV, 1, x + (ch), y + (ch), argmax + (ch), kh, kw, row, c, stream)
    if (argmax)
        for (ptrdiff_t p = 0; p < windows; ++p, x += step, y += c, argmax += c)
            FOR_CHANNEL_BLOCKS(c, MAX_ARGMAX_BLOCK);
    else
        for (ptrdiff_t p = 0; p < windows; ++p, x += step, y += c)
            FOR_CHANNEL_BLOCKS(c, MAX_BLOCK);
#undef MAX_BLOCK
#undef MAX_ARGMAX_BLOCK
}

static void avg_forward_windows(const float *x, float *y, ptrdiff_t windows, ptrdiff_t kh,
                                ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t w, ptrdiff_t c, int stream)
{
    const ptrdiff_t row = w * c, step = sw * c;
#define MEAN_BLOCK(NV, ch) window_mean(NV, x + (ch), y + (ch), kh, kw, row, c, stream)
    for (ptrdiff_t p = 0; p < windows; ++p, x += step, y += c)
        FOR_CHANNEL_BLOCKS(c, MEAN_BLOCK);
#undef MEAN_BLOCK
}

static void max_backward_windows(const float *x, const float *g, float *dx, ptrdiff_t windows,
                                 ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t w, ptrdiff_t c, int relu,
                                 int stream)
{
    const ptrdiff_t row = w * c, step = kw * c;
#define GRADIENT_BLOCK(NV, ch)                                                                   \
    window_gradient(NV, x + (ch), g + (ch), dx + (ch), kh, kw, row, c, relu, stream)
    for (ptrdiff_t p = 0; p < windows; ++p, x += step, dx += step, g += c)
        FOR_CHANNEL_BLOCKS(c, GRADIENT_BLOCK);
#undef GRADIENT_BLOCK
}

static void max_backward_argmax_windows(const uint8_t *argmax, const float *g, float *dx,
                                        ptrdiff_t windows, ptrdiff_t kh, ptrdiff_t kw,
                                        ptrdiff_t w, ptrdiff_t c, int relu, int stream)
{
    const ptrdiff_t row = w * c, step = kw * c;
#define ARGMAX_GRADIENT_BLOCK(NV, ch)                                                            \
    window_gradient_argmax(NV, argmax + (ch), g + (ch), dx + (ch), kh, kw, row, c, relu, stream)
    for (ptrdiff_t p = 0; p < windows; ++p, argmax += c, dx += step, g += c)
        FOR_CHANNEL_BLOCKS(c, ARGMAX_GRADIENT_BLOCK);
#undef ARGMAX_GRADIENT_BLOCK
}

#undef FOR_CHANNEL_BLOCKS

static const fc_pool_kernel_set pool_set = {VW, max_forward_windows, avg_forward_windows,
                                            max_backward_windows, max_backward_argmax_windows};

const fc_pool_kernel_set *SET_FN(void) { return &pool_set; }
