/* 2-D convolution, NHWC / HWIO, as implicit GEMM on the packed GEMM driver.
 *
 * forward          y (n*ho*wo, f)  = im2col(x) (n*ho*wo, kh*kw*c) x w (kh*kw*c, f)
 * backward-input   dx (pixels, c)  = im2col(dy) x w^T, one GEMM per stride phase
 * backward-weight  dw (kh*kw*c, f) = im2col(x)^T x dy, reduced over the batch
 *
 * im2col is never built: the GEMM's pack step gathers each block of rows
 * straight from the activations, so scratch is a few cache-sized blocks per
 * thread whatever the input size. */
#include <string.h>

#include "fc_internal.h"

/* Rows of an implicit im2col matrix. Row m is the grid point (img, a, b),
 * a < ga, b < gb; column k is (tap t, channel ch) with k = t*src_c + ch, and
 * its value is src[img, a*ra + off_a[t], b*rb + off_b[t], ch], or 0 outside
 * the source image (the zero padding). */
typedef struct {
    const float *src;
    ptrdiff_t src_h, src_w, src_c;
    ptrdiff_t ga, gb;
    ptrdiff_t ra, rb;
    const ptrdiff_t *off_a, *off_b;
    ptrdiff_t row0; /* first grid point of this matrix (a batch chunk) */
    const float *zeros; /* src_c zeros, for row pointers into the padding */
} im2col_view;

/* The grid point of row m, advanced one row at a time without division. */
typedef struct {
    ptrdiff_t img, a, b;
} grid_pos;

static grid_pos grid_start(const im2col_view *v, ptrdiff_t m)
{
    grid_pos g;
    const ptrdiff_t per_img = v->ga * v->gb;
    g.img = m / per_img;
    m -= g.img * per_img;
    g.a = m / v->gb;
    g.b = m - g.a * v->gb;
    return g;
}

static void grid_next(const im2col_view *v, grid_pos *g)
{
    if (++g->b == v->gb) {
        g->b = 0;
        if (++g->a == v->ga) {
            g->a = 0;
            ++g->img;
        }
    }
}

/* Source of tap t at grid point g, or NULL in the padding. */
static inline const float *tap_source(const im2col_view *v, const grid_pos *g, ptrdiff_t t)
{
    const ptrdiff_t sa = g->a * v->ra + v->off_a[t];
    const ptrdiff_t sb = g->b * v->rb + v->off_b[t];
    if (sa < 0 || sa >= v->src_h || sb < 0 || sb >= v->src_w)
        return NULL;
    return v->src + ((g->img * v->src_h + sa) * v->src_w + sb) * v->src_c;
}

/* len floats from src, or zeros for a tap in the padding (src NULL). */
static inline void copy_or_zero(float *dst, const float *src, ptrdiff_t len)
{
    if (src)
        memcpy(dst, src, (size_t)len * sizeof(float));
    else
        memset(dst, 0, (size_t)len * sizeof(float));
}

/* Row-major block of im2col rows [i0, i0+mc), columns [p0, p0+kc). Rows
 * whose whole window lies inside the source skip the per-tap bounds checks
 * and read through precomputed linear tap offsets. */
static void pack_a_im2col(const void *ctx, ptrdiff_t i0, ptrdiff_t mc,
                          ptrdiff_t p0, ptrdiff_t kc, int mr, float *dst)
{
    const im2col_view *v = ctx;
    const ptrdiff_t c = v->src_c;
    const ptrdiff_t t0 = p0 / c, ch0 = p0 - t0 * c, t1 = (p0 + kc - 1) / c;
    /* The window's extent over the taps this block touches. */
    ptrdiff_t lo_a = v->off_a[t0], hi_a = lo_a, lo_b = v->off_b[t0], hi_b = lo_b;
    for (ptrdiff_t t = t0; t <= t1; ++t) {
        lo_a = fc_min(lo_a, v->off_a[t]);
        hi_a = fc_max(hi_a, v->off_a[t]);
        lo_b = fc_min(lo_b, v->off_b[t]);
        hi_b = fc_max(hi_b, v->off_b[t]);
    }
    grid_pos g = grid_start(v, v->row0 + i0);
    (void)mr;
    for (ptrdiff_t i = 0; i < mc; ++i, grid_next(v, &g)) {
        float *out = dst + i * kc;
        const ptrdiff_t sa = g.a * v->ra, sb = g.b * v->rb;
        const int inside = sa + lo_a >= 0 && sa + hi_a < v->src_h
                           && sb + lo_b >= 0 && sb + hi_b < v->src_w;
        if (inside && c == 1) {
            const float *base = v->src + (g.img * v->src_h + sa) * v->src_w + sb;
            for (ptrdiff_t t = t0; t <= t1; ++t)
                *out++ = base[v->off_a[t] * v->src_w + v->off_b[t]];
            continue;
        }
        ptrdiff_t left = kc, t = t0, ch = ch0;
        while (left > 0) {
            ptrdiff_t run = fc_min(c - ch, left);
            const float *src = inside
                ? v->src + ((g.img * v->src_h + sa + v->off_a[t]) * v->src_w + sb + v->off_b[t]) * c
                : tap_source(v, &g, t);
            /* Inside the image, taps on neighbouring columns of one kernel
             * row are contiguous in the source: one copy for all of them. */
            while (inside && run < left && v->off_a[t + 1] == v->off_a[t]
                   && v->off_b[t + 1] == v->off_b[t] + 1) {
                ++t;
                run += fc_min(c, left - run);
            }
            if (run == 1)
                *out = src ? src[ch] : 0.0f;
            else
                copy_or_zero(out, src ? src + ch : NULL, run);
            out += run;
            left -= run;
            ++t;
            ch = 0;
        }
    }
}

/* Row pointers of the im2col rows [i0, i0+mc), taps [t0, t0+taps): each
 * points at the source pixel's channels, or at zeros in the padding (and
 * for the rows past mc that fill the last sliver). */
static void rows_im2col(const void *ctx, ptrdiff_t i0, ptrdiff_t mc, ptrdiff_t t0,
                        ptrdiff_t taps, int mr, const float **dst)
{
    const im2col_view *v = ctx;
    grid_pos g = grid_start(v, v->row0 + i0);
    for (ptrdiff_t i = 0; i < fc_round_up(mc, mr); ++i) {
        const float **out = dst + (i / mr) * taps * mr + i % mr;
        for (ptrdiff_t u = 0; u < taps; ++u) {
            const float *src = i < mc ? tap_source(v, &g, t0 + u) : NULL;
            out[u * mr] = src ? src : v->zeros;
        }
        grid_next(v, &g);
    }
}

/* The usual B panel: NR channels of one tap t from channel ch, for kc grid
 * points from g, walked a grid row at a time: the columns inside the source
 * are a range found once, and each copy has a size the compiler knows (and
 * inlines) rather than a call per grid point. */
static inline __attribute__((always_inline)) void
whole_panel(const im2col_view *v, grid_pos g, ptrdiff_t kc, ptrdiff_t t, ptrdiff_t ch,
            const int NR, float *dst)
{
    const ptrdiff_t off_a = v->off_a[t], off_b = v->off_b[t], c = v->src_c;
    /* Grid columns b with 0 <= b*rb + off_b < src_w. */
    const ptrdiff_t b_lo = off_b >= 0 ? 0 : fc_ceil_div(-off_b, v->rb);
    const ptrdiff_t b_hi = off_b >= v->src_w ? 0 : fc_min(v->gb, fc_ceil_div(v->src_w - off_b, v->rb));
    for (ptrdiff_t p = 0; p < kc;) {
        const ptrdiff_t run = fc_min(kc - p, v->gb - g.b), sa = g.a * v->ra + off_a;
        float *out = dst + p * NR;
        if (sa < 0 || sa >= v->src_h) {
            memset(out, 0, (size_t)(run * NR) * sizeof(float));
        } else {
            const float *row = v->src + (g.img * v->src_h + sa) * v->src_w * c + ch;
            for (ptrdiff_t b = g.b; b < g.b + run; ++b, out += NR) {
                if (b >= b_lo && b < b_hi)
                    memcpy(out, row + (b * v->rb + off_b) * c, (size_t)NR * sizeof(float));
                else
                    memset(out, 0, (size_t)NR * sizeof(float));
            }
        }
        p += run;
        g.b += run - 1;
        grid_next(v, &g);
    }
}

