/* Winograd convolution for stride-2 layers of 4x4 and 5x5 kernels (DCGAN's
 * discriminators: Keras's example takes 4x4, TensorFlow's tutorial 5x5):
 * the forward pass here, the backward-input pass and the weight gradient's
 * transforms in the sections below.
 *
 * Split by the parity of its rows and columns (phase a, b), the padded input
 * is four images X_ab[i][j] = x[2i + a - pt][2j + b - pl], and the kernel
 * four sub-kernels W_ab[p][q] = w[2p + a][2q + b] of r x r taps, r = k / 2
 * rounded up (those past the kernel's edge zero: a 5x5 kernel's odd phases
 * have 2 of their 3 rows or columns), and
 *     y[oh][ow] = sum over a, b, p, q of W_ab[p][q] X_ab[oh + p][ow + q]:
 * a stride-1 r x r layer over the 4 c channels of the stacked phase images.
 * That runs by Winograd with 4x4 output tiles: F(4x4, 2x2) on a 5x5 domain
 * for 4x4 kernels, 25 multiplications per (phase channel, filter) pair, 6.25
 * per output and (channel, filter) against the direct method's 16; F(4x4,
 * 3x3) on winograd_6x6.c's 6x6 domain for 5x5 kernels, 9 against 25. The 5x5
 * domain takes the interpolation points 0, 1, -1, 2 and infinity:
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 *     B^T = | 2 -1 -2  1  0 |   G = |  1/2     0 |   A^T = | 1  1  1  1  0 |
 *           | 0 -2 -1  1  0 |       | -1/2  -1/2 |         | 0  1 -1  2  0 |
 *           | 0  2 -3  1  0 |       | -1/6   1/6 |         | 0  1  1  4  0 |
 *           | 0 -1  0  1  0 |       |  1/6   1/3 |         | 0  1 -1  8  1 |
 *           | 0  2 -1 -2  1 |       |    0     1 |
 * (rows of G: p^0, p^1 over the product of p minus the other points, then
 * the point at infinity's; A^T's rows p^0..p^3). On unit normal data its
 * error is about 1.4e-6 of a result per channel pair, about that of
 * F(4x4, 3x3).
 *
 * 3x3 stride-2 layers split the same way (sub-kernels of 2x2, 2x1, 1x2 and
 * 1x1 taps, zero-padded to 2x2: 6.25 products per output against 9) but did
 * not pay: the transforms and the GEMMs' lower rate on 4 c deep products
 * outweighed the saved multiply-adds (32 x 32 x 32 x 64 -> 128, 2 threads:
 * 3.9-4.0 ms by the GEMM, 4.5 by this method; 16 x 16 x 64 -> 128 at batch
 * 128: 3.8 against 4.4), so they stay with the GEMM.
 *
 * As in winograd_6x6.c, per position xi the products over the 4 c stacked
 * channels are one GEMM, M[xi] (tiles, f) = V[xi] (tiles, 4c) x U[xi] (4c,
 * f) (fc_winograd_products), over blocks of tiles sized for L2: a thread
 * transforms a block's patches, runs the GEMMs and transforms the results
 * straight into y with the bias and ReLU. Each output pixel is computed by
 * one thread in a fixed order, so results do not depend on the number of
 * threads. */
#include <string.h>

#include "fc_internal.h"

#define PHASES 4   /* (row parity, column parity) of the input */
#define MAX_SIDE 6 /* of a patch: 5 (4x4 kernels) or 6 (5x5) */

static ptrdiff_t tiles_of(ptrdiff_t out) { return fc_ceil_div(out, 4); }

/* A patch's side: the transformed domain is side x side. */
static int side_of(const fc_conv2d_desc *d) { return d->kh == 4 ? 5 : 6; }

int fc_winograd_strided_positions(const fc_conv2d_desc *d) { return side_of(d) * side_of(d); }

int fc_winograd_strided_applies(const fc_conv2d_desc *d)
{
    if (!(fc_winograd_current() != FC_WINOGRAD_OFF && d->sh == 2 && d->sw == 2 && d->dh == 1
          && d->dw == 1 && (d->kh == 4 || d->kh == 5) && d->kw == d->kh
          && d->c >= FC_WINOGRAD_MIN_CHANNELS && d->f >= FC_WINOGRAD_MIN_CHANNELS))
        return 0;
    /* Per channel-filter pair: 4 xi products per tile, and 4 xi floats of U,
     * at most FC_WINOGRAD_STRIDED_MAX_U_FLOATS of them in all. */
    const ptrdiff_t xi = fc_winograd_strided_positions(d);
    const ptrdiff_t tiles = d->n * tiles_of(d->ho) * tiles_of(d->wo);
    return PHASES * xi * d->c * d->f <= FC_WINOGRAD_STRIDED_MAX_U_FLOATS
           && fc_winograd_pays(d, tiles, PHASES * xi, FC_WINOGRAD_KERNEL_COST);
}

