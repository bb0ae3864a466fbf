/* Winograd F(2x2, 3x3) convolution for stride-1, undilated layers.
 *
 * Each 2x2 block of outputs ("tile") is computed from a 4x4 input patch with
 * 16 multiplications per (channel, filter) pair instead of 36:
 *     Y = A^T [ (G g G^T) .* (B^T d B) ] A
 * so that, per position xi of the 4x4 transformed domain, the products over
 * channels form one GEMM: M[xi] (tiles, f) = V[xi] (tiles, c) x U[xi] (c, f).
 * That is 2.25x fewer multiply-adds than the direct method; the transforms
 * are additions only. F(2x2, 3x3) keeps the rounding error of the direct
 * method (its matrices hold only 0, +-1 and 1/2).
 *
 * Larger kernels are cut into 3x3 pieces. The forward pass places them 2
 * rows or columns apart, overlapping by one (zeroed in the later piece), so a
 * piece's input patch is that of a neighbouring tile: each patch is
 * transformed once and serves every piece, and the pieces' products extend
 * the GEMM depth to pieces*c, each piece's rows read in place through row
 * pointers (the indirect micro-kernel). A 5x5 kernel is four pieces: 64
 * multiplications per 2x2 tile instead of 100. The weight gradient places
 * its pieces 3 apart, with no overlap (it transforms each piece's patches).
 *
 * Tiles are processed in blocks sized for L2: a thread transforms a block's
 * input patches, runs the 16 small GEMMs with the register micro-kernel
 * against the pre-packed U panels, and transforms the results straight into
 * y with the bias and ReLU. Each output pixel is computed by one thread in a
 * fixed order, so results do not depend on the number of threads.
 *
 * Most 3x3 and 5x5 layers take F(4x4, 3x3) or F(2x2, 5x5) instead for their
 * forward and backward-input passes (winograd_6x6.c), which shares the
 * per-position GEMMs of a one-piece block (fc_winograd_products). */
#include <string.h>

#include "fc_internal.h"

#define XI 16 /* positions of the 4x4 transformed domain */

/* 3x3 pieces of a kh x kw kernel, 3 apart (the weight gradient's). */
static ptrdiff_t pieces_h(const fc_conv2d_desc *d) { return fc_ceil_div(d->kh, 3); }
static ptrdiff_t pieces_w(const fc_conv2d_desc *d) { return fc_ceil_div(d->kw, 3); }
/* 3x3 pieces 2 apart (the forward pass's): piece p covers kernel rows
 * 2p .. 2p+2, the first of them zero for p > 0. */
static ptrdiff_t spans(ptrdiff_t k) { return k <= 3 ? 1 : fc_ceil_div(k - 1, 2); }
static ptrdiff_t spans_h(const fc_conv2d_desc *d) { return spans(d->kh); }
static ptrdiff_t spans_w(const fc_conv2d_desc *d) { return spans(d->kw); }

int fc_winograd_applies(const fc_conv2d_desc *d)
{
    /* Each piece costs 16 products per 2x2 tile, 4 per output pixel, against
     * kh*kw for the direct method; ask for a 20% margin for the transforms. */
    return fc_winograd_current() != FC_WINOGRAD_OFF
           && d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1 && d->kh >= 3 && d->kw >= 3
           && 5 * spans_h(d) * spans_w(d) <= d->kh * d->kw
           && d->c >= FC_WINOGRAD_MIN_CHANNELS && d->f >= FC_WINOGRAD_MIN_CHANNELS;
}

int fc_winograd_pays(const fc_conv2d_desc *d, ptrdiff_t tiles, ptrdiff_t xi, double cost)
{
    const double scale = fc_winograd_threshold_current();
    const double direct = (double)d->n * d->ho * d->wo * d->kh * d->kw;
    return scale <= 0.0 || direct - (double)tiles * xi >= cost * scale * xi;
}

int fc_winograd_forward_method(const fc_conv2d_desc *d)
{
    if (!fc_winograd_applies(d))
        return FC_FORWARD_NO_WINOGRAD;
    const ptrdiff_t m = 7 - d->kh; /* the 6x6 domain's tile */
    if (fc_winograd_6x6_applies(d, FC_WINOGRAD_6X6_MAX_CF)
        && fc_winograd_pays(d, d->n * fc_ceil_div(d->ho, m) * fc_ceil_div(d->wo, m), 36,
                         FC_WINOGRAD_KERNEL_COST))
        return FC_FORWARD_WINOGRAD_6X6;
    if (fc_winograd_pays(d, d->n * fc_ceil_div(d->ho, 2) * fc_ceil_div(d->wo, 2),
                      16 * spans_h(d) * spans_w(d), FC_WINOGRAD_2X2_KERNEL_COST))
        return FC_FORWARD_WINOGRAD_2X2;
    return FC_FORWARD_NO_WINOGRAD;
}

int fc_winograd_backward_weight_pays(const fc_conv2d_desc *d)
{
    /* As fc_conv2d_winograd_backward_weight_f32 chooses its domain (a
     * stride-2 layer's S is 4 phases deep). */
    const int strided = d->sh == 2;
    const int six = !strided && fc_winograd_6x6_applies(d, FC_WINOGRAD_6X6_WGRAD_MAX_CF);
    const ptrdiff_t xi = strided ? 4 * fc_winograd_strided_positions(d)
                         : six   ? 36
                                 : XI * pieces_h(d) * pieces_w(d);
    const ptrdiff_t m = strided ? 4 : six ? 7 - d->kh : 2;
    return xi * d->c * d->f <= FC_WINOGRAD_WGRAD_LARGE_FLOATS
           || fc_winograd_pays(d, d->n * fc_ceil_div(d->ho, m) * fc_ceil_div(d->wo, m), xi,
                            FC_WINOGRAD_WGRAD_KERNEL_COST);
}