/* One B panel of the im2col matrix: rows are grid points [p0, p0+kc),
 * columns are (tap, channel) [j0, j0+nr_valid). For each grid point the
 * panel's columns are contiguous channels of one or a few taps, so each row
 * of the panel is a few contiguous copies. */
FC_VECTOR_CLONES static void pack_b_im2col(const void *ctx, ptrdiff_t p0, ptrdiff_t kc,
                          ptrdiff_t j0, ptrdiff_t nr_valid, int nr, float *dst)
{
    const im2col_view *v = ctx;
    ptrdiff_t seg_tap[FC_NR_MAX], seg_ch[FC_NR_MAX], seg_len[FC_NR_MAX];
    int n_seg = 0;
    for (ptrdiff_t j = 0; j < nr_valid; ++n_seg) {
        seg_tap[n_seg] = (j0 + j) / v->src_c;
        seg_ch[n_seg] = (j0 + j) - seg_tap[n_seg] * v->src_c;
        seg_len[n_seg] = fc_min(v->src_c - seg_ch[n_seg], nr_valid - j);
        j += seg_len[n_seg];
    }
    grid_pos g = grid_start(v, v->row0 + p0);
    if (n_seg == 1 && seg_len[0] == nr) { /* NR a constant in each */
        switch (nr) {
        case 64: whole_panel(v, g, kc, seg_tap[0], seg_ch[0], 64, dst); return;
        case 32: whole_panel(v, g, kc, seg_tap[0], seg_ch[0], 32, dst); return;
        case 16: whole_panel(v, g, kc, seg_tap[0], seg_ch[0], 16, dst); return;
        }
    }
    for (ptrdiff_t p = 0; p < kc; ++p, grid_next(v, &g)) {
        float *out = dst + p * nr;
        for (int s = 0; s < n_seg; ++s) {
            const float *src = tap_source(v, &g, seg_tap[s]);
            copy_or_zero(out, src ? src + seg_ch[s] : NULL, seg_len[s]);
            out += seg_len[s];
        }
        for (ptrdiff_t j = nr_valid; j < nr; ++j)
            *out++ = 0.0f;
    }
}

/* Interleaved panels of the transposed im2col matrix: rows are im2col
 * columns (tap, channel) [i0, i0+mc), columns are grid points [p0, p0+kc).
 * Within a panel, the mr rows of one grid point are contiguous channels of
 * one or a few taps, so each is a short contiguous copy. */
static void pack_a_im2col_transposed(const void *ctx, ptrdiff_t i0, ptrdiff_t mc,
                                     ptrdiff_t p0, ptrdiff_t kc, int mr, float *dst)
{
    const im2col_view *v = ctx;
    const ptrdiff_t c = v->src_c;
    for (ptrdiff_t r0 = 0; r0 < mc; r0 += mr) {
        const ptrdiff_t rows = fc_min(mr, mc - r0);
        /* Split the panel's rows into runs of channels of one tap, with each
         * run's offset from the window's corner and the window's extent. */
        ptrdiff_t seg_tap[FC_MR_MAX], seg_ch[FC_MR_MAX], seg_len[FC_MR_MAX], seg_off[FC_MR_MAX];
        ptrdiff_t lo_a = 0, hi_a = 0, lo_b = 0, hi_b = 0;
        int n_seg = 0;
        for (ptrdiff_t r = 0; r < rows; ++n_seg) {
            const ptrdiff_t k = i0 + r0 + r, t = k / c;
            seg_tap[n_seg] = t;
            seg_ch[n_seg] = k - t * c;
            seg_len[n_seg] = fc_min(c - seg_ch[n_seg], rows - r);
            seg_off[n_seg] = (v->off_a[t] * v->src_w + v->off_b[t]) * c + seg_ch[n_seg];
            lo_a = n_seg ? fc_min(lo_a, v->off_a[t]) : v->off_a[t];
            hi_a = n_seg ? fc_max(hi_a, v->off_a[t]) : v->off_a[t];
            lo_b = n_seg ? fc_min(lo_b, v->off_b[t]) : v->off_b[t];
            hi_b = n_seg ? fc_max(hi_b, v->off_b[t]) : v->off_b[t];
            r += seg_len[n_seg];
        }
        float *panel = dst + r0 * kc;
        grid_pos g = grid_start(v, v->row0 + p0);
        for (ptrdiff_t p = 0; p < kc; ++p, grid_next(v, &g)) {
            float *out = panel + p * mr;
            const ptrdiff_t sa = g.a * v->ra, sb = g.b * v->rb;
            if (sa + lo_a >= 0 && sa + hi_a < v->src_h && sb + lo_b >= 0 && sb + hi_b < v->src_w) {
                /* The whole window is inside: no bounds checks per run. */
                const float *corner = v->src + ((g.img * v->src_h + sa) * v->src_w + sb) * c;
                for (int s = 0; s < n_seg; ++s) {
                    const float *src = corner + seg_off[s];
                    for (ptrdiff_t i = 0; i < seg_len[s]; ++i)
                        out[i] = src[i];
                    out += seg_len[s];
                }
            } else {
                for (int s = 0; s < n_seg; ++s) {
                    const float *src = tap_source(v, &g, seg_tap[s]);
                    copy_or_zero(out, src ? src + seg_ch[s] : NULL, seg_len[s]);
                    out += seg_len[s];
                }
            }
            for (ptrdiff_t r = rows; r < mr; ++r)
                *out++ = 0.0f;
        }
    }
}

/* n zero floats: the row that row pointers into the padding point at. */
static float *zero_row(ptrdiff_t n)
{
    float *z = fc_aligned_alloc((size_t)n * sizeof(float));
    if (z)
        memset(z, 0, (size_t)n * sizeof(float));
    return z;
}

/* 1x1, stride 1, unpadded: x is the im2col matrix and y its GEMM's C. */
static int is_pointwise(const fc_conv2d_desc *d)
{
    return d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pt == 0 && d->pb == 0
           && d->pl == 0 && d->pr == 0;
}

/* Tap offsets of the forward pass: tap (ki, kj) reads input row
 * oh*sh + ki*dh - pt. */
static int forward_taps(const fc_conv2d_desc *d, ptrdiff_t **off_a, ptrdiff_t **off_b)
{
    const ptrdiff_t taps = d->kh * d->kw;
    *off_a = fc_aligned_alloc((size_t)(2 * taps) * sizeof(ptrdiff_t));
    if (!*off_a)
        return FC_ERR_NOMEM;
    *off_b = *off_a + taps;
    for (ptrdiff_t ki = 0; ki < d->kh; ++ki)
        for (ptrdiff_t kj = 0; kj < d->kw; ++kj) {
            (*off_a)[ki * d->kw + kj] = ki * d->dh - d->pt;
            (*off_b)[ki * d->kw + kj] = kj * d->dw - d->pl;
        }
    return FC_OK;
}

static fc_row_map dense_rows(float *base, ptrdiff_t cols)
{
    fc_row_map map = {base, 1, 1, cols, 0, 0};
    return map;
}

int fc_conv2d_max_pool2d_forward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                     const float *x, const float *w, const float *b, float *y,
                                     uint8_t *argmax, int n_threads)
{
    if (argmax && p->kh * p->kw > FC_POOL_ARGMAX_MAX_CELLS)
        return FC_ERR_UNSUPPORTED;
    if (p->n * p->ho * p->wo * p->c == 0)
        return FC_OK;
    /* Fused where fc_conv2d_forward_f32 runs the direct kernels (so the same
     * bits) and pooled rows take disjoint convolution rows. */
    const int method = fc_winograd_forward_method(d);
    if (!is_pointwise(d) && method == FC_FORWARD_NO_WINOGRAD && fc_direct_applies(d)
        && p->sh >= p->kh)
        return fc_conv2d_direct_max_pool2d_forward_f32(d, p, x, w, b, y, argmax, n_threads);
    /* Pooled in the output transform where fc_conv2d_forward_f32 takes the
     * 6x6 Winograd method (and, for an infinite or NaN output, through it). */
    if (method == FC_FORWARD_WINOGRAD_6X6 && fc_winograd_6x6_pools(p)) {
        const int status = fc_conv2d_winograd_6x6_max_pool2d_f32(d, p, x, w, b, y, argmax,
                                                                 n_threads);
        if (status != FC_NONFINITE)
            return status;
    }
    float *z = fc_aligned_alloc((size_t)(d->n * d->ho * d->wo * d->f) * sizeof(float));
    if (!z)
        return FC_ERR_NOMEM;
    int status = fc_conv2d_forward_f32(d, x, w, b, z, n_threads);
    if (status == FC_OK)
        status = argmax ? fc_max_pool2d_forward_argmax_f32(p, z, y, argmax, n_threads)
                        : fc_max_pool2d_forward_f32(p, z, y, n_threads);
    fc_aligned_free(z);
    return status;
}