/* G (side x r) in double: the 5x5 domain's (see the top of the file), or
 * the 6x6 domain's for r = 3. */
static void kernel_matrix(int side, double G[MAX_SIDE][3])
{
    if (side == 5) {
        static const double G5[5][2] = {
            {1.0 / 2, 0.0}, {-1.0 / 2, -1.0 / 2}, {-1.0 / 6, 1.0 / 6}, {1.0 / 6, 1.0 / 3},
            {0.0, 1.0},
        };
        for (int i = 0; i < 5; ++i)
            for (int a = 0; a < 2; ++a)
                G[i][a] = G5[i][a];
    } else {
        double G6[6][5];
        fc_winograd_6x6_kernel_matrix(3, G6);
        for (int i = 0; i < 6; ++i)
            for (int a = 0; a < 3; ++a)
                G[i][a] = G6[i][a];
    }
}

/* out[xi * ld_x + j] = (G g G^T)[xi] of the r x r kernels g[p][q][j] of
 * one panel's valid columns, in double, rounded once; the panel's other
 * columns (up to nr) zero. */
static void transform_gathered(const double G[MAX_SIDE][3], int side, int r,
                               double g[3][3][FC_NR_MAX], ptrdiff_t valid, int nr,
                               ptrdiff_t ld_x, float *out)
{
    double t[MAX_SIDE][3][FC_NR_MAX];
    for (int i = 0; i < side; ++i)
        for (int q = 0; q < r; ++q) {
            FC_OMP(omp simd)
            for (ptrdiff_t j = 0; j < valid; ++j) {
                double sum = 0.0;
                for (int p = 0; p < r; ++p)
                    sum += G[i][p] * g[p][q][j];
                t[i][q][j] = sum;
            }
        }
    for (int i = 0; i < side; ++i)
        for (int l = 0; l < side; ++l) {
            float *o = out + (i * side + l) * ld_x;
            FC_OMP(omp simd)
            for (ptrdiff_t j = 0; j < valid; ++j) {
                double sum = 0.0;
                for (int q = 0; q < r; ++q)
                    sum += t[i][q][j] * G[l][q];
                o[j] = (float)sum;
            }
            for (ptrdiff_t j = valid; j < nr; ++j)
                o[j] = 0.0f;
        }
}

/* Weight (kr, kc) of w (k x k x c x f) for channel ci and filter fo: 0 past
 * the kernel's edge. Sets *bad when it is infinite or NaN. */
static inline double tap_of(const float *w, ptrdiff_t k, ptrdiff_t c, ptrdiff_t f, ptrdiff_t kr,
                            ptrdiff_t kc, ptrdiff_t ci, ptrdiff_t fo, int *bad)
{
    const double v = kr < k && kc < k ? w[((kr * k + kc) * c + ci) * f + fo] : 0.0;
    *bad |= v - v != 0.0; /* NaN for an infinity or a NaN */
    return v;
}

/* The forward pass's U for channel ci and filters [j0, j0 + valid) (a panel
 * nr wide): rows ph * c + ci of each position's panel (ld_x floats between
 * positions), from the sub-kernels W_ab. Returns nonzero when one of the
 * weights is infinite or NaN. */
static int forward_panel(const double G[MAX_SIDE][3], int side, int r, ptrdiff_t k,
                         const float *w, ptrdiff_t c, ptrdiff_t f, ptrdiff_t ci, ptrdiff_t j0,
                         ptrdiff_t valid, int nr, ptrdiff_t ld_x, float *out)
{
    int bad = 0;
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
            double g[3][3][FC_NR_MAX];
            for (int p = 0; p < r; ++p)
                for (int q = 0; q < r; ++q)
                    for (ptrdiff_t j = 0; j < valid; ++j)
                        g[p][q][j] = tap_of(w, k, c, f, 2 * p + a, 2 * q + b, ci, j0 + j, &bad);
            transform_gathered(G, side, r, g, valid, nr, ld_x, out + ((a * 2 + b) * c + ci) * nr);
        }
    return bad;
}

/* The backward-input pass's U for filter fo and output columns [j0, j0 +
 * valid) of a group of phases (column l * c + ci: channel ci of the group's
 * phase phases[l]): row fo of each position's panel, from the flipped
 * sub-kernels W_ab[r-1-p][r-1-q]. Returns nonzero when one of the weights is
 * infinite or NaN. */
