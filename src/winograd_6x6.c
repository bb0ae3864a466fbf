/* Winograd convolution on a 6x6 transformed domain for square, stride-1,
 * undilated kernels of r = 3 or 5: F(4x4, 3x3) and F(2x2, 5x5). The forward
 * pass, and the backward-input pass (a forward pass of dy with the rotated
 * kernel; an unpadded 3x3 layer's goes by winograd_6x6_transposed.c).
 *
 * Each m x m block of outputs ("tile", m = 7 - r) comes from a 6x6 input patch
 * with 36 multiplications per (channel, filter) pair: 2.25 per output for
 * 3x3 kernels (9 direct, 4 with F(2x2, 3x3) in winograd.c) and 9 for 5x5 (25
 * direct, 16 with winograd.c's four 3x3 pieces). With the interpolation
 * points 0, +-1, +-2 and infinity (Lavin and Gray, 2016)
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A,
 *     B^T = | 4  0 -5  0  1  0 |   G (r = 3) = |  1/4     0     0 |   G (r = 5): rows
 *           | 0 -4 -4  1  1  0 |               | -1/6  -1/6  -1/6 |   p^0..p^4 / N(p) for
 *           | 0  4 -4 -1  1  0 |               | -1/6   1/6  -1/6 |   p = 0, 1, -1, 2, -2
 *           | 0 -2 -1  2  1  0 |               | 1/24  1/12   1/6 |   (N = 4, -6, -6, 24,
 *           | 0  2 -1 -2  1  0 |               | 1/24 -1/12   1/6 |   24), then 0 0 0 0 1;
 *           | 0  4  0 -5  0  1 |               |    0     0     1 |
 *     A^T: rows p^0..p^(m-1) over the same points, then 0 except a last 1:
 *           m = 4: | 1  1  1  1  1  0 |   m = 2: | 1  1  1  1  1  0 |
 *                  | 0  1 -1  2 -2  0 |          | 0  1 -1  2 -2  1 |
 *                  | 0  1  1  4  4  0 |
 *                  | 0  1 -1  8 -8  1 |
 * The larger coefficients cost accuracy: on MNIST- and CIFAR-sized layers the
 * error is 2-9e-6 of a result's largest magnitude, against 2-6e-7 for
 * F(2x2, 3x3) (tests/test_ops.py holds it under 2e-5); 352 random layers of
 * 16-40 channels reached 1.6e-5, all in 5x5 weight gradients.
 *
 * Per position xi of the 6x6 domain the products over channels form one GEMM,
 * M[xi] (tiles, f) = V[xi] (tiles, c) x U[xi] (c, f), run by the register
 * micro-kernel over blocks of tiles sized for L2, V read in place: a thread
 * transforms a block's patches, runs the 36 GEMMs and transforms the results
 * straight into y with the bias and ReLU (or into a max pooling of y, which
 * is then never written: fc_conv2d_winograd_6x6_max_pool2d_f32). Each output
 * pixel is computed by one thread in a fixed order, so results do not depend
 * on the number of threads.
 * The weight gradients stay with winograd.c. */
#include <string.h>

#include "fc_internal.h"

#define XI 36 /* positions of the 6x6 transformed domain */

int fc_winograd_6x6_applies(const fc_conv2d_desc *d, ptrdiff_t max_cf)
{
    const ptrdiff_t r = d->kh, m = 7 - r;
    if (!(fc_winograd_current() == FC_WINOGRAD_FAST && d->kw == r && (r == 3 || r == 5)
          && fc_winograd_applies(d)))
        return 0;
    /* 36 products per m x m tile against 16 per 2x2 tile and 3x3 piece
     * (winograd.c): this method unless the image's edges waste more of its
     * larger tile (an output of 1 or 2 pixels), or c * f passes max_cf
     * (FC_WINOGRAD_6X6_MAX_CF for the forward passes, where every block of
     * tiles reads U's 36 c f floats). */
    const ptrdiff_t pieces = (r - 1) / 2 * ((r - 1) / 2);
    return d->c * d->f <= max_cf
           && fc_ceil_div(d->ho, m) * fc_ceil_div(d->wo, m) * 36
                  <= fc_ceil_div(d->ho, 2) * fc_ceil_div(d->wo, 2) * 16 * pieces;
}