int fc_conv2d_forward_f32(const fc_conv2d_desc *d, const float *x,
                          const float *w, const float *b, float *y,
                          int n_threads)
{
    const ptrdiff_t m = d->n * d->ho * d->wo, k = d->kh * d->kw * d->c;
    if (m == 0 || d->f == 0)
        return FC_OK;
    if (is_pointwise(d)) { /* x is already the im2col matrix */
        fc_gemm_desc g = {m, d->f, d->c, d->c, d->f, d->f, d->relu, 0, 0};
        return fc_gemm_f32(&g, x, w, b, y, n_threads);
    }
    if (fc_conv2d_dilated_applies(d))
        return fc_conv2d_dilated_forward_f32(d, x, w, b, y, n_threads);
    const int method = fc_winograd_forward_method(d);
    if (method != FC_FORWARD_NO_WINOGRAD) {
        const int status = method == FC_FORWARD_WINOGRAD_6X6
                               ? fc_conv2d_winograd_6x6_f32(d, x, w, 0, b, NULL, y, n_threads)
                               : fc_conv2d_winograd_f32(d, x, w, 0, b, y, n_threads);
        if (status != FC_NONFINITE) /* else the methods below */
            return status;
    }
    if (fc_winograd_strided_applies(d)) {
        const int status = fc_conv2d_winograd_strided_f32(d, x, w, b, y, n_threads);
        if (status != FC_NONFINITE)
            return status;
    }
    if (fc_direct_applies(d))
        return fc_conv2d_direct_forward_f32(d, x, w, b, y, n_threads);
    ptrdiff_t *off_a, *off_b;
    if (forward_taps(d, &off_a, &off_b) != FC_OK)
        return FC_ERR_NOMEM;
    const ptrdiff_t tap0 = 0;
    /* With enough channels per tap, x is read in place through row pointers
     * (an indirect GEMM); with few, each tap's run is too short for that and
     * the im2col rows are packed. */
    const int indirect = d->c >= FC_INDIRECT_MIN_CHANNELS;
    float *zeros = indirect ? zero_row(d->c) : NULL;
    if (indirect && !zeros) {
        fc_aligned_free(off_a);
        return FC_ERR_NOMEM;
    }
    im2col_view av = {x, d->h, d->w, d->c, d->ho, d->wo, d->sh, d->sw, off_a, off_b, 0, zeros};
    fc_tapped_matrix bm = {w, d->f, k > 0 ? k : 1, &tap0};
    fc_gemm_plan plan = {.m = m, .n = d->f, .k = k, .a_ctx = &av, .pack_b = fc_pack_b_tapped,
                         .b_ctx = &bm, .c = dense_rows(y, d->f), .bias = b, .relu = d->relu};
    if (indirect) {
        plan.rows_a = rows_im2col;
        plan.a_tap_depth = d->c;
    } else {
        plan.pack_a = pack_a_im2col;
    }
    if (m <= FC_GEMM_B_IN_PLACE_MAX_M) { /* w's rows are B's */
        plan.b_rows = w;
        plan.b_ld = d->f;
    }
    const int status = fc_gemm_run(&plan, n_threads);
    fc_aligned_free(zeros);
    fc_aligned_free(off_a);
    return status;
}

/* Backward-input. Input pixel ih receives from output row oh through tap ki
 * when oh*sh = ih + pt - ki*dh. Splitting the input pixels by phase
 * (ih mod sh, iw mod sw) makes the set of contributing taps fixed within a
 * phase, so each phase is one dense GEMM with no multiplications by the zeros
 * a strided transposed convolution would insert, and every dx pixel is
 * written exactly once. */
/* Backward-input for few input channels. The phase GEMMs would have only c
 * columns, a sliver of the register tile, so instead compute the im2col
 * gradient cols = dy x w^T (output pixels x kh*kw*c) one block of output
 * pixels at a time and scatter-add it into dx (col2im). Images are the units
 * of parallel work, so no two threads touch the same dx pixel, and each dx
 * element is accumulated in a fixed order. */
static int backward_input_col2im(const fc_conv2d_desc *d, const float *dy,
                                 const float *w, float *dx, int n_threads)
{
    const ptrdiff_t c = d->c, f = d->f, k = d->kh * d->kw * c;
    const ptrdiff_t pixels = d->ho * d->wo;
    const ptrdiff_t block = fc_max(1, fc_min(pixels, FC_COL2IM_BLOCK_FLOATS / k));
    /* Images are the units of work. */
    n_threads = (int)fc_min(fc_threads_for(fc_conv_macs(d), FC_GRAIN_GEMM, n_threads), d->n);
    /* w^T: (f, kh*kw*c), the B operand of every block. */
    float *wt = fc_aligned_alloc((size_t)(f * k) * sizeof(float));
    const ptrdiff_t per_thread = fc_thread_stride(block * k);
    float *cols = fc_aligned_alloc((size_t)(n_threads * per_thread) * sizeof(float));
    int status = FC_OK;
    if (!wt || !cols) {
        status = FC_ERR_NOMEM;
        goto done;
    }
    fc_transpose_f32(k, f, w, f, wt, k);

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t img = 0; img < d->n; ++img) {
            float *buf = cols + fc_thread_id() * per_thread;
            float *dxi = dx + img * d->h * d->w * c;
            memset(dxi, 0, (size_t)(d->h * d->w * c) * sizeof(float));
            for (ptrdiff_t p0 = 0; p0 < pixels; p0 += block) {
                const ptrdiff_t rows = fc_min(block, pixels - p0);
                fc_gemm_desc g = {rows, k, f, f, k, k, 0, 0, 0};
                if (fc_gemm_f32(&g, dy + (img * pixels + p0) * f, wt, NULL, buf, 1) != FC_OK) {
                    status = FC_ERR_NOMEM;
                    continue;
                }
                for (ptrdiff_t r = 0; r < rows; ++r) {
                    const ptrdiff_t oh = (p0 + r) / d->wo, ow = (p0 + r) - oh * d->wo;
                    const float *src = buf + r * k;
                    for (ptrdiff_t ki = 0; ki < d->kh; ++ki) {
                        const ptrdiff_t ih = oh * d->sh + ki * d->dh - d->pt;
                        for (ptrdiff_t kj = 0; kj < d->kw; ++kj, src += c) {
                            const ptrdiff_t iw = ow * d->sw + kj * d->dw - d->pl;
                            if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
                                continue;
                            float *out = dxi + (ih * d->w + iw) * c;
                            for (ptrdiff_t ci = 0; ci < c; ++ci)
                                out[ci] += src[ci];
                        }
                    }
                }
            }
        }
        fc_team_leave(&team);
    }
done:
    fc_aligned_free(wt);
    fc_aligned_free(cols);
    return status;
}

/* A stride-1 backward-input pass is a forward convolution of dy with the
 * rotated, transposed kernel and the complementary padding. */
static fc_conv2d_desc rotated_forward(const fc_conv2d_desc *d)
{
    const fc_conv2d_desc t = {d->n, d->ho, d->wo, d->f, d->kh, d->kw, d->c, 1, 1, 1, 1,
                              d->kh - 1 - d->pt, d->kh - 1 - d->pb,
                              d->kw - 1 - d->pl, d->kw - 1 - d->pr, d->h, d->w, 0};
    return t;
}

enum { WINOGRAD_NONE, WINOGRAD_2X2, WINOGRAD_6X6, WINOGRAD_6X6_TRANSPOSED };

/* The Winograd method for dx of the layer d, if any: that of the rotated
 * forward pass, or, where dy has fewer tiles than dx (an unpadded layer),
 * the transposed F(4x4, 3x3) on dy's tiles. */