static int backward_panel(const double G[MAX_SIDE][3], int side, int r, ptrdiff_t k,
                          const float *w, ptrdiff_t c, ptrdiff_t f, const int *phases,
                          ptrdiff_t fo, ptrdiff_t j0, ptrdiff_t valid, int nr, ptrdiff_t ld_x,
                          float *out)
{
    int bad = 0;
    double g[3][3][FC_NR_MAX];
    for (ptrdiff_t j = 0; j < valid; ++j) {
        const ptrdiff_t l = (j0 + j) / c, ci = j0 + j - l * c;
        const int a = phases[l] / 2, b = phases[l] % 2;
        for (int p = 0; p < r; ++p)
            for (int q = 0; q < r; ++q)
                g[p][q][j] = tap_of(w, k, c, f, 2 * (r - 1 - p) + a, 2 * (r - 1 - q) + b, ci, fo,
                                    &bad);
    }
    transform_gathered(G, side, r, g, valid, nr, ld_x, out + fo * nr);
    return bad;
}

/* U[xi] packed as the micro-kernel's B panels, nr wide, all panels of a
 * position together. Forward (phases NULL): 4 c rows (ph * c + ci) by f
 * columns, G W_ab G^T; backward (the input gradient's, for n_phases phases):
 * f rows by n_phases c columns, of the flipped sub-kernels. Row row of panel
 * jp of position xi at up[((xi * n_panels + jp) * rows + row) * nr].
 * Returns 0 when a weight is infinite or NaN, else 1. */
static int transform_weights(const fc_conv2d_desc *d, const float *w, const int *phases,
                             int n_phases, int nr, float *up, int n_threads)
{
    const int side = side_of(d), r = (int)fc_ceil_div(d->kh, 2);
    const ptrdiff_t c = d->c, f = d->f;
    const ptrdiff_t rows = phases ? f : PHASES * c, cols = phases ? n_phases * c : f;
    const ptrdiff_t n_panels = fc_ceil_div(cols, nr);
    const ptrdiff_t ld_x = n_panels * rows * nr; /* floats between positions */
    double G[MAX_SIDE][3];
    kernel_matrix(side, G);
    n_threads = fc_threads_for((double)(side * side * rows * cols), FC_GRAIN_ELEMENTS, n_threads);
    int bad = 0;
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1) reduction(|:bad))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t i = 0; i < (phases ? f : c); ++i)
            for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
                const ptrdiff_t j0 = jp * nr, valid = fc_min(nr, cols - j0);
                float *panel = up + jp * rows * nr;
                bad |= phases ? backward_panel(G, side, r, d->kh, w, c, f, phases, i, j0, valid,
                                               nr, ld_x, panel)
                              : forward_panel(G, side, r, d->kh, w, c, f, i, j0, valid, nr,
                                              ld_x, panel);
            }
        fc_team_leave(&team);
    }
    return !bad;
}

/* s0..s4 = B^T d for one column (or row) d0..d4 of a patch. */
#define INPUT_POINTS(d0, d1, d2, d3, d4, s0, s1, s2, s3, s4)                          \
    do {                                                                              \
        s0 = 2.0f * ((d0) - (d2)) - (d1) + (d3);                                      \
        s1 = (d3) - (d2) - 2.0f * (d1);                                               \
        s2 = 2.0f * (d1) - 3.0f * (d2) + (d3);                                        \
        s3 = (d3) - (d1);                                                             \
        s4 = 2.0f * ((d1) - (d3)) - (d2) + (d4);                                      \
    } while (0)

/* out[xi * ld + ch] = (B^T d B)[xi] of the 5x5 patch whose pixels are
 * p[i*5 + j] (c channels each), for ch < c. */
FC_VECTOR_CLONES static void transform_patch5(const float *const *p, ptrdiff_t c, ptrdiff_t ld,
                                             float *out)
{
    FC_OMP(omp simd)
    for (ptrdiff_t ch = 0; ch < c; ++ch) {
        float s[5][5];
        _Pragma("GCC unroll 5")
        for (int j = 0; j < 5; ++j) /* B^T d: combine rows */
            INPUT_POINTS(p[j][ch], p[5 + j][ch], p[10 + j][ch], p[15 + j][ch], p[20 + j][ch],
                         s[0][j], s[1][j], s[2][j], s[3][j], s[4][j]);
        float *o = out + ch;
        _Pragma("GCC unroll 5")
        for (int r = 0; r < 5; ++r) /* (B^T d) B: combine columns */
            INPUT_POINTS(s[r][0], s[r][1], s[r][2], s[r][3], s[r][4], o[(r * 5) * ld],
                         o[(r * 5 + 1) * ld], o[(r * 5 + 2) * ld], o[(r * 5 + 3) * ld],
                         o[(r * 5 + 4) * ld]);
    }
}