/* u = G g for one kernel column (or row) g[0..r), r = 3 or 5. */
static inline void kernel_points(int r, const double *g, double u[6])
{
    if (r == 3) {
        u[0] = g[0] / 4;
        u[1] = -(g[0] + g[1] + g[2]) / 6;
        u[2] = -(g[0] - g[1] + g[2]) / 6;
        u[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
        u[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
        u[5] = g[2];
    } else {
        const double even = g[0] + g[2] + g[4], odd = g[1] + g[3];
        const double even2 = g[0] + 4 * g[2] + 16 * g[4], odd2 = 2 * g[1] + 8 * g[3];
        u[0] = g[0] / 4;
        u[1] = -(even + odd) / 6;
        u[2] = -(even - odd) / 6;
        u[3] = (even2 + odd2) / 24;
        u[4] = (even2 - odd2) / 24;
        u[5] = g[4];
    }
}

void fc_winograd_6x6_kernel_matrix(int r, double G[6][5])
{
    for (int a = 0; a < r; ++a) {
        double e[5] = {0.0}, u[6];
        e[a] = 1.0;
        kernel_points(r, e, u);
        for (int i = 0; i < 6; ++i)
            G[i][a] = u[i];
    }
}

/* One panel of fc_winograd_6x6_transform_weights for the kernel size R (a
 * constant once inlined, so that the loops over filters vectorise): channel ci, filters
 * [j0, j0 + valid), into out (positions ld_x floats apart, nr wide). Returns
 * nonzero when one of the panel's weights is infinite or NaN. */
static inline __attribute__((always_inline)) int
transform_panel(const int R, const double G[6][5], const float *w, int view, ptrdiff_t c,
                ptrdiff_t f, ptrdiff_t ci, ptrdiff_t j0, ptrdiff_t valid, int nr, ptrdiff_t ld_x,
                float *out)
{
    /* The panel's kernels, then G g (kernel rows combined). */
    double g[5][5][FC_NR_MAX], t[6][5][FC_NR_MAX];
    int bad = 0;
    for (int a = 0; a < R; ++a)
        for (int b = 0; b < R; ++b)
            for (ptrdiff_t j = 0; j < valid; ++j) {
                g[a][b][j] = view == FC_WEIGHTS_ROTATED
                                 ? w[((R - 1 - a) * R + (R - 1 - b)) * c * f + (j0 + j) * c + ci]
                             : view == FC_WEIGHTS_TRANSPOSED ? w[(a * R + b) * c * f + (j0 + j) * c + ci]
                                                             : w[(a * R + b) * c * f + ci * f + j0 + j];
                bad |= g[a][b][j] - g[a][b][j] != 0.0; /* NaN for an infinity or a NaN */
            }
    for (int i = 0; i < 6; ++i)
        for (int b = 0; b < R; ++b) {
            FC_OMP(omp simd)
            for (ptrdiff_t j = 0; j < valid; ++j) {
                double s = 0.0;
                for (int a = 0; a < R; ++a)
                    s += G[i][a] * g[a][b][j];
                t[i][b][j] = s;
            }
        }
    /* (G g) G^T: kernel columns combined, rounded to float. */
    for (int i = 0; i < 6; ++i)
        for (int q = 0; q < 6; ++q) {
            float *o = out + (i * 6 + q) * ld_x;
            FC_OMP(omp simd)
            for (ptrdiff_t j = 0; j < valid; ++j) {
                double s = 0.0;
                for (int b = 0; b < R; ++b)
                    s += t[i][b][j] * G[q][b];
                o[j] = (float)s;
            }
            for (ptrdiff_t j = valid; j < nr; ++j)
                o[j] = 0.0f;
        }
    return bad;
}

/* The r x r kernel of a backward-input view (w: (r, r, f, c), channels and
 * filters swapped, rotated or not) copied as a forward kernel (r, r, c, f),
 * so that the transform reads each panel's filters from whole cache lines:
 * read in the view's order, a 256 x 256 kernel's transform had taken twice
 * as long as the forward's (half of a 4 x 14 x 14 x 256 -> 256
 * backward-input pass). */
static void forward_layout(const float *w, int view, int r, ptrdiff_t c, ptrdiff_t f, float *wt,
                           int n_threads)
{
    const ptrdiff_t taps = (ptrdiff_t)r * r;
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t t = 0; t < taps; ++t)
            fc_transpose_f32(f, c, w + (view == FC_WEIGHTS_ROTATED ? taps - 1 - t : t) * c * f, c,
                             wt + t * c * f, f);
        fc_team_leave(&team);
    }
}

/* U[xi] = G g G^T for every channel ci and filter fo of the r x r kernel w
 * (r, r, c, f), or of the kernel a backward-input pass reads (view; w of
 * shape (r, r, f, c), channels and filters swapped, and rotated by 180
 * degrees for a forward pass of dy), packed as the micro-kernel's B panels:
 * for position xi and panel jp of nr filters, row ci at
 * up[((xi * n_panels + jp) * c + ci) * nr + j]. Computed in double, rounded
 * once: products with G's entries over a panel's filters at once (scalar
 * divisions had taken 220 us of a 32 -> 64-channel layer's forward on one
 * image, two thirds of it). */
FC_VECTOR_CLONES int fc_winograd_6x6_transform_weights(const fc_conv2d_desc *d, const float *w,
                                                       int view, int nr, float *up, int n_threads)
{
    const int r = (int)d->kh;
    const ptrdiff_t c = d->c, f = d->f, n_panels = fc_ceil_div(f, nr);
    /* A backward-input view as a forward kernel first, where memory allows
     * (else read in the view's order: the same numbers). */
    float *wt = view == FC_WEIGHTS_FORWARD
                    ? NULL
                    : fc_aligned_alloc((size_t)(r * r * c * f) * sizeof(float));
    if (wt) {
        forward_layout(w, view, r, c, f, wt,
                       fc_threads_for((double)(r * r * c * f), FC_GRAIN_ELEMENTS, n_threads));
        w = wt;
        view = FC_WEIGHTS_FORWARD;
    }
    const ptrdiff_t ld_x = n_panels * c * nr; /* floats between positions */
    double G[6][5];
    fc_winograd_6x6_kernel_matrix(r, G);
    n_threads = fc_threads_for((double)(XI * c * f), FC_GRAIN_ELEMENTS, n_threads);
    int bad = 0; /* any thread's finding, or-ed at the region's end */
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1) reduction(|:bad))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t ci = 0; ci < c; ++ci)
            for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
                const ptrdiff_t j0 = jp * nr, valid = fc_min(nr, f - j0);
                float *out = up + (jp * c + ci) * nr;
                if (r == 3)
                    bad |= transform_panel(3, G, w, view, c, f, ci, j0, valid, nr, ld_x, out);
                else
                    bad |= transform_panel(5, G, w, view, c, f, ci, j0, valid, nr, ld_x, out);
            }
        fc_team_leave(&team);
    }
    fc_aligned_free(wt);
    return !bad;
}