static int winograd_backward_input(const fc_conv2d_desc *d)
{
    const fc_conv2d_desc t = rotated_forward(d);
    if (!fc_winograd_applies(d) || fc_min(fc_min(t.pt, t.pb), fc_min(t.pl, t.pr)) < 0)
        return WINOGRAD_NONE;
    switch (fc_winograd_forward_method(&t)) {
    case FC_FORWARD_WINOGRAD_6X6:
        return fc_winograd_6x6_transposed_applies(d) ? WINOGRAD_6X6_TRANSPOSED : WINOGRAD_6X6;
    case FC_FORWARD_WINOGRAD_2X2:
        return WINOGRAD_2X2;
    default:
        return WINOGRAD_NONE;
    }
}

/* Whether both gradients of d come from one pass over dy's Winograd tiles
 * (winograd_6x6_transposed.c): its dx takes the transposed F(4x4, 3x3) and
 * its filters fill one panel of the micro-kernel. The weight gradient alone
 * takes that pass too, so that dw is the same with or without dx. */
static int one_pass_winograd(const fc_conv2d_desc *d)
{
    return winograd_backward_input(d) == WINOGRAD_6X6_TRANSPOSED && fc_winograd_6x6_fused_applies(d);
}

/* Backward-input by stride phases: for each phase of dx (pixels of one
 * residue modulo the stride), a GEMM of the dy pixels that reach it, read
 * in place through row pointers, by the taps that connect them. */
static int backward_input_phases(const fc_conv2d_desc *d, const float *dy, const float *w,
                                 float *dx, int n_threads)
{
    const ptrdiff_t taps = d->kh * d->kw, c = d->c, f = d->f;
    if (!fc_all_finite(w, taps * c * f)) /* the GEMMs would multiply dy's zeros by it */
        return backward_input_col2im(d, dy, w, dx, n_threads);
    ptrdiff_t *scratch = fc_aligned_alloc((size_t)(3 * taps * FC_GEMM_MAX_BATCH) * sizeof(ptrdiff_t));
    /* dy is read in place through row pointers (as the forward reads x). */
    float *zeros = zero_row(f);
    if (!scratch || !zeros) {
        fc_aligned_free(scratch);
        fc_aligned_free(zeros);
        return FC_ERR_NOMEM;
    }
    /* The phases' GEMMs run together (one team, one barrier), up to
     * FC_GEMM_MAX_BATCH at a time; each has its own tap offsets. */
    im2col_view views[FC_GEMM_MAX_BATCH];
    fc_tapped_matrix mats[FC_GEMM_MAX_BATCH];
    fc_gemm_plan plans[FC_GEMM_MAX_BATCH];
    int batched = 0, status = FC_OK;
    for (ptrdiff_t rh = 0; rh < d->sh && rh < d->h && status == FC_OK; ++rh) {
        for (ptrdiff_t rw = 0; rw < d->sw && rw < d->w && status == FC_OK; ++rw) {
            ptrdiff_t *off_a = scratch + batched * 3 * taps, *off_b = off_a + taps;
            ptrdiff_t *tap_off = off_b + taps;
            /* Taps in decreasing order, so that their dy offsets increase
             * and neighbouring taps read contiguous dy pixels. */
            ptrdiff_t n_taps = 0;
            for (ptrdiff_t ki = d->kh - 1; ki >= 0; --ki) {
                const ptrdiff_t num_a = rh + d->pt - ki * d->dh;
                if (num_a % d->sh != 0)
                    continue;
                for (ptrdiff_t kj = d->kw - 1; kj >= 0; --kj) {
                    const ptrdiff_t num_b = rw + d->pl - kj * d->dw;
                    if (num_b % d->sw != 0)
                        continue;
                    off_a[n_taps] = num_a / d->sh;
                    off_b[n_taps] = num_b / d->sw;
                    tap_off[n_taps] = (ki * d->kw + kj) * f * c;
                    ++n_taps;
                }
            }
            const ptrdiff_t ga = fc_ceil_div(d->h - rh, d->sh);
            const ptrdiff_t gb = fc_ceil_div(d->w - rw, d->sw);
            const im2col_view av = {dy, d->ho, d->wo, f, ga, gb, 1, 1, off_a, off_b, 0, zeros};
            /* B: tap t's (f, c) rows are w's (c, f) matrix of the tap, transposed
             * as it is packed. */
            const fc_tapped_matrix bm = {w, f, f > 0 ? f : 1, tap_off};
            views[batched] = av;
            mats[batched] = bm;
            const fc_row_map rows = {dx + (rh * d->w + rw) * c, ga, gb,
                                     d->h * d->w * c, d->sh * d->w * c, d->sw * c};
            const fc_gemm_plan plan = {.m = d->n * ga * gb, .n = c, .k = n_taps * f,
                                       .a_ctx = &views[batched], .rows_a = rows_im2col,
                                       .a_tap_depth = f, .pack_b = fc_pack_b_tapped_transposed,
                                       .b_ctx = &mats[batched], .c = rows};
            if (n_taps == 0) { /* no tap reaches this phase: its dx is zero */
                status = fc_gemm_run(&plan, n_threads);
                continue;
            }
            plans[batched] = plan;
            if (++batched == FC_GEMM_MAX_BATCH) {
                status = fc_gemm_run_batch(plans, batched, n_threads);
                batched = 0;
            }
        }
    }
    if (batched && status == FC_OK)
        status = fc_gemm_run_batch(plans, batched, n_threads);
    fc_aligned_free(scratch);
    fc_aligned_free(zeros);
    return status;
}

/* dx; with mask, *masked set where the pass itself zeroed dx where the
 * mask is not positive (the 6x6 Winograd output transforms do it). */
static int backward_input_pass(const fc_conv2d_desc *d, const float *dy, const float *w,
                               const float *mask, float *dx, int n_threads, int *masked)
{
    const ptrdiff_t taps = d->kh * d->kw, c = d->c, f = d->f;
    const fc_conv2d_desc rotated = rotated_forward(d);
    if (d->n == 0 || c == 0 || d->h == 0 || d->w == 0)
        return FC_OK;
    /* The other methods multiply zeros by the weights (dy's padding, the gaps
     * of its stride, Winograd's transformed tiles): with an infinite or NaN
     * weight that makes NaN in dx pixels no dy pixel reaches through it.
     * col2im's sums hold only the taps that reach, as the reference's. The
     * Winograd passes find such weights in their weight transform (and an
     * infinity in dy in what they write: FC_NONFINITE), the phase GEMMs in
     * their copy of w; the direct kernel reads no copy. */
    if (fc_direct_input_grad_applies(d)) {
        if (fc_all_finite(w, taps * c * f))
            return fc_conv2d_direct_backward_f32(d, NULL, dy, w, dx, NULL, NULL, n_threads);
        return backward_input_col2im(d, dy, w, dx, n_threads);
    }
    if (fc_conv2d_dilated_applies(d))
        return fc_conv2d_dilated_backward_f32(d, NULL, dy, w, dx, NULL, NULL, n_threads);
    if (is_pointwise(d)) { /* dx = dy w^T, dy read in place (no zeros in it) */
        fc_gemm_desc g = {d->n * d->h * d->w, c, f, f, f, c, 0, 0, 1};
        return fc_gemm_f32(&g, dy, w, NULL, dx, n_threads);
    }
    if (c <= FC_COL2IM_MAX_CHANNELS)
        return backward_input_col2im(d, dy, w, dx, n_threads);
    int status = FC_OK;
    if (fc_winograd_strided_applies(d)) {
        status = fc_conv2d_winograd_strided_backward_input_f32(d, dy, w, mask, dx, n_threads);
        *masked = mask != NULL && status == FC_OK;
        return status == FC_NONFINITE ? backward_input_col2im(d, dy, w, dx, n_threads) : status;
    }
    switch (winograd_backward_input(d)) {
    case WINOGRAD_2X2:
        status = fc_conv2d_winograd_f32(&rotated, dy, w, 1, NULL, dx, n_threads);
        break;
    case WINOGRAD_6X6:
        status = fc_conv2d_winograd_6x6_f32(&rotated, dy, w, 1, NULL, mask, dx, n_threads);
        *masked = mask != NULL && status == FC_OK;
        break;
    case WINOGRAD_6X6_TRANSPOSED:
        status = fc_conv2d_winograd_6x6_backward_input_f32(d, dy, w, mask, dx, n_threads);
        *masked = mask != NULL && status == FC_OK;
        break;
    default:
        return backward_input_phases(d, dy, w, dx, n_threads);
    }
    return status == FC_NONFINITE ? backward_input_col2im(d, dy, w, dx, n_threads) : status;
}