/* Kernel index of row (or column) i of the pieces' view, 3 per piece, or
 * -1 where the view holds a zero: the first row of a later piece (its
 * predecessor's last) and rows past the kernel. */
static ptrdiff_t view_tap(ptrdiff_t i, ptrdiff_t k)
{
    const ptrdiff_t piece = i / 3, r = i % 3, tap = 2 * piece + r;
    return (piece > 0 && r == 0) || tap >= k ? -1 : tap;
}

/* The kernel the forward formula sees, as g[a][b][ci][fo] with filters
 * contiguous, cut into pieces 2 apart, each 3x3 (3*ph x 3*pw in all): w
 * itself when it already is that (a 3x3 kernel), else a copy in `copy` (for a
 * backward-input pass, w of shape (kh, kw, d->f, d->c) rotated and with
 * channels and filters swapped). */
static const float *forward_view(const fc_conv2d_desc *d, const float *w, int rotate,
                                 float *copy, int n_threads)
{
    const ptrdiff_t c = d->c, f = d->f, khp = 3 * spans_h(d), kwp = 3 * spans_w(d);
    if (!rotate && d->kh == 3 && d->kw == 3)
        return w;
    n_threads = fc_threads_for((double)(khp * kwp * c * f), FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t ab = 0; ab < khp * kwp; ++ab) {
            const ptrdiff_t a = view_tap(ab / kwp, d->kh), b = view_tap(ab % kwp, d->kw);
            float *dst = copy + ab * c * f;
            if (a < 0 || b < 0) {
                memset(dst, 0, (size_t)(c * f) * sizeof(float));
            } else if (!rotate) {
                memcpy(dst, w + (a * d->kw + b) * c * f, (size_t)(c * f) * sizeof(float));
            } else {
                const float *src = w + ((d->kh - 1 - a) * d->kw + (d->kw - 1 - b)) * f * c;
                fc_transpose_f32(f, c, src, c, dst, f);
            }
        }
        fc_team_leave(&team);
    }
    return copy;
}

/* U[xi] = G g G^T for every piece p, channel ci and filter fo of the forward
 * view g, packed as the micro-kernel's B panels over the depth k = p*c + ci:
 * for position xi and panel jp of nr filters, row k at
 * up[((xi * n_panels + jp) * depth + k) * nr + j]. Vectorised over filters.
 * Returns 0 when a weight is infinite or NaN (see FC_NONFINITE). */
FC_VECTOR_CLONES static int transform_weights(const fc_conv2d_desc *d, const float *g, int nr,
                                              float *up, int n_threads)
{
    const ptrdiff_t c = d->c, f = d->f, pw = spans_w(d);
    const ptrdiff_t depth = spans_h(d) * pw * c, n_panels = fc_ceil_div(f, nr);
    const ptrdiff_t col = c * f, row = 3 * pw * col; /* floats between kernel columns, rows */
    const ptrdiff_t ld_x = n_panels * depth * nr;      /* between positions xi */
    n_threads = fc_threads_for((double)(XI * depth * f), FC_GRAIN_ELEMENTS, n_threads);
    int bad = 0; /* any thread's finding, or-ed at the region's end */
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1) reduction(|:bad))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t k = 0; k < depth; ++k) {
            const ptrdiff_t piece = k / c, ci = k - piece * c;
            const ptrdiff_t a0 = 3 * (piece / pw), b0 = 3 * (piece % pw);
            for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
                const ptrdiff_t j0 = jp * nr, valid = fc_min(nr, f - j0);
                const float *g0 = g + a0 * row + b0 * col + ci * f + j0;
                float *out = up + (jp * depth + k) * nr;
                FC_OMP(omp simd reduction(|:bad))
                for (ptrdiff_t j = 0; j < valid; ++j) {
                    float t[4][3];
                    for (int kj = 0; kj < 3; ++kj) {
                        const float r0 = g0[kj * col + j], r1 = g0[row + kj * col + j];
                        const float r2 = g0[2 * row + kj * col + j];
                        bad |= (r0 - r0) + (r1 - r1) + (r2 - r2) != 0.0f; /* NaN: not finite */
                        t[0][kj] = r0;
                        t[1][kj] = 0.5f * (r0 + r1 + r2);
                        t[2][kj] = 0.5f * (r0 - r1 + r2);
                        t[3][kj] = r2;
                    }
                    for (int r = 0; r < 4; ++r) {
                        out[(r * 4 + 0) * ld_x + j] = t[r][0];
                        out[(r * 4 + 1) * ld_x + j] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                        out[(r * 4 + 2) * ld_x + j] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                        out[(r * 4 + 3) * ld_x + j] = t[r][2];
                    }
                }
                for (ptrdiff_t j = valid; j < nr; ++j)
                    for (int x = 0; x < XI; ++x)
                        out[x * ld_x + j] = 0.0f;
            }
        }
        fc_team_leave(&team);
    }
    return !bad;
}

/* out[xi * ld + ch] = (B^T d B)[xi] of the 4x4 patch whose pixels are
 * p[i*4 + j] (c channels each), for ch < c. */