/* s0..s5 = B^T d for one column (or row) d0..d5 of a patch. */
#define INPUT_POINTS(d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5)                   \
    do {                                                                               \
        const float a_ = (d4) - 4.0f * (d2), b_ = (d3) - 4.0f * (d1); /* rows 1, 2 */   \
        const float p_ = (d4) - (d2), q_ = 2.0f * ((d3) - (d1));       /* rows 3, 4 */   \
        s0 = 4.0f * (d0) - 5.0f * (d2) + (d4);                                         \
        s1 = a_ + b_;                                                                  \
        s2 = a_ - b_;                                                                  \
        s3 = p_ + q_;                                                                  \
        s4 = p_ - q_;                                                                  \
        s5 = 4.0f * (d1) - 5.0f * (d3) + (d5);                                         \
    } while (0)

/* out[xi * ld + ch] = (B^T d B)[xi] of the 6x6 patch whose pixels are
 * p[i*6 + j] (c channels each), for ch < c. */
static inline __attribute__((always_inline)) void
transform_patch(const float *const *p, ptrdiff_t c, ptrdiff_t ld, float *out)
{
    FC_OMP(omp simd)
    for (ptrdiff_t ch = 0; ch < c; ++ch) {
        float s[6][6];
        _Pragma("GCC unroll 6")
        for (int j = 0; j < 6; ++j) /* B^T d: combine rows */
            INPUT_POINTS(p[j][ch], p[6 + j][ch], p[12 + j][ch], p[18 + j][ch], p[24 + j][ch],
                         p[30 + j][ch], s[0][j], s[1][j], s[2][j], s[3][j], s[4][j], s[5][j]);
        float *o = out + ch;
        _Pragma("GCC unroll 6")
        for (int r = 0; r < 6; ++r) /* (B^T d) B: combine columns */
            INPUT_POINTS(s[r][0], s[r][1], s[r][2], s[r][3], s[r][4], s[r][5], o[(r * 6) * ld],
                         o[(r * 6 + 1) * ld], o[(r * 6 + 2) * ld], o[(r * 6 + 3) * ld],
                         o[(r * 6 + 4) * ld], o[(r * 6 + 5) * ld]);
    }
}

/* V[xi][t][ch] = (B^T d B)[xi] of tile t's 6x6 input patch (tiles m apart),
 * for tiles [t0, t0 + count); positions ld floats apart. */
FC_VECTOR_CLONES void fc_winograd_6x6_inputs(const fc_conv2d_desc *d, const float *x,
                                             ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                             ptrdiff_t count, ptrdiff_t ld, const float *zeros,
                                             float *v)
{
    const ptrdiff_t c = d->c, per_img = tiles_h * tiles_w, m = 7 - d->kh;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const float *p[XI];
        for (int i = 0; i < 6; ++i)
            for (int j = 0; j < 6; ++j) {
                const ptrdiff_t ih = m * th - d->pt + i, iw = m * tw - d->pl + j;
                p[i * 6 + j] = (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
                                   ? zeros
                                   : x + ((img * d->h + ih) * d->w + iw) * c;
            }
        transform_patch(p, c, ld, v + t * c);
    }
}

FC_VECTOR_CLONES void fc_winograd_6x6_patch(const float *const *p, ptrdiff_t c, ptrdiff_t ld,
                                            float *out)
{
    transform_patch(p, c, ld, out);
}

/* o0..o3 = A^T m for one column (or row) m0..m5 of a tile's products, m = 4;
 * OUTPUT_POINTS2 the first two rows of A^T with m = 2. */
#define OUTPUT_POINTS4(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)                          \
    do {                                                                               \
        const float s_ = (m1) + (m2), t_ = (m1) - (m2), u_ = (m3) + (m4), w_ = (m3) - (m4); \
        o0 = (m0) + s_ + u_;                                                           \
        o1 = t_ + 2.0f * w_;                                                           \
        o2 = s_ + 4.0f * u_;                                                           \
        o3 = t_ + 8.0f * w_ + (m5);                                                    \
    } while (0)
#define OUTPUT_POINTS2(m0, m1, m2, m3, m4, m5, o0, o1)                                  \
    do {                                                                               \
        o0 = (m0) + (m1) + (m2) + (m3) + (m4);                                         \
        o1 = (m1) - (m2) + 2.0f * ((m3) - (m4)) + (m5);                                \
    } while (0)

/* One whole tile's y = A^T m A + bias (ReLU), its M x M outputs ld_row floats
 * a row apart; with mask (laid out as out), 0 where the mask is not
 * positive (a ReLU's backward, as fc_relu_backward_f32). M, relu and MASKED
 * are constants once inlined, so the filter loop has no branches and
 * vectorises. Returns nonzero when an output is an infinity or NaN (see
 * FC_NONFINITE). */