/* After a pass that wrote dx (status), dx = 0 where the mask, if any, is not
 * positive: fc_relu_backward_f32 in place. */
static int masked_after(const fc_conv2d_desc *d, int status, const float *mask, float *dx,
                        int n_threads)
{
    if (status != FC_OK || !mask)
        return status;
    return fc_relu_backward_f32(d->n * d->h * d->w * d->c, dx, mask, dx, n_threads);
}

/* dx, and with mask (x, when it is a ReLU's output) the gradient of that
 * ReLU's input: 0 where the mask is not positive, in the pass that writes
 * dx where it can (the Keras example's second convolution's backward and
 * its input's ReLU, batch 128: 9.24 -> 8.87 ms), else in one after it. */
static int backward_input(const fc_conv2d_desc *d, const float *dy, const float *w,
                          const float *mask, float *dx, int n_threads)
{
    int masked = 0;
    const int status = backward_input_pass(d, dy, w, mask, dx, n_threads, &masked);
    return masked ? status : masked_after(d, status, mask, dx, n_threads);
}

int fc_conv2d_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                 const float *w, float *dx, int n_threads)
{
    return backward_input(d, dy, w, NULL, dx, n_threads);
}

/* Adds dy's rows [r0, r1) (f values each) to db, in row order. */
FC_VECTOR_CLONES static void add_rows(const float *dy, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t f,
                                      float *db)
{
    for (ptrdiff_t r = r0; r < r1; ++r)
        for (ptrdiff_t j = 0; j < f; ++j)
            db[j] += dy[r * f + j];
}

/* acc[i] += v[i] for i < n. */
FC_VECTOR_CLONES static void add_to(float *restrict acc, const float *restrict v, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; ++i)
        acc[i] += v[i];
}

/* Sum of dy's rows [r0, r1) into db (f values), in row order. */
static void sum_rows(const float *dy, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t f, float *db)
{
    memset(db, 0, (size_t)f * sizeof(float));
    add_rows(dy, r0, r1, f, db);
}

/* db = column sums of dy (m rows, f columns), over fixed chunks of rows
 * added in chunk order: the same result for any thread count. */
static int column_sums(const float *dy, ptrdiff_t m, ptrdiff_t f, float *db, int n_threads)
{
    const ptrdiff_t chunks = fc_max(1, fc_min(FC_WGRAD_MAX_CHUNKS, fc_ceil_div(m, FC_WGRAD_CHUNK_ROWS)));
    const ptrdiff_t stride = fc_thread_stride(f);
    float *partials = fc_aligned_alloc((size_t)(chunks * stride) * sizeof(float));
    if (!partials)
        return FC_ERR_NOMEM;
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t ci = 0; ci < chunks; ++ci)
            sum_rows(dy, ci * m / chunks, (ci + 1) * m / chunks, f, partials + ci * stride);
        fc_team_leave(&team);
    }
    for (ptrdiff_t j = 0; j < f; ++j)
        db[j] = fc_sum_chunks(partials, j, chunks, stride);
    fc_aligned_free(partials);
    return FC_OK;
}

/* The depth blocks of a product over `depth` rows into n columns: equal,
 * of at most fc_gemm_max_kc(n) (as fc_gemm_run's). */
static ptrdiff_t chunk_depth_block(ptrdiff_t depth, ptrdiff_t n)
{
    const ptrdiff_t kc = fc_gemm_max_kc(n);
    return fc_ceil_div(depth, fc_ceil_div(depth, kc));
}

/* Chunks of a weight gradient's batch reduction over m pixels (dw k x f),
 * fixed by the shape so that the sums do not depend on the thread count:
 * about FC_WGRAD_CHUNK_ROWS pixels each, their count rounded up to a
 * multiple of 4 as they are the threads' shares (7 chunks on 2 threads left
 * one idle an eighth of the time: a stride-2 3x3 layer, 32 x 28 x 28 x 64 ->
 * 128, 4.20 -> 3.70 ms; LeNet-5's second, 13 -> 16 chunks, 1.32 -> 1.25),
 * at most as many as FC_WGRAD_PARTIAL_BYTES of partial sums allow, then in a
 * multiple of 4 too. Fewer than 4 (a dw of over about a million weights, or
 * under 4 pixels): as many as allowed, up to one per FC_WGRAD_CHUNK_ROWS. */
static ptrdiff_t wgrad_chunks(ptrdiff_t m, ptrdiff_t k, ptrdiff_t f)
{
    const ptrdiff_t part_bytes = (k + 1) * f * (ptrdiff_t)sizeof(float);
    const ptrdiff_t most = fc_min(FC_WGRAD_MAX_CHUNKS, FC_WGRAD_PARTIAL_BYTES / part_bytes);
    const ptrdiff_t per_rows = fc_ceil_div(m, FC_WGRAD_CHUNK_ROWS);
    const ptrdiff_t fours = fc_min(most / 4 * 4, fc_round_up(per_rows, 4));
    return fours >= 4 && fours <= m ? fours : fc_max(1, fc_min(per_rows, most));
}

/* dw (k x f) and db (f, or NULL) from chunks' partial sums, each dw^T (f x
 * k) then db, stride floats apart: the chunks are added in their own
 * contiguous layout, in chunk order, then transposed once (summing at
 * transposed positions would walk every partial with a stride of k floats).
 * The sums are left in the first chunk's place. */
static void add_transposed_partials(float *partials, ptrdiff_t chunks, ptrdiff_t stride,
                                    ptrdiff_t k, ptrdiff_t f, float *dw, float *db, int n_threads)
{
    const ptrdiff_t part = (k + 1) * f, strips = fc_ceil_div(k, FC_TRANSPOSE_STRIP);
    fc_team reduce = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        if (chunks > 1) {
            FC_OMP(omp for schedule(static)) /* then a barrier: the transpose reads them all */
            for (ptrdiff_t e0 = 0; e0 < part; e0 += FC_REDUCE_BLOCK)
                for (ptrdiff_t e = e0; e < fc_min(e0 + FC_REDUCE_BLOCK, part); ++e)
                    partials[e] = fc_sum_chunks(partials, e, chunks, stride);
        }
        /* dw's rows [r0, r0 + FC_TRANSPOSE_STRIP) from the sums' columns. */
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t s = 0; s < strips; ++s) {
            const ptrdiff_t r0 = s * FC_TRANSPOSE_STRIP;
            fc_transpose_f32(f, fc_min(FC_TRANSPOSE_STRIP, k - r0), partials + r0, k,
                             dw + r0 * f, f);
        }
        fc_team_leave(&reduce);
    }
    if (db)
        for (ptrdiff_t j = 0; j < f; ++j)
            db[j] = partials[k * f + j];
}

/* Whether the last thread to finish its chunks adds their partial sums
 * (finish_partials) rather than all threads after the region
 * (add_transposed_partials, add_partials): a second region costs a sleeping
 * thread's wake-up or two, which small sums do not repay (S7's weight
 * gradient, 16 partials of 66 KB, 5 % faster alone; 16 x 14 x 14 x 256 ->
 * 256, 3x3 stride 2, four of 2.4 MB, 3.5 % slower). */
static int one_thread_sums(ptrdiff_t chunks, ptrdiff_t stride)
{
    return chunks * stride * (ptrdiff_t)sizeof(float) <= FC_WGRAD_ONE_THREAD_SUM_BYTES;
}

/* dw (k x f) and db (f, or NULL) from chunks' partial sums, each dw (or,
 * transposed, dw^T: f x k) then db, stride floats apart, added in chunk
 * order into the first chunk's place, a block at a time; by one thread, in
 * the same order as add_transposed_partials and add_partials. */
static void finish_partials(float *partials, ptrdiff_t chunks, ptrdiff_t stride, ptrdiff_t k,
                            ptrdiff_t f, int transposed, float *dw, float *db)
{
    const ptrdiff_t part = (k + 1) * f;
    for (ptrdiff_t e0 = 0; e0 < part; e0 += FC_REDUCE_BLOCK) {
        const ptrdiff_t n = fc_min(FC_REDUCE_BLOCK, part - e0);
        for (ptrdiff_t ci = 1; ci < chunks; ++ci)
            add_to(partials + e0, partials + ci * stride + e0, n);
    }
    if (transposed)
        fc_transpose_f32(f, k, partials, k, dw, f);
    else
        memcpy(dw, partials, (size_t)(k * f) * sizeof(float));
    if (db)
        memcpy(db, partials + k * f, (size_t)f * sizeof(float));
}

