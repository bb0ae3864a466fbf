/* Direct convolution for layers with few input channels (kh*kw*c at most
 * FC_DIRECT_MAX_K, such as a network's first layer on grey or RGB images, or
 * larger kernels on fewer than 16 channels, see fc_internal.h).
 *
 * As a GEMM such a layer has a depth k of 9-27: each output value takes only
 * k multiply-adds, so packing the im2col rows and B panels and walking the
 * GEMM's blocks cost as much as the arithmetic. The direct kernels work an
 * output (or input) row at a time with no packing of the activations:
 *
 * forward          a zero-padded copy of the kh input rows under one output
 *                  row (the "patch"; x's own rows where there is no padding)
 *                  makes every tap a fixed offset, and register tiles of up to
 *                  14 pixels (AVX-512; 6 on AVX2) x 2 vectors of filters sum
 *                  the k taps times weights;
 * backward-input   each dx element gathers the dot products, over the
 *                  filters, of the dy pixels and weights that reach it, so it
 *                  is written once and needs no col2im scatter. The dy rows
 *                  are first "spread": copied with zeros where the padding
 *                  or the stride leaves no dy pixel, so that every dx pixel
 *                  meets every tap of a kernel row at a fixed offset and 8
 *                  neighbouring pixels share each weight vector loaded. A
 *                  spread row serves the next kh - 1 dx rows too;
 * backward-weight  the same patch as the forward pass, with the spread dy
 *                  row streamed against up to 6 taps at a time into the
 *                  chunk's partial sum of dw.
 *
 * Both gradients come from one pass over dy: each dy row is read from memory
 * once, into its spread copy, which the weight gradient and the dx rows
 * reaching it then read from cache (S1's backward 0.55 -> 0.44 ms: dy is 5.5 MB,
 * and reading it twice from L3 was a third of the time).
 *
 * Output rows are the units of parallel work (the forward's rows, the
 * backward's chunks of dy rows); dw is reduced over chunks fixed by the shape,
 * added in chunk order, so no result depends on the thread count. The
 * backward hands its chunks out dynamically: a thread that wakes late (a
 * sleeping OpenMP thread in a virtual machine can take tens of microseconds)
 * leaves its share to the others. The forward pass splits its rows
 * statically, so that each thread writes the same rows of y on every call and
 * an output block reused from the last call is already in that core's cache
 * (S1: 0.17 ms, 0.21 handed out dynamically). */
#include <string.h>

#include "fc_internal.h"

int fc_direct_applies(const fc_conv2d_desc *d)
{
    const ptrdiff_t k = d->kh * d->kw * d->c;
    return k >= 1
           && (k <= FC_DIRECT_MAX_K
               || (d->c < FC_WINOGRAD_MIN_CHANNELS && k <= FC_DIRECT_FEW_CHANNELS_MAX_K));
}

int fc_direct_input_grad_applies(const fc_conv2d_desc *d)
{
    const int unit_steps = d->sh == 1 && d->sw == 1 && d->dh == 1 && d->dw == 1;
    return fc_direct_applies(d)
           && (d->kh * d->kw * d->c <= FC_DIRECT_MAX_K
               || (d->c <= FC_DIRECT_FEW_CHANNELS && unit_steps));
}

/* The zero-padded input rows under output rows: geometry of one patch. */
typedef struct {
    ptrdiff_t width;    /* patch columns: those under the wo output pixels */
    ptrdiff_t floats;   /* floats per patch */
    ptrdiff_t step;     /* patch floats between neighbouring output pixels */
    ptrdiff_t off[FC_DIRECT_K_CAPACITY]; /* offset of tap (ki, kj, ci) */
} patch_geometry;

static patch_geometry patch_geometry_of(const fc_conv2d_desc *d)
{
    patch_geometry g;
    g.width = (fc_max(d->wo, 1) - 1) * d->sw + (d->kw - 1) * d->dw + 1;
    g.floats = d->kh * g.width * d->c;
    g.step = d->sw * d->c;
    ptrdiff_t t = 0;
    for (ptrdiff_t ki = 0; ki < d->kh; ++ki)
        for (ptrdiff_t kj = 0; kj < d->kw; ++kj)
            for (ptrdiff_t ci = 0; ci < d->c; ++ci)
                g.off[t++] = (ki * g.width + kj * d->dw) * d->c + ci;
    return g;
}