static inline __attribute__((always_inline)) int
output_tile(const int M, const int relu, const int MASKED, const float *in, ptrdiff_t ld_block,
            ptrdiff_t f, const float *bias, const float *mask, float *out, ptrdiff_t ld_row)
{
    int bad = 0;
    FC_OMP(omp simd reduction(|:bad))
    for (ptrdiff_t fo = 0; fo < f; ++fo) {
        float s[4][6], r[4][4];
        const float *m = in + fo;
        _Pragma("GCC unroll 6")
        for (int j = 0; j < 6; ++j) { /* A^T m: combine rows */
            const float m0 = m[j * ld_block], m1 = m[(6 + j) * ld_block];
            const float m2 = m[(12 + j) * ld_block], m3 = m[(18 + j) * ld_block];
            const float m4 = m[(24 + j) * ld_block], m5 = m[(30 + j) * ld_block];
            if (M == 4)
                OUTPUT_POINTS4(m0, m1, m2, m3, m4, m5, s[0][j], s[1][j], s[2][j], s[3][j]);
            else
                OUTPUT_POINTS2(m0, m1, m2, m3, m4, m5, s[0][j], s[1][j]);
        }
        _Pragma("GCC unroll 4")
        for (int i = 0; i < M; ++i) { /* (A^T m) A: combine columns */
            if (M == 4)
                OUTPUT_POINTS4(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], r[i][0],
                               r[i][1], r[i][2], r[i][3]);
            else
                OUTPUT_POINTS2(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], r[i][0],
                               r[i][1]);
        }
        _Pragma("GCC unroll 4")
        for (int i = 0; i < M; ++i)
            _Pragma("GCC unroll 4")
            for (int j = 0; j < M; ++j) {
                float v = r[i][j] + bias[fo];
                if (relu) /* a NaN stays NaN */
                    v = v < 0.0f ? 0.0f : v;
                if (MASKED)
                    v = mask[i * ld_row + j * f + fo] > 0.0f ? v : 0.0f;
                out[i * ld_row + j * f + fo] = v;
                bad |= v - v != 0.0f; /* NaN: not finite */
            }
    }
    return bad;
}

FC_VECTOR_CLONES int fc_winograd_6x6_output_tile4(const float *in, ptrdiff_t ld_block,
                                                 ptrdiff_t f, const float *bias, int relu,
                                                 float *out, ptrdiff_t ld_row)
{
    return relu ? output_tile(4, 1, 0, in, ld_block, f, bias, NULL, out, ld_row)
                : output_tile(4, 0, 0, in, ld_block, f, bias, NULL, out, ld_row);
}

/* y = A^T m A + bias (ReLU) for the block's tiles; m[xi][t][fo], bias f
 * floats; with mask (y's shape), 0 where it is not positive. A tile cut by
 * the image's far edge is written to `edge` (16 * f floats) and its part
 * inside the image copied (and masked). Returns nonzero when an output
 * (of a cut tile: in or out of the image) is an infinity or NaN. */
FC_VECTOR_CLONES static int transform_outputs(const fc_conv2d_desc *d, const float *m,
                                               ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                               ptrdiff_t count, ptrdiff_t ld_block,
                                               const float *bias, const float *mask, float *edge,
                                               float *y)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w, ld_row = d->wo * f, mt = 7 - d->kh;
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const ptrdiff_t oh = mt * th, ow = mt * tw;
        const ptrdiff_t rows = fc_min(mt, d->ho - oh), cols = fc_min(mt, d->wo - ow);
        const float *in = m + t * f;
        const ptrdiff_t at = ((img * d->ho + oh) * d->wo + ow) * f;
        float *out = y + at;
        const int whole = rows == mt && cols == mt;
        float *dst = whole ? out : edge;
        const ptrdiff_t ld = whole ? ld_row : mt * f;
        const float *mk = mask + (mask ? at : 0);
        switch ((mt == 4 ? 4 : 0) + (d->relu ? 2 : 0) + (mask && whole ? 1 : 0)) {
        case 7: bad |= output_tile(4, 1, 1, in, ld_block, f, bias, mk, dst, ld); break;
        case 6: bad |= output_tile(4, 1, 0, in, ld_block, f, bias, mk, dst, ld); break;
        case 5: bad |= output_tile(4, 0, 1, in, ld_block, f, bias, mk, dst, ld); break;
        case 4: bad |= output_tile(4, 0, 0, in, ld_block, f, bias, mk, dst, ld); break;
        case 3: bad |= output_tile(2, 1, 1, in, ld_block, f, bias, mk, dst, ld); break;
        case 2: bad |= output_tile(2, 1, 0, in, ld_block, f, bias, mk, dst, ld); break;
        case 1: bad |= output_tile(2, 0, 1, in, ld_block, f, bias, mk, dst, ld); break;
        default: bad |= output_tile(2, 0, 0, in, ld_block, f, bias, mk, dst, ld); break;
        }
        if (!whole)
            for (ptrdiff_t i = 0; i < rows; ++i) {
                float *o = out + i * ld_row;
                const float *e = edge + i * mt * f, *mi = mk + i * ld_row;
                if (mask)
                    for (ptrdiff_t e_ = 0; e_ < cols * f; ++e_)
                        o[e_] = mi[e_] > 0.0f ? e[e_] : 0.0f;
                else
                    memcpy(o, e, (size_t)(cols * f) * sizeof(float));
            }
    }
    return bad;
}

/* ---- the forward pass's max pooling, in its output transform ----------------
 *
 * A pooling by 2x2 windows, stride 2, unpadded, has each window within one
 * tile (tiles start at even outputs), so the output transform can pool a
 * tile while it is in L1: the convolution's output is never written (the
 * Keras example's second layer: 18.9 MB a batch of 128, written once and
 * read once by the pooling otherwise; its forward with the pooling, argmax
 * and dropout, alternating builds on 2 threads: 5.27 -> 4.62 ms). */

int fc_winograd_6x6_pools(const fc_pool2d_desc *p)
{
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->pt == 0 && p->pl == 0
           && p->pb == 0 && p->pr == 0;
}