/* The forward pass's V (and the weight gradient's): each phase image's side
 * x side patch, read from x at stride 2, zeros in the padding. */
void fc_winograd_strided_inputs(const fc_conv2d_desc *d, const float *x, ptrdiff_t tiles_h,
                                ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld,
                                const float *zeros, float *v)
{
    const int side = side_of(d);
    const ptrdiff_t c = d->c, per_img = tiles_h * tiles_w;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                const float *p[MAX_SIDE * MAX_SIDE];
                for (int i = 0; i < side; ++i)
                    for (int j = 0; j < side; ++j) {
                        const ptrdiff_t ih = 2 * (4 * th + i) + a - d->pt;
                        const ptrdiff_t iw = 2 * (4 * tw + j) + b - d->pl;
                        p[i * side + j] = (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
                                              ? zeros
                                              : x + ((img * d->h + ih) * d->w + iw) * c;
                    }
                float *out = v + t * PHASES * c + (a * 2 + b) * c;
                if (side == 5)
                    transform_patch5(p, c, ld, out);
                else
                    fc_winograd_6x6_patch(p, c, ld, out);
            }
    }
}

/* o0..o3 = A^T m for one column (or row) m0..m4 of a tile's products. */
#define OUTPUT_POINTS(m0, m1, m2, m3, m4, o0, o1, o2, o3)                             \
    do {                                                                              \
        const float s_ = (m1) + (m2), t_ = (m1) - (m2);                               \
        o0 = (m0) + s_ + (m3);                                                        \
        o1 = t_ + 2.0f * (m3);                                                        \
        o2 = s_ + 4.0f * (m3);                                                        \
        o3 = t_ + 8.0f * (m3) + (m4);                                                 \
    } while (0)

/* One tile's y = A^T m A + bias (ReLU, a constant once inlined) on the 5x5
 * domain, its 4x4 outputs ld_row floats a row apart. Returns nonzero when
 * an output is an infinity or NaN (see FC_NONFINITE). */
static inline __attribute__((always_inline)) int
output_tile(const int relu, const float *in, ptrdiff_t ld_block, ptrdiff_t f, const float *bias,
            float *out, ptrdiff_t ld_row)
{
    int bad = 0;
    FC_OMP(omp simd reduction(|:bad))
    for (ptrdiff_t fo = 0; fo < f; ++fo) {
        float s[4][5], r[4][4];
        const float *m = in + fo;
        _Pragma("GCC unroll 5")
        for (int j = 0; j < 5; ++j) /* A^T m: combine rows */
            OUTPUT_POINTS(m[j * ld_block], m[(5 + j) * ld_block], m[(10 + j) * ld_block],
                          m[(15 + j) * ld_block], m[(20 + j) * ld_block], s[0][j], s[1][j],
                          s[2][j], s[3][j]);
        _Pragma("GCC unroll 4")
        for (int i = 0; i < 4; ++i) /* (A^T m) A: combine columns */
            OUTPUT_POINTS(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], r[i][0], r[i][1], r[i][2],
                          r[i][3]);
        _Pragma("GCC unroll 4")
        for (int i = 0; i < 4; ++i)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < 4; ++j) {
                float v = r[i][j] + bias[fo];
                if (relu) /* a NaN stays NaN */
                    v = v < 0.0f ? 0.0f : v;
                out[i * ld_row + j * f + fo] = v;
                bad |= v - v != 0.0f; /* NaN: not finite */
            }
    }
    return bad;
}

/* y = A^T m A + bias (ReLU) for the block's tiles; m[xi][t][fo]. A tile cut
 * by the image's far edge is written to `edge` (16 f floats) and its part
 * inside the image copied. Returns nonzero when an output (of a cut tile: in
 * or out of the image) is an infinity or NaN. */
FC_VECTOR_CLONES static int transform_outputs(const fc_conv2d_desc *d, const float *m,
                                              ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                              ptrdiff_t count, ptrdiff_t ld_block,
                                              const float *bias, float *edge, float *y)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w, ld_row = d->wo * f;
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const ptrdiff_t oh = 4 * th, ow = 4 * tw;
        const ptrdiff_t rows = fc_min(4, d->ho - oh), cols = fc_min(4, d->wo - ow);
        float *out = y + ((img * d->ho + oh) * d->wo + ow) * f;
        const int whole = rows == 4 && cols == 4;
        float *dst = whole ? out : edge;
        const ptrdiff_t ld = whole ? ld_row : 4 * f;
        if (side_of(d) == 6)
            bad |= fc_winograd_6x6_output_tile4(m + t * f, ld_block, f, bias, d->relu, dst, ld);
        else if (d->relu)
            bad |= output_tile(1, m + t * f, ld_block, f, bias, dst, ld);
        else
            bad |= output_tile(0, m + t * f, ld_block, f, bias, dst, ld);
        if (!whole)
            for (ptrdiff_t i = 0; i < rows; ++i)
                memcpy(out + i * ld_row, edge + i * 4 * f, (size_t)(cols * f) * sizeof(float));
    }
    return bad;
}