/* Fills the patch of output row oh of image img: patch row ki, column u holds
 * input pixel (oh*sh + ki*dh - pt, u - pl), or zeros in the padding. */
static void fill_patch(const fc_conv2d_desc *d, const patch_geometry *g, const float *x,
                       ptrdiff_t img, ptrdiff_t oh, float *patch)
{
    const ptrdiff_t c = d->c;
    /* Columns u in [u0, u1) are inside the image. */
    const ptrdiff_t u0 = fc_min(d->pl, g->width), u1 = fc_max(u0, fc_min(g->width, d->pl + d->w));
    for (ptrdiff_t ki = 0; ki < d->kh; ++ki) {
        float *row = patch + ki * g->width * c;
        const ptrdiff_t ih = oh * d->sh + ki * d->dh - d->pt;
        if (ih < 0 || ih >= d->h) {
            memset(row, 0, (size_t)(g->width * c) * sizeof(float));
            continue;
        }
        memset(row, 0, (size_t)(u0 * c) * sizeof(float));
        if (u1 > u0)
            memcpy(row + u0 * c, x + ((img * d->h + ih) * d->w + (u0 - d->pl)) * c,
                   (size_t)((u1 - u0) * c) * sizeof(float));
        memset(row + u1 * c, 0, (size_t)((g->width - u1) * c) * sizeof(float));
    }
}

/* The patch of output row oh of image img: x's own rows where they are one
 * (no padding left or right, rows not dilated, all kh of them inside the
 * image; S1's forward 0.19 -> 0.18 ms), else filled into scratch. */
static const float *patch_of(const fc_conv2d_desc *d, const patch_geometry *g, const float *x,
                             ptrdiff_t img, ptrdiff_t oh, float *scratch)
{
    const ptrdiff_t ih = oh * d->sh - d->pt;
    if (d->pl == 0 && g->width == d->w && d->dh == 1 && ih >= 0 && ih + d->kh <= d->h)
        return x + (img * d->h + ih) * d->w * d->c;
    fill_patch(d, g, x, img, oh, scratch);
    return scratch;
}

/* w (k, f) as blocks of nb filters, each k rows of nb floats, zero-padded. */
static void pack_weights(const float *w, ptrdiff_t k, ptrdiff_t f, int nb, float *wp)
{
    for (ptrdiff_t fb = 0; fb < f; fb += nb)
        for (ptrdiff_t t = 0; t < k; ++t)
            for (int j = 0; j < nb; ++j)
                *wp++ = fb + j < f ? w[t * f + fb + j] : 0.0f;
}

/* w packed (pack_weights) and the bias after it, both zero-padded to whole
 * blocks of nb filters, in one block of memory (NULL: no memory). */
static float *packed_weights_and_bias(const fc_conv2d_desc *d, const float *w, const float *b,
                                      int nb)
{
    const ptrdiff_t k = d->kh * d->kw * d->c, f = d->f, blocks = fc_ceil_div(f, nb);
    float *wp = fc_aligned_alloc((size_t)(blocks * nb * (k + 1)) * sizeof(float));
    if (!wp)
        return NULL;
    pack_weights(w, k, f, nb, wp);
    float *bias = wp + blocks * nb * k;
    for (ptrdiff_t j = 0; j < blocks * nb; ++j)
        bias[j] = b && j < f ? b[j] : 0.0f;
    return wp;
}

/* One output row (wo pixels of f floats) from its patch: every block of
 * filters, wp as packed_weights_and_bias makes it. */