/* best = the maximum of a window's four cells a, b, c, e in row-major
 * order and cell the first of them to reach it (cell numbers 0-3, as
 * fc_max_pool2d_forward_argmax_f32's): its window_max with all four finite
 * (a non-finite output sends the pass to the unfused path, see
 * fc_conv2d_winograd_6x6_max_pool2d_f32). Macros with masks for the cells,
 * as pool2d.c's window_max: through an inline function, or with selects,
 * GCC left the filter loop scalar (the pass 2-4x slower). */
#define WINDOW_CELL(x, number, best, cell)                                                       \
    do {                                                                                         \
        const uint32_t take_ = -(uint32_t)((x) > best);                                          \
        cell = (cell & ~take_) | ((number) & take_);                                             \
        best = (x) > best ? (x) : best;                                                          \
    } while (0)
#define WINDOW_OF_FOUR(a, b, c, e, best, cell)                                                   \
    do {                                                                                         \
        best = (a);                                                                              \
        cell = 0;                                                                                \
        WINDOW_CELL(b, 1u, best, cell);                                                          \
        WINDOW_CELL(c, 2u, best, cell);                                                          \
        WINDOW_CELL(e, 3u, best, cell);                                                          \
    } while (0)

/* Filters pooled at once by pool_tile. */
#define POOL_LANES 64

/* The max pooling of one tile's outputs, mt x mt of f filters held in
 * `tile` (in L1): its first wh x ww windows into y and argmax (ARGMAX and
 * DROPOUT constants once inlined) from element `at` on, pooled rows
 * p->wo * f floats apart (a window past wh or ww would fall outside y).
 * Filters go POOL_LANES at a time, each step its own loop (maxima, argmax
 * bytes, dropout), as pool2d.c's window_max: in one loop, GCC vectorised
 * neither the byte stores nor the dropout's hash (the pass ran 2-3x slower). */
static inline __attribute__((always_inline)) void
pool_tile(const int ARGMAX, const int DROPOUT, const fc_pool2d_desc *p, const float *tile,
          ptrdiff_t mt, ptrdiff_t f, ptrdiff_t wh, ptrdiff_t ww, ptrdiff_t at, float *y,
          uint8_t *argmax)
{
    const ptrdiff_t ld_row = p->wo * f, ld_tile = mt * f;
    float best[POOL_LANES];
    uint32_t cell[POOL_LANES];
    for (ptrdiff_t a = 0; a < wh; ++a)
        for (ptrdiff_t b = 0; b < ww; ++b)
            for (ptrdiff_t f0 = 0; f0 < f; f0 += POOL_LANES) {
                const float *v = tile + 2 * a * ld_tile + 2 * b * f + f0;
                const ptrdiff_t e0 = at + a * ld_row + b * f + f0;
                const int lanes = (int)fc_min(POOL_LANES, f - f0);
                FC_OMP(omp simd)
                for (int l = 0; l < lanes; ++l)
                    WINDOW_OF_FOUR(v[l], v[f + l], v[ld_tile + l], v[ld_tile + f + l], best[l],
                                   cell[l]);
                if (ARGMAX) {
                    FC_OMP(omp simd)
                    for (int l = 0; l < lanes; ++l)
                        argmax[e0 + l] =
                            (uint8_t)(cell[l] | (best[l] > 0.0f ? FC_POOL_POSITIVE : 0u));
                }
                if (DROPOUT) { /* fc_dropout_f32's operations */
                    FC_OMP(omp simd)
                    for (int l = 0; l < lanes; ++l)
                        y[e0 + l] = best[l] * fc_dropout_keep((uint64_t)(e0 + l), p->dropout_seed,
                                                              p->dropout_threshold)
                                    * p->dropout_scale;
                } else {
                    FC_OMP(omp simd)
                    for (int l = 0; l < lanes; ++l)
                        y[e0 + l] = best[l];
                }
            }
}

/* transform_outputs for a forward pass pooled by p (fc_winograd_6x6_pools):
 * each of the block's tiles transformed into `tile` (16 f floats, in L1),
 * then pooled into y (n, ho/2, wo/2, f) and argmax (or NULL) through p's
 * dropout. Returns nonzero when an output, pooled or not, of any of the
 * tiles is an infinity or NaN, as transform_outputs. */
FC_VECTOR_CLONES static int transform_pooled(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                             const float *m, ptrdiff_t tiles_h, ptrdiff_t tiles_w,
                                             ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld_block,
                                             const float *bias, float *tile, float *y,
                                             uint8_t *argmax)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w, mt = 7 - d->kh;
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t at_tile = t0 + t, img = at_tile / per_img;
        const ptrdiff_t th = (at_tile - img * per_img) / tiles_w;
        const ptrdiff_t tw = at_tile - img * per_img - th * tiles_w;
        const ptrdiff_t ph = mt / 2 * th, pw = mt / 2 * tw; /* its first window */
        const ptrdiff_t wh = fc_min(mt / 2, p->ho - ph), ww = fc_min(mt / 2, p->wo - pw);
        const float *in = m + t * f;
        switch ((mt == 4 ? 2 : 0) + (d->relu ? 1 : 0)) {
        case 3: bad |= output_tile(4, 1, 0, in, ld_block, f, bias, NULL, tile, mt * f); break;
        case 2: bad |= output_tile(4, 0, 0, in, ld_block, f, bias, NULL, tile, mt * f); break;
        case 1: bad |= output_tile(2, 1, 0, in, ld_block, f, bias, NULL, tile, mt * f); break;
        default: bad |= output_tile(2, 0, 0, in, ld_block, f, bias, NULL, tile, mt * f); break;
        }
        if (wh <= 0 || ww <= 0)
            continue;
        const ptrdiff_t at = ((img * p->ho + ph) * p->wo + pw) * f;
        switch ((argmax ? 2 : 0) + (p->dropout ? 1 : 0)) {
        case 3: pool_tile(1, 1, p, tile, mt, f, wh, ww, at, y, argmax); break;
        case 2: pool_tile(1, 0, p, tile, mt, f, wh, ww, at, y, argmax); break;
        case 1: pool_tile(0, 1, p, tile, mt, f, wh, ww, at, y, NULL); break;
        default: pool_tile(0, 0, p, tile, mt, f, wh, ww, at, y, NULL); break;
        }
    }
    return bad;
}