static inline __attribute__((always_inline)) void
transform_patch(const float *const *p, ptrdiff_t c, ptrdiff_t ld, float *out)
{
    FC_OMP(omp simd)
    for (ptrdiff_t ch = 0; ch < c; ++ch) {
        float s[4][4];
        for (int j = 0; j < 4; ++j) { /* B^T d: combine rows */
            const float d0 = p[j][ch], d1 = p[4 + j][ch], d2 = p[8 + j][ch], d3 = p[12 + j][ch];
            s[0][j] = d0 - d2;
            s[1][j] = d1 + d2;
            s[2][j] = d2 - d1;
            s[3][j] = d1 - d3;
        }
        for (int r = 0; r < 4; ++r) { /* (B^T d) B: combine columns */
            out[(r * 4 + 0) * ld + ch] = s[r][0] - s[r][2];
            out[(r * 4 + 1) * ld + ch] = s[r][1] + s[r][2];
            out[(r * 4 + 2) * ld + ch] = s[r][2] - s[r][1];
            out[(r * 4 + 3) * ld + ch] = s[r][1] - s[r][3];
        }
    }
}

/* The 16 pixels of image img's 4x4 input patch with corner (top, left). */
static inline void patch_pixels(const fc_conv2d_desc *d, const float *x, ptrdiff_t img,
                                ptrdiff_t top, ptrdiff_t left, const float *zeros,
                                const float **p)
{
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            const ptrdiff_t ih = top + i, iw = left + j;
            p[i * 4 + j] = (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
                               ? zeros
                               : x + ((img * d->h + ih) * d->w + iw) * d->c;
        }
}

/* V[xi][t][p*c + ch] = (B^T d B)[xi] of piece p's patch (pieces 3 apart),
 * for tiles [t0, t0 + count); positions are ld floats apart. */
FC_VECTOR_CLONES static void transform_inputs(const fc_conv2d_desc *d, const float *x, ptrdiff_t tiles_h,
                             ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld,
                             const float *zeros, float *v)
{
    const ptrdiff_t c = d->c, per_img = tiles_h * tiles_w;
    const ptrdiff_t ph = pieces_h(d), pw = pieces_w(d), depth = ph * pw * c;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        for (ptrdiff_t piece = 0; piece < ph * pw; ++piece) {
            const float *p[XI];
            patch_pixels(d, x, img, 2 * th - d->pt + 3 * (piece / pw),
                         2 * tw - d->pl + 3 * (piece % pw), zeros, p);
            transform_patch(p, c, ld, v + t * depth + piece * c);
        }
    }
}

/* The patches of a forward block: for images [img0, img0 + imgs) and, in each,
 * tile rows [r0, r0 + rows + ph - 1) by tile columns [0, ew) (the block's
 * tiles and the neighbours its later pieces read), V[xi][e][ch] with
 * e = (image * (rows + ph - 1) + row) * ew + column; positions ld floats apart. */
FC_VECTOR_CLONES static void transform_patches(const fc_conv2d_desc *d, const float *x,
                                               ptrdiff_t img0, ptrdiff_t imgs, ptrdiff_t r0,
                                               ptrdiff_t rows, ptrdiff_t ew, ptrdiff_t ld,
                                               const float *zeros, float *v)
{
    const ptrdiff_t eh = rows + spans_h(d) - 1;
    for (ptrdiff_t e = 0; e < imgs * eh * ew; ++e) {
        const ptrdiff_t im = e / (eh * ew), row = e / ew - im * eh, col = e % ew;
        const float *p[XI];
        patch_pixels(d, x, img0 + im, 2 * (r0 + row) - d->pt, 2 * col - d->pl, zeros, p);
        transform_patch(p, d->c, ld, v + e * d->c);
    }
}

/* One tile's y = A^T m A + bias (ReLU), rows x cols of its 2x2 outputs
 * (fewer at the image's far edges). rows, cols and relu are constants once
 * inlined, so the filter loop has no branches and vectorises. Returns
 * nonzero when an output is an infinity or NaN (see FC_NONFINITE). */
static inline __attribute__((always_inline)) int
output_tile(const int rows, const int cols, const int relu, const float *in, ptrdiff_t ld_block,
            ptrdiff_t f, const float *bias, float *out, ptrdiff_t ld_row)
{
    int bad = 0;
    FC_OMP(omp simd reduction(|:bad))
    for (ptrdiff_t fo = 0; fo < f; ++fo) {
        float s[2][4], r[2][2];
        for (int j = 0; j < 4; ++j) { /* A^T m: combine rows */
            const float m0 = in[(0 + j) * ld_block + fo], m1 = in[(4 + j) * ld_block + fo];
            const float m2 = in[(8 + j) * ld_block + fo], m3 = in[(12 + j) * ld_block + fo];
            s[0][j] = m0 + m1 + m2;
            s[1][j] = m1 - m2 - m3;
        }
        for (int i = 0; i < 2; ++i) {
            r[i][0] = s[i][0] + s[i][1] + s[i][2] + bias[fo];
            r[i][1] = s[i][1] - s[i][2] - s[i][3] + bias[fo];
            if (relu) { /* a NaN stays NaN */
                r[i][0] = r[i][0] < 0.0f ? 0.0f : r[i][0];
                r[i][1] = r[i][1] < 0.0f ? 0.0f : r[i][1];
            }
        }
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) {
                out[i * ld_row + j * f + fo] = r[i][j];
                bad |= r[i][j] - r[i][j] != 0.0f; /* NaN: not finite */
            }
    }
    return bad;
}

/* y = A^T m A + bias (ReLU) for the block's tiles; m[xi][t][fo], bias f
 * floats. Returns nonzero when an output is an infinity or NaN. */