static void convolve_row(const fc_conv2d_desc *d, const fc_direct_kernel_set *ks,
                         const patch_geometry *g, const float *wp, const float *patch,
                         float *yrow)
{
    const ptrdiff_t k = d->kh * d->kw * d->c, f = d->f, nb = ks->nb;
    const ptrdiff_t blocks = fc_ceil_div(f, nb);
    const float *bias = wp + blocks * nb * k;
    for (ptrdiff_t bi = 0; bi < blocks; ++bi)
        ks->forward_row(patch, g->step, g->off, k, wp + bi * nb * k, bias + bi * nb, d->relu,
                        d->wo, yrow + bi * nb, f, (int)fc_min(nb, f - bi * nb));
}

int fc_conv2d_direct_forward_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                 const float *b, float *y, int n_threads)
{
    const fc_direct_kernel_set *ks = fc_direct_kernels();
    const ptrdiff_t rows = d->n * d->ho;
    const patch_geometry g = patch_geometry_of(d);
    const int wanted = fc_threads_for(fc_conv_macs(d), FC_GRAIN_DIRECT, n_threads);
    n_threads = (int)fc_max(1, fc_min(wanted, rows));
    float *wp = packed_weights_and_bias(d, w, b, ks->nb);
    const ptrdiff_t per_thread = fc_thread_stride(g.floats);
    float *patches = fc_aligned_alloc((size_t)(n_threads * per_thread) * sizeof(float));
    if (!wp || !patches) {
        fc_aligned_free(wp);
        fc_aligned_free(patches);
        return FC_ERR_NOMEM;
    }
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        const fc_fp_state fp = fc_fp_enter();
        float *scratch = patches + fc_thread_id() * per_thread;
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t row = 0; row < rows; ++row)
            convolve_row(d, ks, &g, wp,
                         patch_of(d, &g, x, row / d->ho, row % d->ho, scratch),
                         y + row * d->wo * d->f);
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(wp);
    fc_aligned_free(patches);
    return FC_OK;
}

int fc_conv2d_direct_max_pool2d_forward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                            const float *x, const float *w, const float *b,
                                            float *y, uint8_t *argmax, int n_threads)
{
    const fc_direct_kernel_set *ks = fc_direct_kernels();
    const ptrdiff_t rows = p->n * p->ho;
    const patch_geometry g = patch_geometry_of(d);
    const int wanted = fc_threads_for(fc_conv_macs(d), FC_GRAIN_DIRECT, n_threads);
    n_threads = (int)fc_max(1, fc_min(wanted, rows));
    float *wp = packed_weights_and_bias(d, w, b, ks->nb);
    /* Per thread: a patch, then the convolution rows under one pooled row. */
    const ptrdiff_t patch_floats = fc_round_up(g.floats, FC_ALIGN_FLOATS);
    const ptrdiff_t per_thread = fc_thread_stride(patch_floats + p->kh * d->wo * d->f);
    float *scratch = fc_aligned_alloc((size_t)(n_threads * per_thread) * sizeof(float));
    if (!wp || !scratch) {
        fc_aligned_free(wp);
        fc_aligned_free(scratch);
        return FC_ERR_NOMEM;
    }
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        const fc_fp_state fp = fc_fp_enter();
        float *patch_scratch = scratch + fc_thread_id() * per_thread;
        float *band = patch_scratch + patch_floats;
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t row = 0; row < rows; ++row) {
            const ptrdiff_t img = row / p->ho, ph = row % p->ho;
            /* The pooled row's window rows [r0, r1) of the convolution's output. */
            const ptrdiff_t start = ph * p->sh - p->pt;
            const ptrdiff_t r0 = fc_max(start, 0), r1 = fc_min(start + p->kh, d->ho);
            for (ptrdiff_t oh = r0; oh < r1; ++oh)
                convolve_row(d, ks, &g, wp, patch_of(d, &g, x, img, oh, patch_scratch),
                             band + (oh - r0) * d->wo * d->f);
            /* The band as an image of r1 - r0 rows whose one pooled row has
             * the same window, cut where this one's is. */
            fc_pool2d_desc in_band = *p;
            in_band.h = r1 - r0;
            in_band.pt = r0 - start;
            fc_max_pool2d_row(&in_band, band, 0, row, y, argmax);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(wp);
    fc_aligned_free(scratch);
    return FC_OK;
}