/* dw (k x f) and db (f, or NULL) from chunks' partial sums, each dw then
 * db, stride floats apart, added in chunk order. */
static void add_partials(const float *partials, ptrdiff_t chunks, ptrdiff_t stride, ptrdiff_t k,
                         ptrdiff_t f, float *dw, float *db, int n_threads)
{
    fc_team reduce = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t e = 0; e < k * f; ++e)
            dw[e] = fc_sum_chunks(partials, e, chunks, stride);
        fc_team_leave(&reduce);
    }
    if (db)
        for (ptrdiff_t j = 0; j < f; ++j)
            db[j] = fc_sum_chunks(partials, k * f + j, chunks, stride);
}

/* A pointwise layer whose gradients pointwise_backward takes: too many
 * channels for the direct kernels (with up to 32, their weight gradient took
 * 19-78 % less time than the blocks' products: 16 x 56 x 56 x 32 -> 64 and
 * 3 -> 64), chunks in a multiple of 4, since each is one thread's share of
 * dx too (not for a dw of over about a million weights: there the GEMMs
 * share out each chunk among the threads), and products at most as wide as
 * fc_gemm_run_serial takes. */
static int pointwise_in_blocks(const fc_conv2d_desc *d)
{
    const ptrdiff_t m = d->n * d->h * d->w, c = d->c, f = d->f;
    return is_pointwise(d) && !fc_direct_applies(d) && m > 0 && c > 0 && f > 0
           && c <= fc_gemm_serial_max_n() && f <= fc_gemm_serial_max_n()
           && wgrad_chunks(m, c, f) % 4 == 0;
}

/* Both gradients of a pointwise layer (1x1, stride 1, unpadded: x is its
 * im2col matrix and dy its GEMM's C): dx = dy w^T, dw and db = dy's column
 * sums, in one pass over dy. Each thread takes chunks of pixels (the batch
 * reduction's, fixed by the shape), and a chunk is taken in blocks of dy
 * rows small enough to stay in L2: the input gradient's product reads a
 * block from memory, the weight gradient's from L2 (the two passes had each
 * read all of dy: S7's 25.7 MB). The bias gradient sums each block's dy
 * rows first, in order, which for the weight gradient alone also brings
 * the block into cache, read sequentially (summed after the product, from
 * dy^T's columns, S7's weight gradient took 7.8-8.5 ms on a 2-vCPU Zen 4,
 * now 6.3-7.2: the product's strided walk down dy^T's first columns had
 * waited on memory). The weight gradient is computed as dw^T =
 * dy^T x, dy^T read in place, or, with more channels than filters, as dw =
 * x^T dy, dy's block packed (A takes the larger side, read in place). With
 * dx NULL, the weight gradient alone, in the same blocks: the same bits
 * either way. */
static int pointwise_backward(const fc_conv2d_desc *d, const float *x, const float *dy,
                              const float *w, const float *mask, float *dx, float *dw,
                              float *db, int n_threads)
{
    const ptrdiff_t m = d->n * d->h * d->w, c = d->c, f = d->f;
    const int transposed = c <= f;
    const ptrdiff_t chunks = wgrad_chunks(m, c, f);
    const ptrdiff_t stride = fc_thread_stride((c + 1) * f);
    const int one_thread = one_thread_sums(chunks, stride);
    const ptrdiff_t b_width = transposed ? c : f;
    const int b_in_place = b_width == fc_kernels_for(b_width)->nr;
    /* Blocks of at most whole depth blocks of the weight gradient's product
     * where they fit (480 rows of S7's 1 KiB, two blocks of 240), else of
     * whole slivers of the input gradient's. */
    const ptrdiff_t fit = FC_POINTWISE_BLOCK_BYTES / (f * (ptrdiff_t)sizeof(float));
    const ptrdiff_t kc = fc_gemm_max_kc(transposed ? c : f), mr = fc_kernels_for(c)->mr;
    const ptrdiff_t block = fit >= kc ? fit / kc * kc : fc_max(mr, fit / mr * mr);
    /* The plans of a whole block: dx's (w^T packed once for all blocks) and
     * the weight gradient's (its B packed per block). */
    const fc_plain_matrix wm = {w, f};
    const ptrdiff_t tap0 = 0;
    /* A large dx bypasses the cache, as fc_gemm_f32 writes it (8 x 56 x 56 x
     * 256 -> 64, alternating builds: 8.31 -> 7.78 ms), unless the ReLU's
     * gradient is to be taken from it. */
    const int stream = !mask && (double)m * c >= (double)fc_stream_min_floats();
    const fc_gemm_plan dx_plan = {.m = block, .n = c, .k = f, .a_rs = f, .a_cs = 1,
                                  .pack_b = fc_pack_b_transposed, .b_ctx = &wm,
                                  .stream = stream};
    const fc_gemm_plan dw_plan = {.m = transposed ? f : c, .n = transposed ? c : f, .k = block,
                                  .a_rs = 1, .a_cs = transposed ? f : c,
                                  .pack_b = fc_pack_b_tapped};
    const ptrdiff_t wt_floats = dx ? fc_thread_stride(fc_gemm_packed_b_floats(&dx_plan)) : 0;
    const ptrdiff_t bpack_floats = fc_gemm_packed_b_floats(&dw_plan);
    const ptrdiff_t ws_floats = fc_max(fc_gemm_serial_ws_floats(&dw_plan),
                                       dx ? fc_gemm_serial_ws_floats(&dx_plan) : 0);
    const ptrdiff_t thread_floats = fc_thread_stride(bpack_floats + ws_floats);
    n_threads = (int)fc_min(chunks, fc_threads_for((dx ? 2.0 : 1.0) * fc_conv_macs(d),
                                                   FC_GRAIN_GEMM, n_threads));
    float *partials = fc_aligned_alloc(
        (size_t)(chunks * stride + wt_floats + n_threads * thread_floats) * sizeof(float));
    if (!partials)
        return FC_ERR_NOMEM;
    float *wt = partials + chunks * stride, *thread_mem = wt + wt_floats;
    if (dx)
        fc_gemm_pack_b(&dx_plan, wt);

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        fc_fp_state fp = fc_fp_enter();
        float *bpack = thread_mem + thread_floats * fc_thread_id(), *ws = bpack + bpack_floats;
        memset(ws, 0, (size_t)ws_floats * sizeof(float));
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
            const ptrdiff_t r0 = ci * m / chunks, r1 = (ci + 1) * m / chunks;
            float *out = partials + ci * stride, *sums = out + c * f;
            /* The chunk in blocks of equal size (whole slivers), not a short
             * last one: S7's chunks of 1568 rows in 4 of up to 396, not 3 of
             * 480 and one of 128 (its weight gradient alone on AVX2 2.6 %
             * faster, on AVX-512 the same). */
            const ptrdiff_t n_blocks = fc_ceil_div(r1 - r0, block);
            const ptrdiff_t step = fc_min(block, fc_round_up(fc_ceil_div(r1 - r0, n_blocks), mr));
            for (ptrdiff_t s0 = r0; s0 < r1; s0 += step) {
                const ptrdiff_t rows = fc_min(step, r1 - s0);
                if (dx) {
                    fc_gemm_plan g = dx_plan;
                    g.m = rows;
                    g.a_base = dy + s0 * f;
                    g.c = dense_rows(dx + s0 * c, c);
                    fc_gemm_run_serial(&g, wt, ws);
                    if (mask) /* the ReLU's gradient while the block is in cache */
                        fc_relu_backward_f32(rows * c, dx + s0 * c, mask + s0 * c, dx + s0 * c, 1);
                }
                if (s0 == r0)
                    memset(sums, 0, (size_t)f * sizeof(float));
                add_rows(dy, s0, s0 + rows, f, sums);
                const fc_tapped_matrix xm = {x + s0 * c, c, rows, &tap0};
                const fc_tapped_matrix dym = {dy + s0 * f, f, rows, &tap0};
                fc_gemm_plan g = dw_plan;
                g.k = rows;
                g.a_base = transposed ? dy + s0 * f : x + s0 * c;
                g.b_ctx = transposed ? &xm : &dym;
                g.c = dense_rows(out, g.n);
                g.accumulate = s0 > r0;
                /* The next block's rows of dy and x (past the chunk's end,
                 * this thread's next chunk's), fetched while this block's
                 * product runs: otherwise the next block's sums of dy's rows
                 * and its products wait on memory (S7's weight gradient on
                 * a 2-vCPU Zen 4, builds alternated: 6.0 -> 5.2 ms; its
                 * whole backward 2 %). Where x's (or dy's) rows are exactly
                 * one panel of B, the product reads them in place: packing
                 * would copy them unchanged (1.3 %). */
                const ptrdiff_t n0 = s0 + rows, n1 = fc_min(m, n0 + rows);
                fc_prefetch_queue ahead = {
                    {(const char *)(dy + n0 * f), (const char *)(x + n0 * c)},
                    {(const char *)(dy + n1 * f), (const char *)(x + n1 * c)}};
                g.prefetch = &ahead;
                if (b_in_place) {
                    g.b_rows = transposed ? x + s0 * c : dy + s0 * f;
                    g.b_ld = transposed ? c : f;
                }
                fc_gemm_pack_b(&g, bpack);
                fc_gemm_run_serial(&g, bpack, ws);
            }
        }
        if (stream)
            fc_store_fence();
        if (one_thread && fc_team_arrive(&team))
            finish_partials(partials, chunks, stride, c, f, transposed, dw, db);
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    if (!one_thread && transposed)
        add_transposed_partials(partials, chunks, stride, c, f, dw, db, n_threads);
    else if (!one_thread)
        add_partials(partials, chunks, stride, c, f, dw, db, n_threads);
    fc_aligned_free(partials);
    return FC_OK;
}