int fc_conv2d_winograd_strided_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                   const float *b, float *y, int n_threads)
{
    const int NR = fc_kernels_for(d->f)->nr, xi = fc_winograd_strided_positions(d);
    const ptrdiff_t c = d->c, f = d->f, depth = PHASES * c;
    const ptrdiff_t tiles_h = tiles_of(d->ho), tiles_w = tiles_of(d->wo);
    const ptrdiff_t tiles = d->n * tiles_h * tiles_w;
    if (tiles == 0 || f == 0)
        return FC_OK;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t u_floats = xi * fc_ceil_div(f, NR) * NR * depth;
    /* Per thread: V, M, c zeros (the padding's pixels), an edge tile. */
    const fc_winograd_blocks bl = fc_winograd_plan_blocks(tiles, xi, depth, f, c + 16 * f,
                                                          n_threads);
    const ptrdiff_t run = bl.run, ld_v = bl.ld_v, ld_m = bl.ld_m, per_thread = bl.per_thread;
    const int threads = bl.threads;
    /* U's panels, then the bias (zeros without one). */
    float *up = fc_aligned_alloc((size_t)(u_floats + f) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = up && ws ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK && !transform_weights(d, w, NULL, 0, NR, up, n_threads))
        status = FC_NONFINITE;
    if (status != FC_OK) {
        fc_aligned_free(up);
        fc_aligned_free(ws);
        return status;
    }
    float *bias = up + u_floats;
    for (ptrdiff_t j = 0; j < f; ++j)
        bias[j] = b ? b[j] : 0.0f;

    int bad = 0; /* any thread's finding, or-ed at the region's end */
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1) reduction(|:bad))
    {
        fc_fp_state fp = fc_fp_enter();
        float *v = ws + fc_thread_id() * per_thread;
        float *mm = v + xi * ld_v;
        float *zeros = mm + xi * ld_m;
        float *edge = zeros + c;
        /* Rows of V past the last patch are read by the micro-kernel: keep
         * them finite; the padding input must be zero. */
        memset(v, 0, (size_t)(xi * ld_v) * sizeof(float));
        memset(zeros, 0, (size_t)c * sizeof(float));
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t blk = 0; blk < bl.n_blocks; ++blk) {
            const ptrdiff_t t0 = blk * run, count = fc_min(run, tiles - t0);
            fc_winograd_strided_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
            fc_winograd_products(xi, v, ld_v, depth, up, f, count, mm, ld_m);
            bad |= transform_outputs(d, mm, tiles_h, tiles_w, t0, count, ld_m, bias, edge, y);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(up);
    fc_aligned_free(ws);
    return bad ? FC_NONFINITE : FC_OK;
}

/* ---- the backward-input pass ------------------------------------------------
 *
 * dx's phase images dX_ab[i][j] = dx[2i + a - pt][2j + b - pl] are
 *     dX_ab[i][j] = sum over p, q < r of W_ab[p][q]^T dy[i - p][j - q]:
 * each a stride-1 r x r layer over dy with the flipped sub-kernel. Phase a's
 * rows of dx start at i = o_a = ceil((pt - a) / 2), which differs between
 * the two row phases when pt is odd (as with 4x4 kernels padded "same"):
 * tiles over i from a common origin would then cover a row more than either
 * phase has (17 tile rows for 16 rows of each, a fifth more tiles on a
 * 32-row image, a half more in all). So the tiles run over each phase's own
 * rows and columns, and the phases that share their origins form a group:
 * its dy patches (of side x side pixels, r - 1 above and left of the tile's
 * origin) are transformed once, and its products are one GEMM of f channels
 * to (phases in the group) x c outputs, by the same Winograd domain. Each
 * output pixel of dx is written once, masked there when asked. */

/* The phases grouped by their phase images' origins (o_a, q_b). */
typedef struct {
    int n_groups;
    int n_phases[PHASES];     /* of each group */
    int phases[PHASES][PHASES]; /* a * 2 + b of each */
    ptrdiff_t row0[PHASES], col0[PHASES]; /* the group's first i and j */
} phase_groups;