FC_VECTOR_CLONES static int transform_outputs(const fc_conv2d_desc *d, const float *m, ptrdiff_t tiles_h,
                                               ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count,
                                               ptrdiff_t ld_block, const float *bias, float *y)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w;
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const ptrdiff_t oh = 2 * th, ow = 2 * tw;
        const int rows = oh + 1 < d->ho ? 2 : 1, cols = ow + 1 < d->wo ? 2 : 1;
        const float *in = m + t * f;
        float *out = y + ((img * d->ho + oh) * d->wo + ow) * f;
        const ptrdiff_t ld_row = d->wo * f;
        const int shape = (rows == 2 ? 2 : 0) + (cols == 2 ? 1 : 0);
        if (d->relu)
            switch (shape) {
            case 3: bad |= output_tile(2, 2, 1, in, ld_block, f, bias, out, ld_row); break;
            case 2: bad |= output_tile(2, 1, 1, in, ld_block, f, bias, out, ld_row); break;
            case 1: bad |= output_tile(1, 2, 1, in, ld_block, f, bias, out, ld_row); break;
            default: bad |= output_tile(1, 1, 1, in, ld_block, f, bias, out, ld_row); break;
            }
        else
            switch (shape) {
            case 3: bad |= output_tile(2, 2, 0, in, ld_block, f, bias, out, ld_row); break;
            case 2: bad |= output_tile(2, 1, 0, in, ld_block, f, bias, out, ld_row); break;
            case 1: bad |= output_tile(1, 2, 0, in, ld_block, f, bias, out, ld_row); break;
            default: bad |= output_tile(1, 1, 0, in, ld_block, f, bias, out, ld_row); break;
            }
    }
    return bad;
}

fc_winograd_blocks fc_winograd_plan_blocks(ptrdiff_t tiles, int xi, ptrdiff_t depth, ptrdiff_t f,
                                           ptrdiff_t extra, int n_threads)
{
    const fc_kernel_set *ks = fc_kernels_for(f);
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t n_panels = fc_ceil_div(f, NR);
    /* A U too large for L2 (S5's 128 x 256, 4.7 MB in the 6x6 domain: 3.9
     * -> 2.9 ms with the large blocks). */
    const int large = xi * n_panels * NR * depth > FC_WINOGRAD_L2_FLOATS;
    const ptrdiff_t per_tile = xi * (depth + n_panels * NR);
    const ptrdiff_t target = fc_max(MR, (large ? FC_WINOGRAD_LARGE_BLOCK_FLOATS
                                               : FC_WINOGRAD_BLOCK_FLOATS) / per_tile);
    fc_winograd_blocks b;
    b.run = fc_min(target / MR * MR, fc_round_up(tiles, MR));
    if (large && n_threads > 1)
        b.run = fc_round_up(fc_ceil_div(tiles, fc_round_up(fc_ceil_div(tiles, b.run), n_threads)),
                            MR);
    b.n_blocks = fc_ceil_div(tiles, b.run);
    /* V (the micro-kernel reads its rows in place, up to a whole last
     * sliver), M. */
    b.ld_v = fc_position_stride(b.run * depth);
    b.ld_m = fc_position_stride(b.run * f);
    b.per_thread = fc_thread_stride(xi * (b.ld_v + b.ld_m) + extra);
    b.threads = (int)fc_min(n_threads, b.n_blocks);
    return b;
}

void fc_winograd_products(int positions, const float *v, ptrdiff_t ld_v, ptrdiff_t c,
                          const float *up, ptrdiff_t f, ptrdiff_t count, float *m, ptrdiff_t ld_m)
{
    const fc_kernel_set *ks = fc_kernels_for(f);
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t n_panels = fc_ceil_div(f, NR);
    /* Depth blocks as in the GEMM driver. */
    const ptrdiff_t kc_nominal = fc_gemm_kc(ks);
    const ptrdiff_t kc_max = fc_ceil_div(c, fc_ceil_div(c, kc_nominal + kc_nominal / 4));
    float *crow[FC_MR_MAX];
    for (int xi = 0; xi < positions; ++xi) {
        const float *vx = v + xi * ld_v;
        float *mx = m + xi * ld_m;
        for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
            const ptrdiff_t j = jp * NR;
            const float *panel = up + (xi * n_panels + jp) * c * NR;
            fc_tile_epilogue ep = {.nr = (int)fc_min(NR, f - j)};
            for (ptrdiff_t p0 = 0; p0 < c; p0 += kc_max) {
                const ptrdiff_t kc = fc_min(kc_max, c - p0);
                ep.accumulate = p0 > 0;
                for (ptrdiff_t ir = 0; ir < count; ir += MR) {
                    ep.mr = (int)fc_min(MR, count - ir);
                    for (int i = 0; i < MR; ++i)
                        crow[i] = mx + (ir + (i < ep.mr ? i : 0)) * f + j;
                    ks->ukernel(kc, vx + ir * c + p0, c, 1, panel + p0 * NR, crow, &ep);
                }
            }
        }
    }
}