/* [*begin, *end): the rows of x that output pixels [r0, r1) read, from the
 * first pixel's top tap to the last pixel's bottom one (empty if none). */
static void input_rows(const fc_conv2d_desc *d, const float *x, ptrdiff_t r0, ptrdiff_t r1,
                       const char **begin, const char **end)
{
    const ptrdiff_t img = d->ho * d->wo, row_floats = d->w * d->c;
    *begin = *end = (const char *)x;
    if (r1 <= r0)
        return;
    const ptrdiff_t n0 = r0 / img, top = fc_max(0, r0 % img / d->wo * d->sh - d->pt);
    const ptrdiff_t n1 = (r1 - 1) / img;
    const ptrdiff_t bottom = fc_min(d->h, (r1 - 1) % img / d->wo * d->sh - d->pt
                                              + (d->kh - 1) * d->dh + 1);
    *begin = (const char *)(x + (n0 * d->h + top) * row_floats);
    *end = (const char *)(x + (n1 * d->h + bottom) * row_floats);
    if (*end < *begin)
        *end = *begin;
}

/* The transposed weight-gradient product of chunk [r0, r1): out (dw^T, f x
 * k) and sums (db, f, or NULL) from dy^T im2col(x), in blocks of rows as
 * deep as the product's depth blocks, so the same sums in the same order as
 * one product over the chunk: each block's dy rows summed, its im2col
 * packed and its product run while the next block's dy rows and input rows
 * are fetched (the packing otherwise waited on x, the product on dy: S8's
 * weight gradient on a 2-vCPU Zen 4, builds alternated: 8.04 -> 7.63 ms,
 * 3 % of it the fetching). bpack and ws are the thread's, for a block's
 * packed B and the serial product. */
static void transposed_chunk(const fc_conv2d_desc *d, const float *x, const float *dy,
                             const im2col_view *xv, ptrdiff_t r0, ptrdiff_t r1, float *out,
                             float *sums, float *bpack, float *ws)
{
    const ptrdiff_t m = d->n * d->ho * d->wo, k = d->kh * d->kw * d->c, f = d->f;
    const ptrdiff_t step = chunk_depth_block(r1 - r0, k);
    im2col_view bv = *xv;
    if (sums)
        memset(sums, 0, (size_t)f * sizeof(float));
    for (ptrdiff_t s0 = r0; s0 < r1; s0 += step) {
        const ptrdiff_t rows = fc_min(step, r1 - s0);
        if (sums) /* first: for dy^T read in place, this brings the block into cache */
            add_rows(dy, s0, s0 + rows, f, sums);
        const ptrdiff_t n0 = s0 + rows, n1 = fc_min(m, n0 + rows);
        fc_prefetch_queue ahead = {{(const char *)(dy + n0 * f), NULL},
                                   {(const char *)(dy + n1 * f), NULL}};
        input_rows(d, x, n0, n1, &ahead.next[1], &ahead.end[1]);
        bv.row0 = s0;
        const fc_gemm_plan g = {.m = f, .n = k, .k = rows, .a_base = dy + s0 * f, .a_rs = 1,
                                .a_cs = f, .pack_b = pack_b_im2col, .b_ctx = &bv,
                                .c = dense_rows(out, k), .accumulate = s0 > r0,
                                .prefetch = &ahead};
        fc_gemm_pack_b(&g, bpack);
        fc_gemm_run_serial(&g, bpack, ws);
    }
}

/* Backward-weight: dw (kh*kw*c, f) = im2col(x)^T dy, reduced over all
 * n*ho*wo output pixels (few channels: the direct kernels; pointwise layers:
 * pointwise_backward; 3x3 and 5x5 ones: Winograd where it applies). Usually
 * computed transposed, dw^T (f, k) = dy^T im2col(x), with dy^T read in place
 * by the micro-kernel and im2col(x) packed in long contiguous runs of
 * channels; a 1x1, stride-1, unpadded layer with more channels than filters
 * (past fc_gemm_serial_max_n), a very small k, or fewer pixels than k,
 * computes dw = im2col(x)^T dy directly (x^T read in place when pointwise).
 *
 * The batch reduction is cut into chunks fixed by the shape alone; each
 * chunk's GEMM writes its own partial sum and the partials are added in
 * chunk order, so the result is the same for every thread count. */