static phase_groups group_phases(const fc_conv2d_desc *d)
{
    const ptrdiff_t o[2] = {(d->pt + 1) / 2, d->pt / 2}, q[2] = {(d->pl + 1) / 2, d->pl / 2};
    const int row_groups = o[0] == o[1] ? 1 : 2, col_groups = q[0] == q[1] ? 1 : 2;
    phase_groups g = {0};
    for (int rg = 0; rg < row_groups; ++rg)
        for (int cg = 0; cg < col_groups; ++cg) {
            const int n = g.n_groups++;
            g.row0[n] = o[rg];
            g.col0[n] = q[cg];
            for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b)
                    if ((row_groups == 1 || a == rg) && (col_groups == 1 || b == cg))
                        g.phases[n][g.n_phases[n]++] = a * 2 + b;
        }
    return g;
}

/* Tiles per image side: over the longer phase image, in that dimension. */
static ptrdiff_t phase_tiles(ptrdiff_t in, ptrdiff_t pad)
{
    const ptrdiff_t even = (in + pad + 1) / 2 - (pad + 1) / 2, odd = (in + pad) / 2 - pad / 2;
    return tiles_of(fc_max(even, odd));
}

/* V[xi][t][fo] for tiles [t0, t0 + count) of a group with origin (row0,
 * col0): dy's side x side patch at (row0 + 4 th - (r - 1), col0 + 4 tw -
 * (r - 1)), zeros outside dy. */
static void transform_grads(const fc_conv2d_desc *d, const float *dy, ptrdiff_t row0,
                            ptrdiff_t col0, ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                            ptrdiff_t count, ptrdiff_t ld, const float *zeros, float *v)
{
    const int side = side_of(d);
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w, back = fc_ceil_div(d->kh, 2) - 1;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const float *p[MAX_SIDE * MAX_SIDE];
        for (int i = 0; i < side; ++i)
            for (int j = 0; j < side; ++j) {
                const ptrdiff_t oh = row0 + 4 * th - back + i, ow = col0 + 4 * tw - back + j;
                p[i * side + j] = (oh < 0 || oh >= d->ho || ow < 0 || ow >= d->wo)
                                      ? zeros
                                      : dy + ((img * d->ho + oh) * d->wo + ow) * f;
            }
        if (side == 5)
            transform_patch5(p, f, ld, v + t * f);
        else
            fc_winograd_6x6_patch(p, f, ld, v + t * f);
    }
}

/* dx from a group's products m[xi][t][l * c + ci] (phase phases[l]): each
 * phase's 4x4 tile through A^T m A into `edge` (16 c floats), then its
 * pixels inside dx to dx[2i + a - pt][2j + b - pl], 0 where the mask (if
 * any) is not positive. Returns nonzero when a value of a tile (in or out of
 * dx) is an infinity or NaN. */
FC_VECTOR_CLONES static int transform_phase_outputs(const fc_conv2d_desc *d, const float *m,
                                                    const phase_groups *g, int group,
                                                    ptrdiff_t tiles_h, ptrdiff_t tiles_w,
                                                    ptrdiff_t t0, ptrdiff_t count,
                                                    ptrdiff_t ld_block, const float *zeros,
                                                    const float *mask, float *edge, float *dx)
{
    const ptrdiff_t c = d->c, per_img = tiles_h * tiles_w, n = g->n_phases[group];
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const ptrdiff_t i0 = g->row0[group] + 4 * th, j0 = g->col0[group] + 4 * tw;
        for (ptrdiff_t l = 0; l < n; ++l) {
            const int a = g->phases[group][l] / 2, b = g->phases[group][l] % 2;
            const float *in = m + (t * n + l) * c;
            bad |= side_of(d) == 6
                       ? fc_winograd_6x6_output_tile4(in, ld_block, c, zeros, 0, edge, 4 * c)
                       : output_tile(0, in, ld_block, c, zeros, edge, 4 * c);
            for (int i = 0; i < 4; ++i) { /* i0 >= o_a: ih >= 0 */
                const ptrdiff_t ih = 2 * (i0 + i) + a - d->pt;
                if (ih >= d->h)
                    break;
                for (int j = 0; j < 4; ++j) {
                    const ptrdiff_t iw = 2 * (j0 + j) + b - d->pl;
                    if (iw >= d->w)
                        break;
                    const ptrdiff_t at = ((img * d->h + ih) * d->w + iw) * c;
                    const float *e = edge + (i * 4 + j) * c;
                    if (mask)
                        for (ptrdiff_t ci = 0; ci < c; ++ci)
                            dx[at + ci] = mask[at + ci] > 0.0f ? e[ci] : 0.0f;
                    else
                        memcpy(dx + at, e, (size_t)c * sizeof(float));
                }
            }
        }
    }
    return bad;
}