int fc_conv2d_winograd_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                           int rotate, const float *b, float *y, int n_threads)
{
    const fc_kernel_set *ks = fc_kernels_for(d->f);
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t c = d->c, f = d->f, ph = spans_h(d), pw = spans_w(d), pieces = ph * pw;
    const ptrdiff_t depth = pieces * c;
    const ptrdiff_t tiles_h = fc_ceil_div(d->ho, 2), tiles_w = fc_ceil_div(d->wo, 2);
    const ptrdiff_t per_img = tiles_h * tiles_w, tiles = d->n * per_img;
    if (tiles == 0 || f == 0)
        return FC_OK;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t n_panels = fc_ceil_div(f, NR);
    /* Tiles per block: their patches' V and their M together fill about L2.
     * With one piece, a block is any run of tiles (a multiple of MR). With
     * several, whole images or tile rows of one image, as its later pieces
     * read the patches of the next ph - 1 tile rows and pw - 1 tile columns.
     * With several pieces a block also transforms the patches of ph - 1
     * more tile rows (and pw - 1 columns): twice the size amortises them
     * (S3 3-7 % faster). A U too large to stay in L2 beside the blocks is
     * read again from L3 by every block: then blocks of
     * FC_WINOGRAD_LARGE_BLOCK_FLOATS, V and M in L3 too, in a count that
     * keeps every thread busy, as winograd_6x6.c does (128 x 4 x 4 x 512 ->
     * 512, 16.8 MB of U read by blocks of 6 tiles: 30.3 -> 17.2 ms; 8 x 7 x 7
     * x 512 -> 512 9.3 -> 6.3; 32 x 8 x 8 x 512 -> 512, 5x5, 122 -> 85). */
    const ptrdiff_t u_floats = XI * n_panels * NR * depth;
    const int large = u_floats > FC_WINOGRAD_L2_FLOATS;
    const ptrdiff_t block_floats = large ? FC_WINOGRAD_LARGE_BLOCK_FLOATS
                                         : (pieces > 1 ? 2 : 1) * FC_WINOGRAD_BLOCK_FLOATS;
    const ptrdiff_t target = fc_max(MR, block_floats / (XI * (c + n_panels * NR)));
    ptrdiff_t run = fc_min(target / MR * MR, fc_round_up(tiles, MR));
    if (large && n_threads > 1)
        run = fc_round_up(fc_ceil_div(tiles, fc_round_up(fc_ceil_div(tiles, run), n_threads)), MR);
    const ptrdiff_t imgs = pieces == 1 ? 1 : fc_max(1, fc_min(d->n, target / per_img));
    const ptrdiff_t rows = target >= per_img ? tiles_h : fc_max(1, target / tiles_w);
    const ptrdiff_t row_blocks = fc_ceil_div(tiles_h, rows);
    const ptrdiff_t n_blocks = pieces == 1 ? fc_ceil_div(tiles, run)
                               : rows == tiles_h ? fc_ceil_div(d->n, imgs) : d->n * row_blocks;
    const ptrdiff_t ew = tiles_w + pw - 1, eh = rows + ph - 1;
    const ptrdiff_t max_count = pieces == 1 ? run : imgs * rows * tiles_w;
    /* V: the patches (with one piece, the micro-kernel reads V's rows in
     * place, up to a whole last sliver: run is a multiple of MR); M: the
     * tiles' products; then c zeros; then the row pointers and the offsets
     * they are made from. */
    const ptrdiff_t ld_v = fc_position_stride((pieces == 1 ? run : imgs * eh * ew) * c);
    const ptrdiff_t ld_m = fc_position_stride(max_count * f);
    const ptrdiff_t n_ptrs = fc_round_up(max_count, MR) * pieces;
    const ptrdiff_t ptrs_at = fc_round_up(XI * ld_v + XI * ld_m + c, FC_ALIGN_FLOATS); /* aligned for pointers */
    const ptrdiff_t per_thread = fc_thread_stride(
        ptrs_at + n_ptrs * ((ptrdiff_t)sizeof(float *) + (ptrdiff_t)sizeof(ptrdiff_t)) / (ptrdiff_t)sizeof(float));
    const int threads = (int)fc_min(n_threads, n_blocks);

    /* U's panels, then the bias (zeros without one), then room for the
     * kernel's forward view when w is not already that. */
    const ptrdiff_t view_floats = 9 * pieces * c * f;
    float *up = fc_aligned_alloc((size_t)(XI * n_panels * NR * depth + f + view_floats) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = up && ws ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK) {
        const float *view = forward_view(d, w, rotate, up + XI * n_panels * NR * depth + f, n_threads);
        if (!transform_weights(d, view, NR, up, n_threads))
            status = FC_NONFINITE;
    }
    if (status != FC_OK) {
        fc_aligned_free(up);
        fc_aligned_free(ws);
        return status;
    }
    float *bias = up + XI * n_panels * NR * depth;
    for (ptrdiff_t j = 0; j < f; ++j)
        bias[j] = b ? b[j] : 0.0f;
    /* Several pieces: whole pieces per call of the indirect micro-kernel. */
    const ptrdiff_t per_call = fc_max(1, FC_INDIRECT_PANEL_BYTES / (NR * (ptrdiff_t)sizeof(float)) / c);

    int bad = 0; /* any thread's finding, or-ed at the region's end */
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1) reduction(|:bad))
    {
        fc_fp_state fp = fc_fp_enter();
        float *v = ws + fc_thread_id() * per_thread;
        /* Rows of V past the last patch are read by the micro-kernel: keep
         * them finite; the padding input must be zero. (M and the row
         * pointers are written before they are read.) */
        memset(v, 0, (size_t)(XI * ld_v) * sizeof(float));
        float *m = v + XI * ld_v;
        float *zeros = m + XI * ld_m;
        memset(zeros, 0, (size_t)c * sizeof(float));
        const float **rows_a = (const float **)(v + ptrs_at);
        ptrdiff_t *offsets = (ptrdiff_t *)(rows_a + n_ptrs);
        float *crow[FC_MR_MAX];
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t blk = 0; blk < n_blocks; ++blk) {
            const int whole = rows == tiles_h;
            const ptrdiff_t img0 = whole ? blk * imgs : blk / row_blocks;
            const ptrdiff_t b_imgs = whole ? fc_min(imgs, d->n - img0) : 1;
            const ptrdiff_t r0 = whole ? 0 : blk % row_blocks * rows;
            const ptrdiff_t b_rows = fc_min(rows, tiles_h - r0), b_eh = b_rows + ph - 1;
            const ptrdiff_t t0 = pieces == 1 ? blk * run : (img0 * tiles_h + r0) * tiles_w;
            const ptrdiff_t count = pieces == 1 ? fc_min(run, tiles - t0) : b_imgs * b_rows * tiles_w;
            if (pieces == 1)
                transform_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
            else
                transform_patches(d, x, img0, b_imgs, r0, b_rows, ew, ld_v, zeros, v);
            /* Where in V each tile's pieces read, the same at every position:
             * piece (pa, pb) of a tile reads the patch pa rows and pb columns
             * on; in the micro-kernel's order (slivers of MR tiles, then
             * pieces, then tiles), -1 for the rows past the last tile. */
            const ptrdiff_t n_rows_a = pieces > 1 ? fc_round_up(count, MR) * pieces : 0;
            for (ptrdiff_t i = 0, im = 0, row = 0, col = 0; i < n_rows_a / fc_max(pieces, 1); ++i) {
                ptrdiff_t *out = offsets + (i / MR) * pieces * MR + i % MR;
                for (ptrdiff_t q = 0; q < pieces; ++q)
                    out[q * MR] = i >= count ? -1
                                  : ((im * b_eh + row + q / pw) * ew + col + q % pw) * c;
                if (++col == tiles_w) {
                    col = 0;
                    if (++row == b_rows) {
                        row = 0;
                        ++im;
                    }
                }
            }
            if (pieces == 1) {
                fc_winograd_products(XI, v, ld_v, c, up, f, count, m, ld_m);
            } else {
                for (int xi = 0; xi < XI; ++xi) {
                    const float *vx = v + xi * ld_v;
                    float *mx = m + xi * ld_m;
                    for (ptrdiff_t e = 0; e < n_rows_a; ++e)
                        rows_a[e] = offsets[e] < 0 ? zeros : vx + offsets[e];
                    for (ptrdiff_t jp = 0; jp < n_panels; ++jp) {
                        const ptrdiff_t j = jp * NR;
                        const float *panel = up + (xi * n_panels + jp) * depth * NR;
                        fc_tile_epilogue ep = {.nr = (int)fc_min(NR, f - j)};
                        for (ptrdiff_t p0 = 0; p0 < depth; p0 += per_call * c) {
                            const ptrdiff_t kc = fc_min(per_call * c, depth - p0);
                            ep.accumulate = p0 > 0;
                            for (ptrdiff_t ir = 0; ir < count; ir += MR) {
                                ep.mr = (int)fc_min(MR, count - ir);
                                for (int i = 0; i < MR; ++i)
                                    crow[i] = mx + (ir + (i < ep.mr ? i : 0)) * f + j;
                                ks->ukernel_taps(kc / c, c, rows_a + (ir * pieces + p0 / c * MR),
                                                 panel + p0 * NR, crow, &ep);
                            }
                        }
                    }
                }
            }
            bad |= transform_outputs(d, m, tiles_h, tiles_w, t0, count, ld_m, bias, y);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(up);
    fc_aligned_free(ws);
    return bad ? FC_NONFINITE : FC_OK;
}