int fc_conv2d_backward_weight_f32(const fc_conv2d_desc *d, const float *x,
                                  const float *dy, float *dw, float *db,
                                  int n_threads)
{
    const ptrdiff_t m = d->n * d->ho * d->wo, k = d->kh * d->kw * d->c, f = d->f;
    if (f == 0)
        return FC_OK;
    if (k == 0) /* no channels: dw is empty, db still sums dy */
        return db ? column_sums(dy, m, f, db,
                                fc_threads_for((double)m * f, FC_GRAIN_ELEMENTS, n_threads))
                  : FC_OK;
    if (fc_direct_applies(d))
        return fc_conv2d_direct_backward_f32(d, x, dy, NULL, NULL, dw, db, n_threads);
    if (fc_conv2d_dilated_applies(d))
        return fc_conv2d_dilated_backward_f32(d, x, dy, NULL, NULL, dw, db, n_threads);
    if (pointwise_in_blocks(d))
        return pointwise_backward(d, x, dy, NULL, NULL, NULL, dw, db, n_threads);
    if (fc_winograd_strided_applies(d) && fc_winograd_backward_weight_pays(d)) {
        const int status = fc_conv2d_winograd_backward_weight_f32(d, x, dy, dw, db, n_threads);
        if (status != FC_NONFINITE) /* else the GEMM below */
            return status;
    }
    if (fc_winograd_applies(d) && fc_winograd_backward_weight_pays(d)) {
        const int status = one_pass_winograd(d)
            ? fc_conv2d_winograd_6x6_backward_f32(d, x, dy, NULL, NULL, NULL, NULL, dw, db,
                                                  n_threads)
            : fc_conv2d_winograd_backward_weight_f32(d, x, dy, dw, db, n_threads);
        if (status != FC_NONFINITE) /* else the GEMM below */
            return status;
    }
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_GEMM, n_threads);
    ptrdiff_t *off_a, *off_b;
    if (forward_taps(d, &off_a, &off_b) != FC_OK)
        return FC_ERR_NOMEM;

    const ptrdiff_t chunks = wgrad_chunks(m, k, f);
    const int pointwise = is_pointwise(d);
    /* The in-place A side is free and the packed B side costs in proportion
     * to 1 / (rows of A), so A takes the larger dimension where it can be read
     * in place; a k narrower than the register tile goes on the A side. With
     * fewer pixels than k (one 7 x 7 image of 512 channels), dy packed as B
     * costs less than transposing dw^T's k f sums into dw (a fifth of that
     * layer's backward pass). */
    const int transposed = !((pointwise && k > f) || k < fc_kernels_for(k)->nr || m < k);
    /* Each chunk: its dw^T (f x k) or dw partial followed by its db partial
     * (f); one chunk not transposed writes dw and db themselves. */
    const int in_place = chunks == 1 && !transposed;
    const ptrdiff_t part = (k + 1) * f, stride = fc_thread_stride(part);
    const int one_thread = one_thread_sums(chunks, stride);
    float *partials = in_place ? NULL
                               : fc_aligned_alloc((size_t)(chunks * stride) * sizeof(float));
    if (!in_place && !partials) {
        fc_aligned_free(off_a);
        return FC_ERR_NOMEM;
    }
    const im2col_view xv = {x, d->h, d->w, d->c, d->ho, d->wo, d->sh, d->sw, off_a, off_b, 0, NULL};
    /* dy rows of each chunk, the B operand when not transposed. */
    const ptrdiff_t tap0 = 0;
    fc_tapped_matrix dy_rows[FC_WGRAD_MAX_CHUNKS];
    for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
        fc_tapped_matrix t = {dy + (ci * m / chunks) * f, f, m > 0 ? m : 1, &tap0};
        dy_rows[ci] = t;
    }
    int status = FC_OK;
    /* One chunk: all threads share its GEMM. Several: one chunk per thread,
     * transposed ones in blocks (transposed_chunk), with buffers of the
     * thread's own. */
    const int outer_threads = (int)fc_min(n_threads, chunks);
    const int inner_threads = chunks == 1 ? n_threads : 1;
    const int in_blocks = transposed && inner_threads == 1;
    const fc_gemm_plan block_plan = {.m = f, .n = k, .k = fc_gemm_max_kc(k), .a_rs = 1,
                                     .a_cs = f};
    const ptrdiff_t bpack_floats = fc_gemm_packed_b_floats(&block_plan);
    const ptrdiff_t thread_floats = fc_thread_stride(
        bpack_floats + fc_gemm_serial_ws_floats(&block_plan));
    float *thread_mem = in_blocks ? fc_aligned_alloc((size_t)(thread_floats * outer_threads)
                                                     * sizeof(float))
                                  : NULL;
    if (in_blocks && !thread_mem) {
        fc_aligned_free(partials);
        fc_aligned_free(off_a);
        return FC_ERR_NOMEM;
    }
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(outer_threads) if (outer_threads > 1))
    {
        float *bpack = in_blocks ? thread_mem + thread_floats * fc_thread_id() : NULL;
        float *ws = in_blocks ? bpack + bpack_floats : NULL;
        if (in_blocks) /* rows past a partial sliver's are read: keep them finite */
            memset(ws, 0, (size_t)(thread_floats - bpack_floats) * sizeof(float));
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
            const ptrdiff_t r0 = ci * m / chunks, r1 = (ci + 1) * m / chunks;
            float *out = in_place ? dw : partials + ci * stride;
            float *sums = in_place ? db : out + k * f;
            if (in_blocks) {
                transposed_chunk(d, x, dy, &xv, r0, r1, out, sums, bpack, ws);
                continue;
            }
            im2col_view bv = xv;
            bv.row0 = r0;
            if (sums) /* first: for dy^T read in place, this brings dy into cache */
                sum_rows(dy, r0, r1, f, sums);
            fc_gemm_plan plan;
            if (transposed) {
                const fc_gemm_plan t = {.m = f, .n = k, .k = r1 - r0, .a_base = dy + r0 * f,
                                        .a_rs = 1, .a_cs = f, .pack_b = pack_b_im2col,
                                        .b_ctx = &bv, .c = dense_rows(out, k)};
                plan = t;
            } else {
                fc_gemm_plan t = {.m = k, .n = f, .k = r1 - r0, .pack_a = pack_a_im2col_transposed,
                                  .a_ctx = &bv, .a_interleaved = 1, .pack_b = fc_pack_b_tapped,
                                  .b_ctx = &dy_rows[ci], .c = dense_rows(out, f)};
                if (pointwise) { /* x^T in place */
                    t.pack_a = NULL;
                    t.a_base = x + r0 * k;
                    t.a_rs = 1;
                    t.a_cs = k;
                }
                plan = t;
            }
            if (fc_gemm_run(&plan, inner_threads) != FC_OK)
                status = FC_ERR_NOMEM;
        }
        if (!in_place && one_thread && fc_team_arrive(&team) && status == FC_OK)
            finish_partials(partials, chunks, stride, k, f, transposed, dw, db);
        fc_team_leave(&team);
    }
    const int threads_sum = !in_place && !one_thread && status == FC_OK;
    if (threads_sum && transposed)
        add_transposed_partials(partials, chunks, stride, k, f, dw, db, n_threads);
    else if (threads_sum)
        add_partials(partials, chunks, stride, k, f, dw, db, n_threads);
    fc_aligned_free(thread_mem);
    fc_aligned_free(partials);
    fc_aligned_free(off_a);
    return status;
}

int fc_conv2d_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                           const float *w, float *dx, float *dw, float *db, int n_threads)
{
    const float *mask = d->relu ? x : NULL;
    if (fc_conv2d_dilated_applies(d))
        return fc_conv2d_dilated_backward_f32(d, x, dy, w, dx, dw, db, n_threads);
    /* Both gradients from one pass over dy where the method allows, but for
     * an infinite or NaN weight (or, in the Winograd pass, value), whose dx
     * takes col2im (see backward_input_pass) and dw its own pass. (A pointwise
     * layer's products sum the same terms as the reference, whatever w.) */
    if (pointwise_in_blocks(d))
        return pointwise_backward(d, x, dy, w, mask, dx, dw, db, n_threads);
    if (dx && fc_direct_input_grad_applies(d) && fc_all_finite(w, d->kh * d->kw * d->c * d->f)) {
        const int status = fc_conv2d_direct_backward_f32(d, x, dy, w, dx, dw, db, n_threads);
        return masked_after(d, status, mask, dx, n_threads);
    }
    if (dx && one_pass_winograd(d)) {
        const int status = fc_conv2d_winograd_6x6_backward_f32(d, x, dy, NULL, w, mask, dx, dw,
                                                               db, n_threads);
        if (status != FC_NONFINITE)
            return status;
    }
    const int status = dx ? backward_input(d, dy, w, mask, dx, n_threads) : FC_OK;
    return status != FC_OK ? status : fc_conv2d_backward_weight_f32(d, x, dy, dw, db, n_threads);
}

/* 1 when fc_conv2d_backward_f32 (dx wanted or not) tries the one-pass 6x6
 * Winograd backward before any other method (the order of its methods, and
 * of fc_conv2d_backward_weight_f32's). */
static int backward_tries_one_pass_winograd(const fc_conv2d_desc *d, const float *w, int with_dx)
{
    if (!one_pass_winograd(d) || pointwise_in_blocks(d))
        return 0;
    if (with_dx)
        return !(fc_direct_input_grad_applies(d)
                 && fc_all_finite(w, d->kh * d->kw * d->c * d->f));
    return d->f > 0 && d->kh * d->kw * d->c > 0 && !fc_direct_applies(d) && fc_winograd_applies(d)
           && fc_winograd_backward_weight_pays(d);
}

int fc_conv2d_max_pool2d_backward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                      const float *x, const float *dy, const uint8_t *argmax,
                                      const float *w, float *dx, float *dw, float *db,
                                      int n_threads)
{
    if (p->kh * p->kw > FC_POOL_ARGMAX_MAX_CELLS)
        return FC_ERR_UNSUPPORTED;
    /* dz's tiles from the pooling's gradient where the one-pass Winograd
     * backward would read them from dz (and, for an infinite or NaN value,
     * through dz). */
    if (fc_winograd_6x6_pools(p) && backward_tries_one_pass_winograd(d, w, dx != NULL)) {
        const fc_pooled_gradient pooled = {p, argmax, dy};
        const int status = fc_conv2d_winograd_6x6_backward_f32(
            d, x, NULL, &pooled, w, d->relu ? x : NULL, dx, dw, db, n_threads);
        if (status != FC_NONFINITE)
            return status;
    }
    float *dz = fc_aligned_alloc((size_t)(d->n * d->ho * d->wo * d->f) * sizeof(float));
    if (!dz)
        return FC_ERR_NOMEM;
    int status = fc_max_pool2d_backward_argmax_f32(p, argmax, dy, dz, n_threads);
    if (status == FC_OK)
        status = fc_conv2d_backward_f32(d, x, dz, w, dx, dw, db, n_threads);
    fc_aligned_free(dz);
    return status;
}