/* The forward (or, rotate, backward-input) pass, with mask as
 * fc_conv2d_winograd_6x6_f32's, its output written to y; or, pooled by p
 * (non-NULL), the pooling's output to y and argmax. */
static int winograd_6x6_forward(const fc_conv2d_desc *d, const fc_pool2d_desc *p, const float *x,
                                const float *w, int rotate, const float *b, const float *mask,
                                float *y, uint8_t *argmax, int n_threads)
{
    const int NR = fc_kernels_for(d->f)->nr;
    const ptrdiff_t c = d->c, f = d->f, m = 7 - d->kh;
    const ptrdiff_t tiles_h = fc_ceil_div(d->ho, m), tiles_w = fc_ceil_div(d->wo, m);
    const ptrdiff_t tiles = d->n * tiles_h * tiles_w;
    if (tiles == 0 || f == 0)
        return FC_OK;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t u_floats = XI * fc_ceil_div(f, NR) * NR * c;
    /* Per thread: V, M, c zeros (the padding's pixels), an edge tile. */
    const fc_winograd_blocks bl = fc_winograd_plan_blocks(tiles, XI, c, f, c + 16 * f, n_threads);
    const ptrdiff_t run = bl.run, ld_v = bl.ld_v, ld_m = bl.ld_m, per_thread = bl.per_thread;
    const int threads = bl.threads;
    /* U's panels, then the bias (zeros without one). */
    float *up = fc_aligned_alloc((size_t)(u_floats + f) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = up && ws ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK
        && !fc_winograd_6x6_transform_weights(d, w, rotate ? FC_WEIGHTS_ROTATED : FC_WEIGHTS_FORWARD,
                                              NR, up, n_threads))
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
        float *mm = v + XI * ld_v;
        float *zeros = mm + XI * ld_m;
        float *edge = mm + XI * ld_m + c;
        /* Rows of V past the last patch are read by the micro-kernel: keep
         * them finite; the padding input must be zero. (M and the edge tile
         * are written before they are read.) */
        memset(v, 0, (size_t)(XI * ld_v) * sizeof(float));
        memset(zeros, 0, (size_t)c * sizeof(float));
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t blk = 0; blk < bl.n_blocks; ++blk) {
            const ptrdiff_t t0 = blk * run, count = fc_min(run, tiles - t0);
            fc_winograd_6x6_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
            fc_winograd_products(XI, v, ld_v, c, up, f, count, mm, ld_m);
            if (p)
                bad |= transform_pooled(d, p, mm, tiles_h, tiles_w, t0, count, ld_m, bias, edge, y,
                                        argmax);
            else
                bad |= transform_outputs(d, mm, tiles_h, tiles_w, t0, count, ld_m, bias, mask,
                                         edge, y);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(up);
    fc_aligned_free(ws);
    return bad ? FC_NONFINITE : FC_OK;
}

int fc_conv2d_winograd_6x6_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                               int rotate, const float *b, const float *mask, float *y,
                               int n_threads)
{
    return winograd_6x6_forward(d, NULL, x, w, rotate, b, mask, y, NULL, n_threads);
}

int fc_conv2d_winograd_6x6_max_pool2d_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                          const float *x, const float *w, const float *b,
                                          float *y, uint8_t *argmax, int n_threads)
{
    if (!fc_winograd_6x6_pools(p))
        return FC_ERR_UNSUPPORTED;
    return winograd_6x6_forward(d, p, x, w, 0, b, NULL, y, argmax, n_threads);
}

/* ---- weight gradient: F(3x3, 4x4) and F(5x5, 2x2), the transposes --------
 *
 * dw = G^T S G with S = sum over tiles of Z .* V, V = B^T d B the forward's
 * input transform and Z = A dy A^T the tile's m x m output gradient spread
 * over the 6x6 domain; winograd.c's weight-gradient driver runs the GEMMs
 * S[xi] = V[xi]^T Z[xi] over the tiles with these transforms. */

/* z0..z5 = A g for one column (or row) of a 4x4 (GRAD_POINTS4) or 2x2
 * (GRAD_POINTS2) tile of dy. */
#define GRAD_POINTS4(g0, g1, g2, g3, z0, z1, z2, z3, z4, z5)                            \
    do {                                                                               \
        const float e_ = (g0) + (g2), o_ = (g1) + (g3);                                \
        const float e2_ = (g0) + 4.0f * (g2), o2_ = 2.0f * (g1) + 8.0f * (g3);          \
        z0 = (g0);                                                                     \
        z1 = e_ + o_;                                                                  \
        z2 = e_ - o_;                                                                  \
        z3 = e2_ + o2_;                                                                \
        z4 = e2_ - o2_;                                                                \
        z5 = (g3);                                                                     \
    } while (0)