/* ---- weight gradient: F(3x3, 2x2), the transpose of the forward method ----
 *
 * With V = B^T d B (the forward input transform) and Z = A dy A^T (a 2x2
 * tile of output gradient spread over the 4x4 domain), the loss gradient of
 * the transformed kernel is S = sum over tiles of Z .* V, and
 * dw = G^T S G (piece by piece for larger kernels). Per position xi the
 * sum over tiles is one GEMM, S[xi] (pieces*c, f) = V[xi]^T x Z[xi], reduced in fixed
 * chunks of tiles added in a fixed order (results independent of threads).
 * The micro-kernel reads V[xi]^T in place (unit row stride, column stride c);
 * Z is written straight into its packed B panels. Layers that
 * winograd_6x6.c serves take its transforms instead (36 positions, one
 * piece): F(3x3, 4x4) and F(5x5, 2x2). */

/* Z = A dy A^T for tiles [t0, t0+count) as B panels: element (t, fo) of
 * position xi at zp[xi*ld + (fo/nr)*nr*kc + t*nr + fo%nr]. Output pixels past
 * the edge count as zero gradient. Adds each tile's dy to db (the bias
 * gradient), as every output pixel is in exactly one tile. */
FC_VECTOR_CLONES static void transform_grads_packed(const fc_conv2d_desc *d, const float *dy, ptrdiff_t tiles_h,
                                   ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count,
                                   ptrdiff_t kc, int nr, ptrdiff_t ld, const float *zeros,
                                   float *zp, float *db)
{
    const ptrdiff_t f = d->f, per_img = tiles_h * tiles_w;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const float *g[2][2];
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
                const ptrdiff_t oh = 2 * th + i, ow = 2 * tw + j;
                g[i][j] = (oh >= d->ho || ow >= d->wo) ? zeros
                                                       : dy + ((img * d->ho + oh) * d->wo + ow) * f;
            }
        for (ptrdiff_t f0 = 0; f0 < f; f0 += nr) {
            float *out = zp + f0 * kc + t * nr - f0;
            const ptrdiff_t f1 = fc_min(f0 + nr, f);
            FC_OMP(omp simd)
            for (ptrdiff_t fo = f0; fo < f1; ++fo) {
                db[fo] += (g[0][0][fo] + g[0][1][fo]) + (g[1][0][fo] + g[1][1][fo]);
                float z[4][2];
                for (int j = 0; j < 2; ++j) { /* A dy: spread rows */
                    const float g0 = g[0][j][fo], g1 = g[1][j][fo];
                    z[0][j] = g0;
                    z[1][j] = g0 + g1;
                    z[2][j] = g0 - g1;
                    z[3][j] = -g1;
                }
                for (int r = 0; r < 4; ++r) { /* (A dy) A^T: spread columns */
                    out[(r * 4 + 0) * ld + fo] = z[r][0];
                    out[(r * 4 + 1) * ld + fo] = z[r][0] + z[r][1];
                    out[(r * 4 + 2) * ld + fo] = z[r][0] - z[r][1];
                    out[(r * 4 + 3) * ld + fo] = -z[r][1];
                }
            }
        }
    }
}