int fc_conv2d_winograd_strided_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                                  const float *w, const float *mask, float *dx,
                                                  int n_threads)
{
    const ptrdiff_t c = d->c, f = d->f;
    const int xi = fc_winograd_strided_positions(d);
    const ptrdiff_t tiles_h = phase_tiles(d->h, d->pt), tiles_w = phase_tiles(d->w, d->pl);
    const ptrdiff_t tiles = d->n * tiles_h * tiles_w;
    if (tiles == 0 || c == 0)
        return FC_OK;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const phase_groups g = group_phases(d);
    /* Each group's U (f rows, its phases' columns, in panels as wide as the
     * micro-kernel for that many columns), one after another. */
    ptrdiff_t u_at[PHASES + 1] = {0};
    int nr[PHASES];
    for (int k = 0; k < g.n_groups; ++k) {
        nr[k] = fc_kernels_for(g.n_phases[k] * c)->nr;
        u_at[k + 1] = u_at[k] + xi * fc_round_up(g.n_phases[k] * c, nr[k]) * f;
    }
    /* Per thread: V and M of one group at a time, f zeros (dy's padding; the
     * first c of them the bias), an edge tile. */
    const fc_winograd_blocks bl = fc_winograd_plan_blocks(tiles, xi, f, PHASES * c,
                                                          fc_max(f, c) + 16 * c, n_threads);
    const ptrdiff_t run = bl.run, ld_v = bl.ld_v, ld_m = bl.ld_m, per_thread = bl.per_thread;
    const int threads = bl.threads;
    float *up = fc_aligned_alloc((size_t)u_at[g.n_groups] * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = up && ws ? FC_OK : FC_ERR_NOMEM;
    for (int k = 0; k < g.n_groups && status == FC_OK; ++k)
        if (!transform_weights(d, w, g.phases[k], g.n_phases[k], nr[k], up + u_at[k],
                               n_threads))
            status = FC_NONFINITE;
    if (status != FC_OK) {
        fc_aligned_free(up);
        fc_aligned_free(ws);
        return status;
    }

    int bad = 0; /* any thread's finding, or-ed at the region's end */
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1) reduction(|:bad))
    {
        fc_fp_state fp = fc_fp_enter();
        float *v = ws + fc_thread_id() * per_thread;
        float *mm = v + xi * ld_v;
        float *zeros = mm + xi * ld_m;
        float *edge = zeros + fc_max(f, c);
        memset(v, 0, (size_t)(xi * ld_v) * sizeof(float));
        memset(zeros, 0, (size_t)fc_max(f, c) * sizeof(float));
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t blk = 0; blk < bl.n_blocks; ++blk) {
            const ptrdiff_t t0 = blk * run, count = fc_min(run, tiles - t0);
            for (int k = 0; k < g.n_groups; ++k) {
                transform_grads(d, dy, g.row0[k], g.col0[k], tiles_h, tiles_w, t0, count, ld_v,
                                zeros, v);
                fc_winograd_products(xi, v, ld_v, f, up + u_at[k], g.n_phases[k] * c, count, mm,
                                     ld_m);
                bad |= transform_phase_outputs(d, mm, &g, k, tiles_h, tiles_w, t0, count, ld_m,
                                               zeros, mask, edge, dx);
            }
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(up);
    fc_aligned_free(ws);
    return bad ? FC_NONFINITE : FC_OK;
}

/* ---- the weight gradient ----------------------------------------------------
 *
 * dW_ab[p][q] = sum over dy's pixels (i, j) of X_ab[i + p][j + q] dy[i][j]^T:
 * per 4x4 tile of dy, the same domain with the roles of kernel and output
 * swapped (F(r x r, 4x4)): S[xi] = sum over tiles of (B^T X_ab B)[xi] (the
 * forward pass's transformed patches, 4 c deep) times (A dy A^T)[xi] (f
 * wide), then dW_ab = G^T S G. winograd.c's weight-gradient driver runs the
 * sums (fc_conv2d_winograd_backward_weight_f32); the transforms are here. */

/* z0..z4 = A g for one column (or row) g0..g3 of a 4x4 tile of dy, A the
 * transpose of the 5x5 domain's A^T. */
#define GRAD_POINTS(g0, g1, g2, g3, z0, z1, z2, z3, z4)                               \
    do {                                                                              \
        const float e_ = (g0) + (g2), o_ = (g1) + (g3);                               \
        z0 = (g0);                                                                    \
        z1 = e_ + o_;                                                                 \
        z2 = e_ - o_;                                                                 \
        z3 = (g0) + 2.0f * (g1) + 4.0f * (g2) + 8.0f * (g3);                          \
        z4 = (g3);                                                                    \
    } while (0)

/* out[xi * ld + fo] = (A g A^T)[xi] of the 4x4 tile of pixels g[i * 4 + j]
 * (f filters each) for fo in [f0, f1), on the 5x5 domain; db[fo] += the
 * tile's sum. */