#define GRAD_POINTS2(g0, g1, z0, z1, z2, z3, z4, z5)                                    \
    do {                                                                               \
        z0 = (g0);                                                                     \
        z1 = (g0) + (g1);                                                              \
        z2 = (g0) - (g1);                                                              \
        z3 = (g0) + 2.0f * (g1);                                                       \
        z4 = (g0) - 2.0f * (g1);                                                       \
        z5 = (g1);                                                                     \
    } while (0)

/* One tile's Z = A g A^T for filters [f0, f1), g[i*M + j] the M x M dy
 * pixels, written at out[xi * ld + fo]; db[fo] gains the tile's dy (DB
 * nonzero: a constant once inlined). */
static inline __attribute__((always_inline)) void
grad_tile(const int M, const int DB, const float *const *g, ptrdiff_t f0, ptrdiff_t f1,
          ptrdiff_t ld, float *out, float *db)
{
    FC_OMP(omp simd)
    for (ptrdiff_t fo = f0; fo < f1; ++fo) {
        float s[6][4], sum = 0.0f;
        if (DB) {
            _Pragma("GCC unroll 16")
            for (int e = 0; e < M * M; ++e)
                sum += g[e][fo];
            db[fo] += sum;
        }
        _Pragma("GCC unroll 4")
        for (int j = 0; j < M; ++j) { /* A g: spread rows */
            if (M == 4)
                GRAD_POINTS4(g[j][fo], g[4 + j][fo], g[8 + j][fo], g[12 + j][fo], s[0][j], s[1][j],
                             s[2][j], s[3][j], s[4][j], s[5][j]);
            else
                GRAD_POINTS2(g[j][fo], g[2 + j][fo], s[0][j], s[1][j], s[2][j], s[3][j], s[4][j],
                             s[5][j]);
        }
        float *o = out + fo;
        _Pragma("GCC unroll 6")
        for (int r = 0; r < 6; ++r) { /* (A g) A^T: spread columns */
            if (M == 4)
                GRAD_POINTS4(s[r][0], s[r][1], s[r][2], s[r][3], o[(r * 6) * ld], o[(r * 6 + 1) * ld],
                             o[(r * 6 + 2) * ld], o[(r * 6 + 3) * ld], o[(r * 6 + 4) * ld],
                             o[(r * 6 + 5) * ld]);
            else
                GRAD_POINTS2(s[r][0], s[r][1], o[(r * 6) * ld], o[(r * 6 + 1) * ld],
                             o[(r * 6 + 2) * ld], o[(r * 6 + 3) * ld], o[(r * 6 + 4) * ld],
                             o[(r * 6 + 5) * ld]);
        }
    }
}

/* Tile (th, tw) of image img of the gradient pg leaves (4x4 pixels of f
 * filters, pixel (i, j) at tile + (i * 4 + j) * f): what
 * fc_max_pool2d_backward_argmax_f32 writes there, the same bits. Each 2x2
 * window, a quarter of the tile, gives its gradient (through the dropout, and
 * where the ReLU below passes it) to the cell its argmax names and +0 to the
 * others; pixels of no window get +0. Filters go POOL_LANES at a time, the
 * dropout in its own loop (see pool_tile). */
static inline __attribute__((always_inline)) void
unpool_tile(const fc_pooled_gradient *pg, ptrdiff_t img, ptrdiff_t th, ptrdiff_t tw, ptrdiff_t f,
            float *tile)
{
    const fc_pool2d_desc *p = pg->p;
    const uint32_t keep_all = p->relu ? 0u : ~(uint32_t)0;
    float g[POOL_LANES];
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) {
            const ptrdiff_t ph = 2 * th + a, pw = 2 * tw + b;
            float *cells[4];
            for (int q = 0; q < 4; ++q)
                cells[q] = tile + ((2 * a + q / 2) * 4 + 2 * b + q % 2) * f;
            if (ph >= p->ho || pw >= p->wo) {
                for (int q = 0; q < 4; ++q)
                    memset(cells[q], 0, (size_t)f * sizeof(float));
                continue;
            }
            const ptrdiff_t e0 = ((img * p->ho + ph) * p->wo + pw) * f;
            for (ptrdiff_t f0 = 0; f0 < f; f0 += POOL_LANES) {
                const int lanes = (int)fc_min(POOL_LANES, f - f0);
                const float *dy = pg->dy + e0 + f0;
                const uint8_t *code = pg->argmax + e0 + f0;
                if (p->dropout) { /* fc_dropout_f32's operations */
                    FC_OMP(omp simd)
                    for (int l = 0; l < lanes; ++l)
                        g[l] = dy[l] * fc_dropout_keep((uint64_t)(e0 + f0 + l), p->dropout_seed,
                                                       p->dropout_threshold)
                               * p->dropout_scale;
                } else {
                    memcpy(g, dy, (size_t)lanes * sizeof(float));
                }
                const fc_u32_alias *gb = (const fc_u32_alias *)g;
                fc_u32_alias *c0 = (fc_u32_alias *)(cells[0] + f0);
                fc_u32_alias *c1 = (fc_u32_alias *)(cells[1] + f0);
                fc_u32_alias *c2 = (fc_u32_alias *)(cells[2] + f0);
                fc_u32_alias *c3 = (fc_u32_alias *)(cells[3] + f0);
                FC_OMP(omp simd)
                for (int l = 0; l < lanes; ++l) {
                    const uint32_t pass = keep_all | -((uint32_t)code[l] >> 7);
                    const uint32_t bits = gb[l] & pass, cell = code[l] & ~FC_POOL_POSITIVE;
                    c0[l] = bits & -(uint32_t)(cell == 0);
                    c1[l] = bits & -(uint32_t)(cell == 1);
                    c2[l] = bits & -(uint32_t)(cell == 2);
                    c3[l] = bits & -(uint32_t)(cell == 3);
                }
            }
        }
}