/* dw's taps of one piece, rows x cols of its 3x3 (constants when inlined as
 * 3 x 3, the common case, so the loop vectorises), from the piece's
 * transformed gradient S (positions ld_s floats apart): G^T S G for the
 * channel-filter pairs [cf0, cf1), each tap's pairs contiguous in dw
 * (kernel rows ld_row floats apart, columns ld_col). */
static inline __attribute__((always_inline)) void
piece_weights(const int rows, const int cols, const float *sp, ptrdiff_t ld_s, float *out,
              ptrdiff_t ld_row, ptrdiff_t ld_col, ptrdiff_t cf0, ptrdiff_t cf1)
{
    FC_OMP(omp simd)
    for (ptrdiff_t cf = cf0; cf < cf1; ++cf) {
        float t[3][4], g[3][3];
        for (int j = 0; j < 4; ++j) {
            const float s0 = sp[j * ld_s + cf], s1 = sp[(4 + j) * ld_s + cf];
            const float s2 = sp[(8 + j) * ld_s + cf], s3 = sp[(12 + j) * ld_s + cf];
            t[0][j] = s0 + 0.5f * (s1 + s2);
            t[1][j] = 0.5f * (s1 - s2);
            t[2][j] = 0.5f * (s1 + s2) + s3;
        }
        for (int r = 0; r < 3; ++r) {
            g[r][0] = t[r][0] + 0.5f * (t[r][1] + t[r][2]);
            g[r][1] = 0.5f * (t[r][1] - t[r][2]);
            g[r][2] = 0.5f * (t[r][1] + t[r][2]) + t[r][3];
        }
        for (int r = 0; r < rows; ++r)
            for (int q = 0; q < cols; ++q)
                out[r * ld_row + q * ld_col + cf] = g[r][q];
    }
}

void fc_winograd_weight_products(int positions, const float *v, ptrdiff_t ld_v, ptrdiff_t depth,
                                 const float *zp, ptrdiff_t ld_z, ptrdiff_t kc, ptrdiff_t f,
                                 ptrdiff_t count, int accumulate, float *s)
{
    const fc_kernel_set *ks = fc_kernels_for(f);
    const int MR = ks->mr, NR = ks->nr;
    float *crow[FC_MR_MAX];
    for (int xi = 0; xi < positions; ++xi) {
        float *sx = s + xi * depth * f;
        for (ptrdiff_t j = 0; j < f; j += NR) {
            fc_tile_epilogue ep = {.nr = (int)fc_min(NR, f - j), .accumulate = accumulate};
            const float *bp = zp + xi * ld_z + j * kc;
            for (ptrdiff_t ir = 0; ir < depth; ir += MR) {
                ep.mr = (int)fc_min(MR, depth - ir);
                for (int i = 0; i < MR; ++i)
                    crow[i] = sx + (ir + (i < ep.mr ? i : 0)) * f + j;
                ks->ukernel(count, v + xi * ld_v + ir, 1, depth, bp, crow, &ep);
            }
        }
    }
}

void fc_winograd_add_chunks(float *partials, ptrdiff_t count, ptrdiff_t chunks, ptrdiff_t stride)
{
    FC_OMP(omp for schedule(static))
    for (ptrdiff_t e0 = 0; e0 < count; e0 += FC_REDUCE_BLOCK) {
        const ptrdiff_t e1 = fc_min(e0 + FC_REDUCE_BLOCK, count);
        for (ptrdiff_t ci = 1; ci < chunks; ++ci) {
            const float *src = partials + ci * stride;
            for (ptrdiff_t e = e0; e < e1; ++e)
                partials[e] += src[e];
        }
    }
}