static inline __attribute__((always_inline)) void
grad_tile5(const float *const *g, ptrdiff_t f0, ptrdiff_t f1, ptrdiff_t ld, float *out, float *db)
{
    FC_OMP(omp simd)
    for (ptrdiff_t fo = f0; fo < f1; ++fo) {
        float s[5][4], sum = 0.0f;
        _Pragma("GCC unroll 16")
        for (int e = 0; e < 16; ++e)
            sum += g[e][fo];
        db[fo] += sum;
        _Pragma("GCC unroll 4")
        for (int j = 0; j < 4; ++j) /* A g: spread rows */
            GRAD_POINTS(g[j][fo], g[4 + j][fo], g[8 + j][fo], g[12 + j][fo], s[0][j], s[1][j],
                        s[2][j], s[3][j], s[4][j]);
        float *o = out + fo;
        _Pragma("GCC unroll 5")
        for (int r = 0; r < 5; ++r) /* (A g) A^T: spread columns */
            GRAD_POINTS(s[r][0], s[r][1], s[r][2], s[r][3], o[(r * 5) * ld], o[(r * 5 + 1) * ld],
                        o[(r * 5 + 2) * ld], o[(r * 5 + 3) * ld], o[(r * 5 + 4) * ld]);
    }
}

FC_VECTOR_CLONES void fc_winograd_strided_grads(const fc_conv2d_desc *d, const float *dy,
                                                ptrdiff_t tiles_h, ptrdiff_t tiles_w,
                                                ptrdiff_t t0, ptrdiff_t count, ptrdiff_t kc,
                                                int nr, ptrdiff_t ld, const float *zeros,
                                                float *zp, float *db)
{
    if (side_of(d) == 6) { /* winograd_6x6.c's F(3x3, 4x4) grads: a 3x3 kernel's tiles */
        fc_conv2d_desc as_3x3 = *d;
        as_3x3.kh = as_3x3.kw = 3;
        fc_winograd_6x6_grads(&as_3x3, dy, NULL, NULL, tiles_h, tiles_w, t0, count, kc, nr, ld,
                              zeros, zp, db);
        return;
    }
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const float *g[16];
        for (ptrdiff_t i = 0; i < 4; ++i)
            for (ptrdiff_t j = 0; j < 4; ++j) {
                const ptrdiff_t oh = 4 * th + i, ow = 4 * tw + j;
                g[i * 4 + j] = oh >= d->ho || ow >= d->wo
                                   ? zeros
                                   : dy + ((img * d->ho + oh) * d->wo + ow) * f;
            }
        /* Packed as the micro-kernel's B panels (nr filters, kc tiles each). */
        for (ptrdiff_t f0 = 0; f0 < f; f0 += nr)
            grad_tile5(g, f0, fc_min(f0 + nr, f), ld, zp + f0 * kc + t * nr - f0, db);
    }
}

void fc_winograd_strided_weights(const fc_conv2d_desc *d, const float *s, ptrdiff_t ld_s,
                                 float *dw, ptrdiff_t cf0, ptrdiff_t cf1)
{
    const int side = side_of(d), r = (int)fc_ceil_div(d->kh, 2);
    const ptrdiff_t c = d->c, f = d->f, k = d->kh;
    double G[MAX_SIDE][3];
    kernel_matrix(side, G);
    float gt[MAX_SIDE][3]; /* G in float, as the sums run */
    for (int i = 0; i < side; ++i)
        for (int p = 0; p < r; ++p)
            gt[i][p] = (float)G[i][p];
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
            const float *sp = s + (a * 2 + b) * c * f; /* phase ab's rows of S */
            FC_OMP(omp simd)
            for (ptrdiff_t e = cf0; e < cf1; ++e) {
                float t[MAX_SIDE][3];
                for (int i = 0; i < side; ++i) /* S G: combine columns */
                    for (int q = 0; q < r; ++q) {
                        float sum = 0.0f;
                        for (int l = 0; l < side; ++l)
                            sum += sp[(i * side + l) * ld_s + e] * gt[l][q];
                        t[i][q] = sum;
                    }
                for (int p = 0; p < r; ++p) /* G^T (S G): combine rows; taps past k dropped */
                    for (int q = 0; q < r; ++q) {
                        const ptrdiff_t kr = 2 * p + a, kc = 2 * q + b;
                        if (kr >= k || kc >= k)
                            continue;
                        float sum = 0.0f;
                        for (int i = 0; i < side; ++i)
                            sum += gt[i][p] * t[i][q];
                        dw[(kr * k + kc) * c * f + e] = sum;
                    }
            }
        }
}