/* dy rows as the backward-input kernel reads them: row oh of image img laid
 * out so that dx column iw meets it through kernel column kj at pixel
 * iw + pl + (kw-1-kj)*dw. Pixel u holds dy pixel (u - (kw-1)*dw) / sw where
 * that is a whole column of dy, else zeros (the padding, and the columns a
 * stride skips); filters are zero-padded to fp. */
typedef struct {
    ptrdiff_t width;  /* pixels per row: those read for dx columns < w and a group past,
                       * and every dy pixel (for dw) */
    ptrdiff_t slots;  /* rows kept: every dy row one dx row reads */
    ptrdiff_t fp;     /* floats per pixel */
} spread_geometry;

static spread_geometry spread_geometry_of(const fc_conv2d_desc *d, ptrdiff_t nb)
{
    spread_geometry g;
    g.width = fc_max(d->w + FC_DIRECT_GROUP + d->pl, (d->wo - 1) * d->sw + 1) + (d->kw - 1) * d->dw;
    g.slots = (d->kh - 1) * d->dh / d->sh + 2;
    g.fp = fc_round_up(d->f, nb);
    return g;
}

/* Fills row (pixels of g->fp floats) with dy row oh of image img. */
static void spread_row(const fc_conv2d_desc *d, const spread_geometry *g, const float *dy,
                       ptrdiff_t img, ptrdiff_t oh, float *row)
{
    const ptrdiff_t f = d->f, fp = g->fp, first = (d->kw - 1) * d->dw, wo = d->wo;
    const float *src = dy + (img * d->ho + oh) * d->wo * f;
    if (d->sw == 1 && f == fp) {
        memset(row, 0, (size_t)(first * fp) * sizeof(float));
        if (wo * f > 0) /* dy may be empty (and NULL) */
            memcpy(row + first * fp, src, (size_t)(wo * f) * sizeof(float));
        memset(row + (first + wo) * fp, 0, (size_t)((g->width - first - wo) * fp) * sizeof(float));
        return;
    }
    memset(row, 0, (size_t)(g->width * fp) * sizeof(float));
    for (ptrdiff_t ow = 0; ow < wo && f > 0; ++ow)
        memcpy(row + (first + ow * d->sw) * fp, src + ow * f, (size_t)f * sizeof(float));
}

/* The per-thread ring of spread dy rows: slot oh % slots holds row oh of
 * image held[2*s], or nothing yet (-1). */
typedef struct {
    float *rows;
    ptrdiff_t *held;
} spread_ring;

/* dy row oh of image img, spread into its slot unless it is there already. */
static const float *spread_of(const fc_conv2d_desc *d, const spread_geometry *g,
                              const float *dy, ptrdiff_t img, ptrdiff_t oh, spread_ring ring)
{
    const ptrdiff_t s = oh % g->slots;
    float *row = ring.rows + s * g->width * g->fp;
    if (ring.held[2 * s] != img || ring.held[2 * s + 1] != oh) {
        spread_row(d, g, dy, img, oh, row);
        ring.held[2 * s] = img;
        ring.held[2 * s + 1] = oh;
    }
    return row;
}

/* Overwrites row ih of image img of dx from the spread dy rows it reads. */
static void input_row_of(const fc_conv2d_desc *d, const spread_geometry *g,
                         const fc_direct_kernel_set *ks, const float *dy, const float *wp,
                         ptrdiff_t img, ptrdiff_t ih, spread_ring ring, float *dxrow)
{
    const ptrdiff_t c = d->c, fp = g->fp;
    const float *tap_dy[FC_DIRECT_K_CAPACITY], *tap_w[FC_DIRECT_K_CAPACITY];
    int n = 0;
    for (ptrdiff_t ki = 0; ki < d->kh; ++ki) {
        const ptrdiff_t v = ih + d->pt - ki * d->dh; /* oh * sh where a dy row reaches */
        if (v < 0 || v % d->sh != 0 || v / d->sh >= d->ho)
            continue;
        const float *spread = spread_of(d, g, dy, img, v / d->sh, ring);
        for (ptrdiff_t kj = 0; kj < d->kw; ++kj, ++n) {
            tap_dy[n] = spread + (d->pl + (d->kw - 1 - kj) * d->dw) * fp;
            tap_w[n] = wp + (ki * d->kw + kj) * c * fp;
        }
    }
    if (n == 0)
        memset(dxrow, 0, (size_t)(d->w * c) * sizeof(float));
    else
        ks->input_row(tap_dy, tap_w, n, c, fp, d->w, dxrow);
}