int fc_conv2d_winograd_backward_weight_f32(const fc_conv2d_desc *d, const float *x,
                                           const float *dy, float *dw, float *db, int n_threads)
{
    const fc_kernel_set *ks = fc_kernels_for(d->f);
    const int MR = ks->mr, NR = ks->nr;
    /* A stride-2 layer's phase images (winograd_strided.c: 4x4 tiles of dy,
     * 4 c deep), else the 6x6 domain (winograd_6x6.c's transforms, F(3x3,
     * 4x4) or F(5x5, 2x2)) where it serves the layer, else 3x3 pieces 3
     * apart. */
    const int strided = d->sh == 2;
    const int six = !strided && fc_winograd_6x6_applies(d, FC_WINOGRAD_6X6_WGRAD_MAX_CF);
    const int positions = strided ? fc_winograd_strided_positions(d) : six ? 36 : XI;
    const ptrdiff_t c = d->c, f = d->f, pw = pieces_w(d);
    const ptrdiff_t depth = strided ? 4 * c : six ? c : pieces_h(d) * pw * c;
    const ptrdiff_t m = strided ? 4 : six ? 7 - d->kh : 2;
    const ptrdiff_t tiles_h = fc_ceil_div(d->ho, m), tiles_w = fc_ceil_div(d->wo, m);
    const ptrdiff_t tiles = d->n * tiles_h * tiles_w;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t f_pad = fc_round_up(f, NR);
    /* Tiles per block: V and the packed Z of a block fill about L2, and one
     * block is one depth block of the micro-kernel. Each block adds its
     * products into its chunk's S (positions * depth * f floats): an S too
     * large to stay in L2 is read and written again from L3 by every block,
     * and then blocks twice as deep pay (S5's 128 x 256, 4.7 MB of S: 4.4 ->
     * 3.1 ms; 256 x 256 on F(3x3, 2x2), 4 MB: 3 %; with S in L2 they lose:
     * S2 11 %, S3 3 %). */
    const int s_in_l2 = positions * depth * f <= FC_WINOGRAD_L2_FLOATS;
    ptrdiff_t block = (s_in_l2 ? 1 : 2) * FC_WINOGRAD_WGRAD_BLOCK_FLOATS
                      / (positions * (depth + f_pad));
    block = fc_max(8, fc_min(block, FC_WINOGRAD_WGRAD_MAX_TILES));
    /* Each chunk's partial: S, then db. */
    const ptrdiff_t s_floats = positions * depth * f + f, s_stride = fc_thread_stride(s_floats);
    /* Chunks are the threads' shares: a multiple of 4 of them spreads evenly
     * over 2 or 4 threads (S3, S4, S6's weight gradients 6-9 % faster than 3
     * or 5 chunks on 2), of 2 where each costs a large S. */
    ptrdiff_t chunks = fc_min(FC_WGRAD_MAX_CHUNKS,
                              fc_round_up(fc_ceil_div(tiles, 4 * block), s_in_l2 ? 4 : 2));
    chunks = fc_min(chunks, FC_WGRAD_PARTIAL_BYTES / (ptrdiff_t)(s_floats * sizeof(float)));
    chunks = fc_max(1, fc_min(chunks, fc_ceil_div(tiles, 8)));
    /* A sliver past the last channel reads up to MR - 1 floats beyond V. */
    const ptrdiff_t ld_v = fc_position_stride(block * depth + MR);
    const ptrdiff_t ld_z = fc_position_stride(f_pad * block);
    const ptrdiff_t per_thread = fc_thread_stride(positions * (ld_v + ld_z) + fc_max(c, f));
    const int threads = (int)fc_min(n_threads, chunks);

    float *partials = fc_aligned_alloc((size_t)(chunks * s_stride) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    if (!partials || !ws) {
        fc_aligned_free(partials);
        fc_aligned_free(ws);
        return FC_ERR_NOMEM;
    }

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
        fc_fp_state fp = fc_fp_enter();
        float *v = ws + fc_thread_id() * per_thread;
        /* Filler the micro-kernel reads but discards must be finite; the
         * padding input must be zero. */
        memset(v, 0, (size_t)per_thread * sizeof(float));
        float *zp = v + positions * ld_v;
        const float *zeros = zp + positions * ld_z;
        FC_OMP(omp for schedule(static))
        for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
            float *s = partials + ci * s_stride, *db_part = s + positions * depth * f;
            const ptrdiff_t first = ci * tiles / chunks, last = (ci + 1) * tiles / chunks;
            if (first == last)
                memset(s, 0, (size_t)s_floats * sizeof(float));
            memset(db_part, 0, (size_t)f * sizeof(float));
            for (ptrdiff_t t0 = first; t0 < last; t0 += block) {
                const ptrdiff_t count = fc_min(block, last - t0);
                if (strided) {
                    fc_winograd_strided_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
                    fc_winograd_strided_grads(d, dy, tiles_h, tiles_w, t0, count, block, NR, ld_z,
                                              zeros, zp, db_part);
                } else if (six) {
                    fc_winograd_6x6_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
                    fc_winograd_6x6_grads(d, dy, NULL, NULL, tiles_h, tiles_w, t0, count, block,
                                          NR, ld_z, zeros, zp, db_part);
                } else {
                    transform_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
                    transform_grads_packed(d, dy, tiles_h, tiles_w, t0, count, block, NR, ld_z,
                                           zeros, zp, db_part);
                }
                fc_winograd_weight_products(positions, v, ld_v, depth, zp, ld_z, block, f, count,
                                            t0 > first, s);
            }
        }

        fc_winograd_add_chunks(partials, s_floats, chunks, s_stride);

        /* dw = G^T S G for each piece, vectorised over its channels x filters. */
        const ptrdiff_t cf_blocks = fc_ceil_div(c * f, FC_REDUCE_BLOCK);
        const ptrdiff_t pieces = six || strided ? 1 : pieces_h(d) * pw;
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t item = 0; item < pieces * cf_blocks; ++item) {
            const ptrdiff_t piece = item / cf_blocks, cf0 = (item % cf_blocks) * FC_REDUCE_BLOCK;
            const ptrdiff_t cf1 = fc_min(c * f, cf0 + FC_REDUCE_BLOCK);
            if (strided) {
                fc_winograd_strided_weights(d, partials, depth * f, dw, cf0, cf1);
                continue;
            }
            if (six) {
                fc_winograd_6x6_weights(d, partials, depth * f, dw, cf0, cf1);
                continue;
            }
            const ptrdiff_t a0 = 3 * (piece / pw), b0 = 3 * (piece % pw);
            /* The zero padding of a piece past the kernel's edge has no weight. */
            const int rows = (int)fc_min(3, d->kh - a0), cols = (int)fc_min(3, d->kw - b0);
            const float *sp = partials + piece * c * f;
            float *out = dw + (a0 * d->kw + b0) * c * f;
            if (rows == 3 && cols == 3)
                piece_weights(3, 3, sp, depth * f, out, d->kw * c * f, c * f, cf0, cf1);
            else
                piece_weights(rows, cols, sp, depth * f, out, d->kw * c * f, c * f, cf0, cf1);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    if (db)
        memcpy(db, partials + positions * depth * f, (size_t)f * sizeof(float));
    fc_aligned_free(partials);
    fc_aligned_free(ws);
    return fc_all_finite(dw, d->kh * d->kw * c * f) ? FC_OK : FC_NONFINITE;
}