FC_VECTOR_CLONES void fc_winograd_6x6_grads(const fc_conv2d_desc *d, const float *dy,
                                            const fc_pooled_gradient *pooled, float *unpooled,
                                            ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                            ptrdiff_t count, ptrdiff_t kc, int nr, ptrdiff_t ld,
                                            const float *zeros, float *zp, float *db)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w, m = 7 - d->kh;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const float *g[16];
        if (pooled)
            unpool_tile(pooled, img, th, tw, f, unpooled);
        for (ptrdiff_t i = 0; i < m; ++i)
            for (ptrdiff_t j = 0; j < m; ++j) {
                const ptrdiff_t oh = m * th + i, ow = m * tw + j;
                if (pooled)
                    g[i * m + j] = unpooled + (i * m + j) * f;
                else if (oh >= d->ho || ow >= d->wo)
                    g[i * m + j] = zeros;
                else
                    g[i * m + j] = dy + ((img * d->ho + oh) * d->wo + ow) * f;
            }
        for (ptrdiff_t f0 = 0; f0 < f; f0 += nr) {
            float *out = zp + f0 * kc + t * nr - f0;
            const ptrdiff_t f1 = fc_min(f0 + nr, f);
            if (m == 4 && db)
                grad_tile(4, 1, g, f0, f1, ld, out, db);
            else if (m == 4)
                grad_tile(4, 0, g, f0, f1, ld, out, db);
            else if (db)
                grad_tile(2, 1, g, f0, f1, ld, out, db);
            else
                grad_tile(2, 0, g, f0, f1, ld, out, db);
        }
    }
}

/* o0..o(R-1) = G^T s for one column (or row) s0..s5 of S, R = 3 or 5. */
#define WEIGHT_POINTS3(s0, s1, s2, s3, s4, s5, o0, o1, o2)                              \
    do {                                                                               \
        const float p_ = (s1) + (s2), q_ = (s2) - (s1), u_ = (s3) + (s4), v_ = (s3) - (s4); \
        o0 = 0.25f * (s0) - p_ / 6.0f + u_ / 24.0f;                                    \
        o1 = q_ / 6.0f + v_ / 12.0f;                                                   \
        o2 = (u_ - p_) / 6.0f + (s5);                                                  \
    } while (0)
#define WEIGHT_POINTS5(s0, s1, s2, s3, s4, s5, o0, o1, o2, o3, o4)                      \
    do {                                                                               \
        const float p_ = (s1) + (s2), q_ = (s2) - (s1), u_ = (s3) + (s4), v_ = (s3) - (s4); \
        o0 = 0.25f * (s0) - p_ / 6.0f + u_ / 24.0f;                                    \
        o1 = q_ / 6.0f + v_ / 12.0f;                                                   \
        o2 = (u_ - p_) / 6.0f;                                                         \
        o3 = q_ / 6.0f + v_ / 3.0f;                                                    \
        o4 = 2.0f * u_ / 3.0f - p_ / 6.0f + (s5);                                      \
    } while (0)

/* dw[(a*R + b) * tap + cf] = (G^T S G)[a][b] for cf in [cf0, cf1), S[xi] at
 * s + xi * ld_s; R (3 or 5) a constant once inlined. */
static inline __attribute__((always_inline)) void
weights_of(const int R, const float *s, ptrdiff_t ld_s, float *dw, ptrdiff_t tap, ptrdiff_t cf0,
           ptrdiff_t cf1)
{
    FC_OMP(omp simd)
    for (ptrdiff_t cf = cf0; cf < cf1; ++cf) {
        float t[5][6];
        const float *sp = s + cf;
        _Pragma("GCC unroll 6")
        for (int j = 0; j < 6; ++j) { /* G^T S: combine rows */
            const float s0 = sp[j * ld_s], s1 = sp[(6 + j) * ld_s], s2 = sp[(12 + j) * ld_s];
            const float s3 = sp[(18 + j) * ld_s], s4 = sp[(24 + j) * ld_s], s5 = sp[(30 + j) * ld_s];
            if (R == 3)
                WEIGHT_POINTS3(s0, s1, s2, s3, s4, s5, t[0][j], t[1][j], t[2][j]);
            else
                WEIGHT_POINTS5(s0, s1, s2, s3, s4, s5, t[0][j], t[1][j], t[2][j], t[3][j], t[4][j]);
        }
        float *o = dw + cf;
        _Pragma("GCC unroll 5")
        for (int a = 0; a < R; ++a) { /* (G^T S) G: combine columns */
            if (R == 3)
                WEIGHT_POINTS3(t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], t[a][5],
                               o[(a * 3) * tap], o[(a * 3 + 1) * tap], o[(a * 3 + 2) * tap]);
            else
                WEIGHT_POINTS5(t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], t[a][5],
                               o[(a * 5) * tap], o[(a * 5 + 1) * tap], o[(a * 5 + 2) * tap],
                               o[(a * 5 + 3) * tap], o[(a * 5 + 4) * tap]);
        }
    }
}

FC_VECTOR_CLONES void fc_winograd_6x6_weights(const fc_conv2d_desc *d, const float *s,
                                              ptrdiff_t ld_s, float *dw, ptrdiff_t cf0,
                                              ptrdiff_t cf1)
{
    if (d->kh == 3)
        weights_of(3, s, ld_s, dw, d->c * d->f, cf0, cf1);
    else
        weights_of(5, s, ld_s, dw, d->c * d->f, cf0, cf1);
}