/* dx row (img, ih) reads dy rows up to (img, min(ho - 1, (ih + pt) / sh)), and
 * is computed right after that one is spread. The first dx row (counted over
 * the batch) computed after dy row r = img * ho + oh, or later; r <= n * ho. */
static ptrdiff_t first_dx_row_after(const fc_conv2d_desc *d, ptrdiff_t r)
{
    const ptrdiff_t img = r / d->ho, oh = r % d->ho;
    return img * d->h + fc_min(d->h, fc_max(0, oh * d->sh - d->pt));
}

int fc_conv2d_direct_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                  const float *w, float *dx, float *dw, float *db, int n_threads)
{
    const fc_direct_kernel_set *ks = fc_direct_kernels();
    const ptrdiff_t c = d->c, f = d->f, nb = ks->nb, taps = d->kh * d->kw, k = taps * c;
    const ptrdiff_t blocks = fc_ceil_div(f, nb), rows = d->n * d->ho;
    if (rows == 0 || d->wo == 0) { /* dy is empty: every gradient is zero */
        if (dx)
            memset(dx, 0, (size_t)(d->n * d->h * d->w * c) * sizeof(float));
        if (dw)
            memset(dw, 0, (size_t)(k * f) * sizeof(float));
        if (db)
            memset(db, 0, (size_t)f * sizeof(float));
        return FC_OK;
    }
    const double passes = (dx != NULL) + (dw != NULL);
    n_threads = fc_threads_for(fc_conv_macs(d) * passes, FC_GRAIN_DIRECT, n_threads);
    const patch_geometry pg = patch_geometry_of(d);
    const spread_geometry sg = spread_geometry_of(d, nb);
    /* The weight gradient reads dy in place when every block of filters is
     * whole, or half (read one vector a pixel); else its rows zero-padded. */
    const int whole_blocks = f % nb == 0 || f % nb == nb / 2;
    const ptrdiff_t fp = sg.fp, row_floats = sg.width * fp;
    /* Chunks of dy rows. With dw they are its partial sums, fixed by the shape
     * (about FC_WGRAD_CHUNK_ROWS pixels each); dx alone takes runs of rows,
     * several per thread (a spread row serves the next rows of its run). */
    const ptrdiff_t chunks = dw ? fc_max(1, fc_min(fc_min(FC_WGRAD_MAX_CHUNKS, rows),
                                                   fc_ceil_div(rows * d->wo, FC_WGRAD_CHUNK_ROWS)))
                                : fc_min(rows, FC_DIRECT_DX_RUNS_PER_THREAD * n_threads);
    n_threads = (int)fc_max(1, fc_min(n_threads, chunks));
    /* Each chunk's partial: dw as blocks (k x nb each), then db (blocks x nb). */
    const ptrdiff_t part = fc_thread_stride(blocks * nb * (k + 1));
    /* Per thread: the ring of spread dy rows, the images and rows they hold,
     * and dw's patch of x. */
    const ptrdiff_t held_floats = 2 * sg.slots * (ptrdiff_t)(sizeof(ptrdiff_t) / sizeof(float));
    const ptrdiff_t per_thread = fc_thread_stride(sg.slots * row_floats + held_floats
                                                  + (dw ? pg.floats : 0));
    float *wp = dx ? fc_aligned_alloc((size_t)(taps * c * fp) * sizeof(float)) : NULL;
    float *partials = dw ? fc_aligned_alloc((size_t)(chunks * part) * sizeof(float)) : NULL;
    float *scratch = fc_aligned_alloc((size_t)(n_threads * per_thread) * sizeof(float));
    if (!scratch || (dx && !wp) || (dw && !partials)) {
        fc_aligned_free(wp);
        fc_aligned_free(partials);
        fc_aligned_free(scratch);
        return FC_ERR_NOMEM;
    }
    if (dx) /* w with filters zero-padded to fp: tap t's c rows at wp + t * c * fp */
        for (ptrdiff_t r = 0; r < taps * c; ++r)
            for (ptrdiff_t j = 0; j < fp; ++j)
                wp[r * fp + j] = j < f ? w[r * f + j] : 0.0f;
    if (dw)
        memset(partials, 0, (size_t)(chunks * part) * sizeof(float));
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        const fc_fp_state fp_state = fc_fp_enter();
        float *mine = scratch + fc_thread_id() * per_thread;
        const spread_ring ring = {mine, (ptrdiff_t *)(mine + sg.slots * row_floats)};
        float *patch_scratch = mine + sg.slots * row_floats + held_floats;
        for (ptrdiff_t s = 0; s < sg.slots; ++s)
            ring.held[2 * s] = -1;
        FC_OMP(omp for schedule(dynamic) nowait) /* the region's end waits */
        for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
            for (ptrdiff_t r = ci * rows / chunks; r < (ci + 1) * rows / chunks; ++r) {
                const ptrdiff_t img = r / d->ho, oh = r % d->ho;
                if (dw) {
                    /* dy's row from its spread copy, in cache for dx and
                     * zero-padded to whole blocks; else from dy itself. */
                    const float *dyrow = dy + r * d->wo * f;
                    ptrdiff_t lddy = f;
                    if (dx || !whole_blocks) {
                        dyrow = spread_of(d, &sg, dy, img, oh, ring) + (d->kw - 1) * d->dw * fp;
                        lddy = d->sw * fp;
                    }
                    float *acc = partials + ci * part;
                    const float *patch = patch_of(d, &pg, x, img, oh, patch_scratch);
                    /* The chunk's next dy row starts coming from memory while
                     * this one is worked on: the hardware prefetchers stop at
                     * each 4 KiB page, and a row is 3.3 KB in S1 (backward
                     * 0.50 -> 0.46 ms, weight gradient alone 0.295 -> 0.279). */
                    const int more = r + 1 < (ci + 1) * rows / chunks;
                    const char *pf = more ? (const char *)(dy + (r + 1) * d->wo * f) : NULL;
                    for (ptrdiff_t bi = 0; bi < blocks; ++bi)
                        ks->weight_row(patch, pg.step, pg.off, k, dyrow + bi * nb, lddy, d->wo,
                                       acc + bi * nb * k, acc + blocks * nb * k + bi * nb,
                                       bi == 0 ? pf : NULL, f * (ptrdiff_t)sizeof(float),
                                       (int)fc_min(nb, f - bi * nb));
                }
                if (dx)
                    for (ptrdiff_t row = first_dx_row_after(d, r); row < first_dx_row_after(d, r + 1);
                         ++row)
                        input_row_of(d, &sg, ks, dy, wp, row / d->h, row % d->h, ring,
                                     dx + row * d->w * c);
            }
        }
        fc_fp_leave(fp_state);
        fc_team_leave(&team);
    }
    if (dw) { /* dw[t, j] and db[j]: the partials added in chunk order */
        for (ptrdiff_t t = 0; t < k; ++t)
            for (ptrdiff_t j = 0; j < f; ++j)
                dw[t * f + j] = fc_sum_chunks(partials, (j / nb) * nb * k + t * nb + j % nb, chunks,
                                              part);
        if (db)
            for (ptrdiff_t j = 0; j < f; ++j)
                db[j] = fc_sum_chunks(partials, blocks * nb * k + j, chunks, part);
    }
    fc_aligned_free(wp);
    fc_aligned_free(partials);
    fc_aligned_free(scratch);
    return FC_OK;
}
