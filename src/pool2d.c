/* Max and average pooling over NHWC activations, forward and backward.
 *
 * Inner loops run over the contiguous channels, so compilers vectorise them;
 * OpenMP splits the batch and output rows. Padding never produces a read:
 * each window is clipped to the image, which is the same as padding with
 * -inf (max) or leaving padded cells out of the count (average), and every
 * window holds at least one real cell (each side's padding is smaller than
 * the window).
 *
 * Averages multiply by the reciprocal of the count (within an ulp of
 * dividing, and much cheaper).
 *
 * Max pooling's forward can also write where each maximum is (its argmax,
 * one byte per output: fastconv.h), and its backward read that instead of
 * the whole input: a training step's backward then reads a sixteenth of the
 * bytes of x (2x2 windows). Both backward passes send each gradient to the
 * same cell, with the same bits.
 *
 * Backward passes scatter into dx. When windows do not overlap vertically
 * (sh >= kh), each output row owns a band of dx rows, so rows run in
 * parallel; otherwise each image is one unit of work. Either way every dx
 * element is accumulated by one thread in a fixed order. Max pooling with
 * windows that do not overlap at all (the usual 2x2, stride 2) writes each
 * dx cell once instead, with no zeroing pass and no read of dx.
 *
 * Whole windows (no padding in them) with channels in whole vectors, the
 * common case, go to the SIMD path's row kernels (pool2d_simd.h): the max
 * and average forwards (no dropout) at any stride, and max pooling's
 * backward, from x or from the argmax, for windows side by side (stride =
 * window across); they stream an output of at least
 * fc_stream_min_floats() past the cache. The loops here take the rest, and
 * all of it on the portable path. */
#include <stdint.h>
#include <string.h>

#include "fc_internal.h"

/* Pooling is memory-bound and simple enough for the compiler to vectorise
 * (FC_VECTOR_CLONES). The vector width does not change any result: every
 * output sums or compares in the same order. */

/* Channels whose window maxima stay in registers together in the max-pool
 * backward for disjoint windows: one AVX-512 vector (two AVX2 ones). */
#define FC_POOL_LANES 16

/* Channels whose maxima (and their cells) stay in registers together in the
 * max-pool forward: four AVX-512 vectors, as many loads in flight. */
#define FC_POOL_WIDE_LANES 64

/* The most output pixels the max-pool forward takes together: eight of 8
 * channels (four of 16, two of 32), 64 maxima in registers. */
#define FC_POOL_MAX_PIXELS 8

/* Channels taken together by the max-pool backward from x where windows
 * overlap. */
#define FC_POOL_CHANNEL_BLOCK 256

/* Output elements (whole pixels of fewer than 16 channels, but for 8) that
 * the pooling passes take as one flat run: each window cell's values for a
 * run of neighbouring pixels gathered (or, backward, scattered) through a
 * table of offsets, where a loop over so few channels a pixel spent more on
 * itself than on the data (128 x 28 x 28 x 6, 2x2: average 0.31 ms, max
 * 0.69, against 0.13 and 0.09 for as many bytes on 16 channels). */
#define FC_POOL_FLAT_ELEMENTS 64

/* The window of output index o along one axis, clipped to [0, size). */
static inline void window_range(ptrdiff_t o, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t k,
                                ptrdiff_t size, ptrdiff_t *lo, ptrdiff_t *hi)
{
    const ptrdiff_t start = o * stride - pad;
    *lo = fc_max(start, 0);
    *hi = fc_min(start + k, size);
}

/* The window of output pixel (oh, ow), clipped to the image: rows [i0, i1),
 * columns [j0, j1). */
typedef struct {
    ptrdiff_t i0, i1, j0, j1;
} pool_window;

static inline pool_window window_of(const fc_pool2d_desc *d, ptrdiff_t oh, ptrdiff_t ow)
{
    pool_window win;
    window_range(oh, d->sh, d->pt, d->kh, d->h, &win.i0, &win.i1);
    window_range(ow, d->sw, d->pl, d->kw, d->w, &win.j0, &win.j1);
    return win;
}

/* out[e] = in[e] * keep * scale for the `count` output elements from index
 * `at` on (d's dropout: fc_dropout_f32's operations, in its order, so the
 * same bits). */
static inline void dropout_span(const fc_pool2d_desc *d, const float *in, float *out,
                                ptrdiff_t at, ptrdiff_t count)
{
    for (ptrdiff_t e = 0; e < count; ++e)
        out[e] = in[e] * fc_dropout_keep((uint64_t)(at + e), d->dropout_seed,
                                         d->dropout_threshold) * d->dropout_scale;
}

/* Output row oh of image img of dy (wo * c floats): dy's own, or with d's
 * dropout, that dropout's input gradient, computed into scratch. */
static inline const float *dy_row(const fc_pool2d_desc *d, const float *dy, ptrdiff_t img,
                                  ptrdiff_t oh, float *scratch)
{
    const ptrdiff_t at = (img * d->ho + oh) * d->wo * d->c;
    if (!d->dropout)
        return dy + at;
    dropout_span(d, dy + at, scratch, at, d->wo * d->c);
    return scratch;
}

/* The number (fastconv.h's argmax) of cell (ih, iw) in the window whose
 * top-left, padding included, is (top, left): row-major in kh x kw. */
static inline uint32_t cell_number(const fc_pool2d_desc *d, ptrdiff_t top, ptrdiff_t left,
                                   ptrdiff_t ih, ptrdiff_t iw)
{
    return (uint32_t)((ih - top) * d->kw + (iw - left));
}

/* Sixteen channels' words as one vector (GCC's vector extensions), for the
 * backward from the argmax: left to vectorise its loop over bytes and words
 * itself, the compiler split it into 128-bit pieces spilled through the
 * stack (a third slower than reading x at 16 channels). */
typedef uint32_t u32x16 __attribute__((vector_size(64), aligned(4)));

/* Sixteen bytes widened to words, element by element: one vpmovzxbd on
 * AVX-512, where __builtin_convertvector took each byte through a general
 * register (GCC 12). */
static inline __attribute__((always_inline)) void widen_bytes(const uint8_t *a, u32x16 *words)
{
    *words = (u32x16){a[0], a[1], a[2],  a[3],  a[4],  a[5],  a[6],  a[7],
                      a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]};
}

/* mask ? a : b for a mask of all ones or all zeros, as bit operations. */
static inline float select_bits(uint32_t mask, float a, float b)
{
    uint32_t ab, bb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&bb, &b, sizeof bb);
    const uint32_t r = (ab & mask) | (bb & ~mask);
    float out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* Max pooling of channels [0, L) of P output pixels side by side in a row
 * (L and P constants once inlined, so the maxima and their cells stay in
 * registers, but for a last L < 16; P > 1 only for whole windows and
 * L == c, a few narrow pixels together), written to y, and with_argmax to argmax, from element `at` on.
 * Each window's maximum: the first NaN if it holds one (it stays), else the
 * largest cell; then d's dropout. As argmax (fastconv.h), the cell the
 * backward from x picks: that first NaN, or else the first cell that
 * reached the maximum (later equal cells never replace it, -0 and +0
 * included). The window of pixel p is the first's moved p strides right. */
static inline __attribute__((always_inline)) void
window_max(const int L, const int P, const int with_argmax, const fc_pool2d_desc *d,
                  const float *xi, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1,
                  ptrdiff_t top, ptrdiff_t left, ptrdiff_t at, float *y, uint8_t *argmax)
{
    const ptrdiff_t c = d->c, step = d->sw * c;
    float best[FC_POOL_MAX_PIXELS][FC_POOL_WIDE_LANES];
    uint32_t cell[FC_POOL_MAX_PIXELS][FC_POOL_WIDE_LANES];
    const float *first = xi + (i0 * d->w + j0) * c;
    const uint32_t first_number = cell_number(d, top, left, i0, j0);
    for (int p = 0; p < P; ++p) {
        FC_OMP(omp simd)
        for (int l = 0; l < L; ++l) {
            best[p][l] = first[p * step + l];
            cell[p][l] = first_number;
        }
    }
    for (ptrdiff_t ih = i0; ih < i1; ++ih)
        for (ptrdiff_t iw = (ih == i0 ? j0 + 1 : j0); iw < j1; ++iw) {
            const uint32_t number = cell_number(d, top, left, ih, iw);
            const float *v = xi + (ih * d->w + iw) * c;
            for (int p = 0; p < P; ++p) {
                FC_OMP(omp simd)
                for (int l = 0; l < L; ++l) {
                    const float x = v[p * step + l];
                    const int take = !(x <= best[p][l]) & (best[p][l] == best[p][l]);
                    /* Masks, not `take ? x : best`, which GCC compiled to
                     * branches (on whether any lane takes; in scalar code, on
                     * each): mispredicted at random on ReLU outputs. */
                    const uint32_t mask = -(uint32_t)take;
                    if (with_argmax)
                        cell[p][l] = (cell[p][l] & ~mask) | (number & mask);
                    best[p][l] = select_bits(mask, x, best[p][l]);
                }
            }
        }
    for (int p = 0; p < P; ++p) {
        const ptrdiff_t out = at + p * c;
        if (with_argmax) {
            FC_OMP(omp simd)
            for (int l = 0; l < L; ++l)
                cell[p][l] |= best[p][l] > 0.0f ? FC_POOL_POSITIVE : 0u;
            FC_OMP(omp simd)
            for (int l = 0; l < L; ++l)
                argmax[out + l] = (uint8_t)cell[p][l];
        }
        if (d->dropout) { /* from the registers: no second pass over y */
            dropout_span(d, best[p], y + out, out, L);
        } else {
            FC_OMP(omp simd)
            for (int l = 0; l < L; ++l)
                y[out + l] = best[p][l];
        }
    }
}

/* Whether the passes take pixels of c channels as flat runs (average
 * pooling's backward only below 8 channels). */
static inline int flat_channels(ptrdiff_t c)
{
    return c < 16 && c != 8;
}

/* How many output pixels from ow on have whole windows (no padding in
 * them) in a row whose windows cover rows [i0, i1): 0 where those rows or
 * the first window are not whole. */
static inline ptrdiff_t whole_windows(const fc_pool2d_desc *d, ptrdiff_t ow, ptrdiff_t i0,
                                      ptrdiff_t i1)
{
    const ptrdiff_t left = ow * d->sw - d->pl;
    if (i1 - i0 != d->kh || left < 0 || left + d->kw > d->w)
        return 0;
    return fc_min((d->w - left - d->kw) / d->sw + 1, d->wo - ow);
}

/* How many output pixels, from ow on, form a flat run: at most
 * FC_POOL_FLAT_ELEMENTS / c, all with whole windows. */
static inline ptrdiff_t flat_pixels(const fc_pool2d_desc *d, ptrdiff_t ow, ptrdiff_t i0,
                                    ptrdiff_t i1)
{
    return fc_min(FC_POOL_FLAT_ELEMENTS / d->c, whole_windows(d, ow, i0, i1));
}

/* The SIMD path's row kernels where they take d's whole windows (channels
 * in whole vectors; for the backward passes, side_by_side: stride = window
 * across), else NULL. */
static const fc_pool_kernel_set *row_kernels(const fc_pool2d_desc *d, int side_by_side)
{
    const fc_pool_kernel_set *ks = !side_by_side || d->sw == d->kw ? fc_pool_kernels() : NULL;
    return ks && d->c % ks->vw == 0 ? ks : NULL;
}

/* Whether those kernels stream an output of `floats` floats at p past the
 * cache: one of at least fc_stream_min_floats(), each line written whole
 * (a plain store would read it first), aligned as they need. */
static int streams(const fc_pool_kernel_set *ks, const float *p, double floats)
{
    return ks && floats >= (double)fc_stream_min_floats()
           && (uintptr_t)p % ((size_t)ks->vw * sizeof(float)) == 0;
}

/* idx[e]: where element e of a flat run (pixel e / c, channel e % c) lies
 * from its first pixel's window, in the same cell of its own window. */
static void flat_offsets(const fc_pool2d_desc *d, int32_t *idx)
{
    const ptrdiff_t c = d->c, per = FC_POOL_FLAT_ELEMENTS / c * c;
    for (ptrdiff_t e = 0; e < per; ++e)
        idx[e] = (int32_t)(e / c * d->sw * c + e % c);
}

/* A flat run of `count` output elements from element `at` on, the windows'
 * first cell at `first` (rows d->w * c floats apart): max pooling (the
 * maxima, their cells with with_argmax, as window_max) or, not is_max, the
 * average (as avg_forward_row: the cells summed in the same order, then
 * scaled); then d's dropout. */
static inline __attribute__((always_inline)) void
flat_run(const int is_max, const int with_argmax, const fc_pool2d_desc *d, const int32_t *idx,
         const float *first, ptrdiff_t count, ptrdiff_t at, float *y, uint8_t *argmax)
{
    float best[FC_POOL_FLAT_ELEMENTS];
    uint32_t cell[FC_POOL_FLAT_ELEMENTS];
    FC_OMP(omp simd)
    for (ptrdiff_t e = 0; e < count; ++e) {
        best[e] = first[idx[e]];
        cell[e] = 0;
    }
    for (ptrdiff_t i = 0; i < d->kh; ++i)
        for (ptrdiff_t j = (i == 0); j < d->kw; ++j) {
            const uint32_t number = (uint32_t)(i * d->kw + j);
            const float *v = first + (i * d->w + j) * d->c;
            if (is_max) {
                FC_OMP(omp simd)
                for (ptrdiff_t e = 0; e < count; ++e) {
                    const float x = v[idx[e]];
                    const int take = !(x <= best[e]) & (best[e] == best[e]);
                    const uint32_t mask = -(uint32_t)take;
                    if (with_argmax)
                        cell[e] = (cell[e] & ~mask) | (number & mask);
                    best[e] = select_bits(mask, x, best[e]);
                }
            } else {
                FC_OMP(omp simd)
                for (ptrdiff_t e = 0; e < count; ++e)
                    best[e] += v[idx[e]];
            }
        }
    if (!is_max) {
        const float scale = 1.0f / (float)(d->kh * d->kw);
        FC_OMP(omp simd)
        for (ptrdiff_t e = 0; e < count; ++e)
            best[e] *= scale;
    }
    if (with_argmax) {
        FC_OMP(omp simd)
        for (ptrdiff_t e = 0; e < count; ++e)
            argmax[at + e] = (uint8_t)(cell[e] | (best[e] > 0.0f ? FC_POOL_POSITIVE : 0u));
    }
    if (d->dropout) {
        dropout_span(d, best, y + at, at, count);
    } else {
        FC_OMP(omp simd)
        for (ptrdiff_t e = 0; e < count; ++e)
            y[at + e] = best[e];
    }
}

/* Output row oh of a max pool of the image at xi, and its argmax
 * (with_argmax, a constant once inlined), written as row `row` of y and
 * argmax counted over the batch (whose number also keys d's dropout); with
 * ks (row_kernels, no dropout), whole windows by its kernel (streaming with
 * `stream`), else with idx (flat_offsets) in flat runs. */
static inline __attribute__((always_inline)) void
max_forward_row(const int with_argmax, const fc_pool2d_desc *d, const int32_t *idx,
                const fc_pool_kernel_set *ks, int stream, const float *xi, ptrdiff_t oh,
                ptrdiff_t row, float *y, uint8_t *argmax)
{
    const ptrdiff_t c = d->c;
    ptrdiff_t i0, i1;
    window_range(oh, d->sh, d->pt, d->kh, d->h, &i0, &i1);
    /* Pixels of 8, 16 or 32 channels: 8, 4 or 2 of them at once where their
     * windows are whole (no padding in them), or the pixel's work would be
     * mostly its loop overhead. */
    const ptrdiff_t pixels = c == 8 ? 8 : c == 16 ? 4 : c == 32 ? 2 : 1;
    for (ptrdiff_t ow = 0; ow < d->wo;) {
        ptrdiff_t j0, j1;
        window_range(ow, d->sw, d->pl, d->kw, d->w, &j0, &j1);
        const ptrdiff_t top = oh * d->sh - d->pt, left = ow * d->sw - d->pl;
        const ptrdiff_t at = (row * d->wo + ow) * c;
        const ptrdiff_t whole = ks ? whole_windows(d, ow, i0, i1) : 0;
        if (whole > 0) {
            ks->max_forward(xi + (i0 * d->w + left) * c, y + at, with_argmax ? argmax + at : NULL,
                            whole, d->kh, d->kw, d->sw, d->w, c, stream);
            ow += whole;
            continue;
        }
        const ptrdiff_t run = idx ? flat_pixels(d, ow, i0, i1) : 0;
        if (run > 0) {
            flat_run(1, with_argmax, d, idx, xi + (i0 * d->w + left) * c, run * c, at, y, argmax);
            ow += run;
            continue;
        }
#define FC_WINDOW_MAX(L, P, ch)                                                                  \
    window_max(L, P, with_argmax, d, xi + (ch), i0, i1, j0, j1, top, left, at + (ch), y, argmax)
        if (pixels > 1 && left >= 0 && left + (pixels - 1) * d->sw + d->kw <= d->w
            && ow + pixels <= d->wo) {
            if (c == 8)
                FC_WINDOW_MAX(8, 8, 0);
            else if (c == 16)
                FC_WINDOW_MAX(16, 4, 0);
            else
                FC_WINDOW_MAX(32, 2, 0);
            ow += pixels;
            continue;
        }
        /* Blocks of 64 channels, then of 32, 16 and 8 as they fit
         * (constants, in registers), then the last c % 8 (a loop with a
         * mask or a remainder). */
        ptrdiff_t ch = 0;
        for (; ch + FC_POOL_WIDE_LANES <= c; ch += FC_POOL_WIDE_LANES)
            FC_WINDOW_MAX(FC_POOL_WIDE_LANES, 1, ch);
        if (ch + 32 <= c) {
            FC_WINDOW_MAX(32, 1, ch);
            ch += 32;
        }
        if (ch + 16 <= c) {
            FC_WINDOW_MAX(16, 1, ch);
            ch += 16;
        }
        if (ch + 8 <= c) {
            FC_WINDOW_MAX(8, 1, ch);
            ch += 8;
        }
        if (ch < c)
            FC_WINDOW_MAX((int)(c - ch), 1, ch);
#undef FC_WINDOW_MAX
        ++ow;
    }
}

/* Output row `row` (counted over the batch) of an average pool: each
 * output pixel sums its window's cells, then scales; ks, stream and idx as
 * max_forward_row's. */
static inline __attribute__((always_inline)) void
avg_forward_row(const fc_pool2d_desc *d, const int32_t *idx, const fc_pool_kernel_set *ks,
                int stream, const float *x, float *y, ptrdiff_t row)
{
    const ptrdiff_t c = d->c, img = row / d->ho, oh = row - img * d->ho;
    ptrdiff_t i0, i1;
    window_range(oh, d->sh, d->pt, d->kh, d->h, &i0, &i1);
    const float *xi = x + img * d->h * d->w * c;
    for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
        const ptrdiff_t whole = ks ? whole_windows(d, ow, i0, i1) : 0;
        if (whole > 0) {
            ks->avg_forward(xi + (i0 * d->w + ow * d->sw - d->pl) * c, y + (row * d->wo + ow) * c,
                            whole, d->kh, d->kw, d->sw, d->w, c, stream);
            ow += whole - 1;
            continue;
        }
        const ptrdiff_t run = idx ? flat_pixels(d, ow, i0, i1) : 0;
        if (run > 0) {
            flat_run(0, 0, d, idx, xi + (i0 * d->w + ow * d->sw - d->pl) * c, run * c,
                     (row * d->wo + ow) * c, y, NULL);
            ow += run - 1;
            continue;
        }
        ptrdiff_t j0, j1;
        window_range(ow, d->sw, d->pl, d->kw, d->w, &j0, &j1);
        float *out = y + (row * d->wo + ow) * c;
        const float *v0 = xi + (i0 * d->w + j0) * c;
        for (ptrdiff_t ch = 0; ch < c; ++ch)
            out[ch] = v0[ch];
        for (ptrdiff_t ih = i0; ih < i1; ++ih)
            for (ptrdiff_t iw = (ih == i0 ? j0 + 1 : j0); iw < j1; ++iw) {
                const float *v = xi + (ih * d->w + iw) * c;
                for (ptrdiff_t ch = 0; ch < c; ++ch)
                    out[ch] += v[ch];
            }
        const float scale = 1.0f / (float)((i1 - i0) * (j1 - j0));
        for (ptrdiff_t ch = 0; ch < c; ++ch)
            out[ch] *= scale;
        if (d->dropout)
            dropout_span(d, out, out, (row * d->wo + ow) * c, c);
    }
}

/* The forward pass, output rows shared out statically. (Cloned itself: the
 * OpenMP region is outlined from the function it is written in.) */
static FC_VECTOR_CLONES int pool_forward(int is_max, const fc_pool2d_desc *d, const float *x,
                                         float *y, uint8_t *argmax, int n_threads)
{
    const double work = (double)d->n * d->ho * d->wo * d->c * d->kh * d->kw;
    n_threads = fc_threads_for(work, FC_GRAIN_ELEMENTS, n_threads);
    if (d->c == 0) /* empty output: its pointers may be NULL, even for memcpy */
        return FC_OK;
    const ptrdiff_t rows = d->n * d->ho;
    int32_t offsets[FC_POOL_FLAT_ELEMENTS];
    const int32_t *idx = NULL;
    if (flat_channels(d->c)) {
        flat_offsets(d, offsets);
        idx = offsets;
    }
    const fc_pool_kernel_set *ks = d->dropout ? NULL : row_kernels(d, 0);
    const int stream = streams(ks, y, (double)rows * d->wo * d->c);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t row = 0; row < rows; ++row) {
            const ptrdiff_t img = row / d->ho, oh = row - img * d->ho;
            const float *xi = x + img * d->h * d->w * d->c;
            if (argmax)
                max_forward_row(1, d, idx, ks, stream, xi, oh, row, y, argmax);
            else if (is_max)
                max_forward_row(0, d, idx, ks, stream, xi, oh, row, y, NULL);
            else
                avg_forward_row(d, idx, ks, stream, x, y, row);
        }
        if (stream)
            fc_store_fence();
        fc_team_leave(&team);
    }
    return FC_OK;
}

FC_VECTOR_CLONES void fc_max_pool2d_row(const fc_pool2d_desc *d, const float *xi, ptrdiff_t oh,
                                        ptrdiff_t row, float *y, uint8_t *argmax)
{
    /* A row at a time for the fused convolution: no flat runs, whose
     * offsets would be computed again for each row, nor streaming stores. */
    const fc_pool_kernel_set *ks = d->dropout ? NULL : row_kernels(d, 0);
    if (argmax)
        max_forward_row(1, d, NULL, ks, 0, xi, oh, row, y, argmax);
    else
        max_forward_row(0, d, NULL, ks, 0, xi, oh, row, y, NULL);
}

int fc_max_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x, float *y, int n_threads)
{
    return pool_forward(1, d, x, y, NULL, n_threads);
}

int fc_max_pool2d_forward_argmax_f32(const fc_pool2d_desc *d, const float *x, float *y,
                                     uint8_t *argmax, int n_threads)
{
    if (d->kh * d->kw > FC_POOL_ARGMAX_MAX_CELLS)
        return FC_ERR_UNSUPPORTED;
    return pool_forward(1, d, x, y, argmax, n_threads);
}

int fc_avg_pool2d_forward_f32(const fc_pool2d_desc *d, const float *x, float *y, int n_threads)
{
    return pool_forward(0, d, x, y, NULL, n_threads);
}

/* One unit of backward work: zero dx rows [r0, r1) of image img, then
 * scatter the gradients of output rows [oh0, oh1), whose windows lie in
 * those rows. */
typedef struct {
    ptrdiff_t img, r0, r1, oh0, oh1;
} pool_band;

static ptrdiff_t band_count(const fc_pool2d_desc *d, int *row_bands)
{
    *row_bands = d->sh >= d->kh;
    return *row_bands ? d->n * d->ho : d->n;
}

static pool_band band_of(const fc_pool2d_desc *d, int row_bands, ptrdiff_t u)
{
    pool_band b;
    if (!row_bands) {
        b.img = u;
        b.r0 = 0;
        b.r1 = d->h;
        b.oh0 = 0;
        b.oh1 = d->ho;
        return b;
    }
    b.img = u / d->ho;
    b.oh0 = u - b.img * d->ho;
    b.oh1 = b.oh0 + 1;
    b.r0 = b.oh0 == 0 ? 0 : fc_min(fc_max(b.oh0 * d->sh - d->pt, 0), d->h);
    b.r1 = b.oh1 == d->ho ? d->h : fc_min(fc_max(b.oh1 * d->sh - d->pt, 0), d->h);
    return b;
}

static void zero_rows(const fc_pool2d_desc *d, const pool_band *b, float *dx)
{
    float *start = dx + ((b->img * d->h + b->r0) * d->w) * d->c;
    memset(start, 0, (size_t)((b->r1 - b->r0) * d->w * d->c) * sizeof(float));
}

/* Gradient of one window [i0, i1) x [j0, j1) for channels [ch, ch + L) (L a
 * constant once inlined, so best and taken live in registers, but for the
 * last c % 16 channels): the first cell
 * holding the window's maximum (by bits, so also the first NaN) gets dy, the
 * others zero. Overwrites those dx cells. */
static inline __attribute__((always_inline)) void
window_gradient(const int L, const fc_pool2d_desc *d, const float *xi, ptrdiff_t i0, ptrdiff_t i1,
                ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t ch, const float *g, float *dxi)
{
    const ptrdiff_t c = d->c;
    float best[FC_POOL_LANES];
    uint32_t taken[FC_POOL_LANES], bits[FC_POOL_LANES], grad[FC_POOL_LANES];
    const float *first = xi + (i0 * d->w + j0) * c + ch;
    FC_OMP(omp simd)
    for (int l = 0; l < L; ++l)
        best[l] = first[l];
    for (ptrdiff_t ih = i0; ih < i1; ++ih)
        for (ptrdiff_t iw = (ih == i0 ? j0 + 1 : j0); iw < j1; ++iw) {
            const float *v = xi + (ih * d->w + iw) * c + ch;
            FC_OMP(omp simd)
            for (int l = 0; l < L; ++l) /* the first NaN stays */
                best[l] = select_bits(-(uint32_t)(!(v[l] <= best[l]) & (best[l] == best[l])),
                                      v[l], best[l]);
        }
    memcpy(bits, best, (size_t)L * sizeof *bits);
    const fc_u32_alias *gb = (const fc_u32_alias *)(g + ch);
    FC_OMP(omp simd)
    for (int l = 0; l < L; ++l) {
        /* Through a ReLU below, a maximum that is not positive passes nothing. */
        grad[l] = gb[l] & (d->relu ? -(uint32_t)(best[l] > 0.0f) : ~(uint32_t)0);
        taken[l] = 0;
    }
    for (ptrdiff_t ih = i0; ih < i1; ++ih)
        for (ptrdiff_t iw = j0; iw < j1; ++iw) {
            const fc_u32_alias *vb = (const fc_u32_alias *)(xi + (ih * d->w + iw) * c + ch);
            fc_u32_alias *o = (fc_u32_alias *)(dxi + (ih * d->w + iw) * c + ch);
            FC_OMP(omp simd)
            for (int l = 0; l < L; ++l) {
                const uint32_t hit = ~taken[l] & -(uint32_t)(vb[l] == bits[l]);
                o[l] = grad[l] & hit;
                taken[l] |= hit;
            }
        }
}

/* window_gradient from the forward's argmax (a, the window's c of them)
 * rather than from x, for channels [ch, ch + 16 V): the same cells, the
 * same bits. */
static inline __attribute__((always_inline)) void
window_gradient_argmax(const int V, const fc_pool2d_desc *d, const uint8_t *a, ptrdiff_t i0,
                       ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t top, ptrdiff_t left,
                       ptrdiff_t ch, const float *g, float *dxi)
{
    const ptrdiff_t c = d->c;
    u32x16 grad[4], cell[4];
    for (int v = 0; v < V; ++v) {
        u32x16 code;
        widen_bytes(a + ch + 16 * v, &code);
        /* Through a ReLU below, a maximum that is not positive passes nothing. */
        const u32x16 pass = d->relu ? -(code >> 7) : ~(u32x16){0};
        grad[v] = *(const u32x16 *)(g + ch + 16 * v) & pass;
        cell[v] = code & ~FC_POOL_POSITIVE;
    }
    for (ptrdiff_t ih = i0; ih < i1; ++ih)
        for (ptrdiff_t iw = j0; iw < j1; ++iw) {
            const uint32_t number = cell_number(d, top, left, ih, iw);
            float *o = dxi + (ih * d->w + iw) * c + ch;
            for (int v = 0; v < V; ++v)
                *(u32x16 *)(o + 16 * v) = grad[v] & (u32x16)(cell[v] == number);
        }
}

/* The same for L < 16 channels (8, or the last c % 8, not a constant: a
 * loop the compiler vectorises with a mask or a remainder). */
static inline __attribute__((always_inline)) void
window_gradient_argmax_rest(ptrdiff_t L, const fc_pool2d_desc *d, const uint8_t *a, ptrdiff_t i0,
                            ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t top,
                            ptrdiff_t left, ptrdiff_t ch, const float *g, float *dxi)
{
    const uint32_t keep_all = d->relu ? 0u : ~(uint32_t)0;
    const fc_u32_alias *gb = (const fc_u32_alias *)(g + ch);
    a += ch;
    for (ptrdiff_t ih = i0; ih < i1; ++ih)
        for (ptrdiff_t iw = j0; iw < j1; ++iw) {
            const uint32_t number = cell_number(d, top, left, ih, iw);
            fc_u32_alias *o = (fc_u32_alias *)(dxi + (ih * d->w + iw) * d->c + ch);
            FC_OMP(omp simd)
            for (ptrdiff_t l = 0; l < L; ++l) {
                const uint32_t code = a[l];
                const uint32_t pass = keep_all | -(code >> 7);
                o[l] = gb[l] & pass & -(uint32_t)((code & ~FC_POOL_POSITIVE) == number);
            }
        }
}

/* dx columns [j0, j1) of rows [i0, i1) of one image set to zero. */
static void zero_columns(const fc_pool2d_desc *d, float *dxi, ptrdiff_t i0, ptrdiff_t i1,
                         ptrdiff_t j0, ptrdiff_t j1)
{
    if (j1 > j0)
        for (ptrdiff_t ih = i0; ih < i1; ++ih)
            memset(dxi + (ih * d->w + j0) * d->c, 0, (size_t)((j1 - j0) * d->c) * sizeof(float));
}

/* The backward from the argmax of a flat run of `count` values (as the
 * forward's flat_run; windows side by side, no gaps): each cell of each
 * window takes its gradient (or zero), as window_gradient_argmax_rest, the
 * run's first window's top-left cell at dst. */
static inline __attribute__((always_inline)) void
flat_gradient_argmax(const fc_pool2d_desc *d, const int32_t *idx, const uint8_t *a,
                     const float *g, ptrdiff_t count, float *dst)
{
    const uint32_t keep_all = d->relu ? 0u : ~(uint32_t)0;
    const fc_u32_alias *gb = (const fc_u32_alias *)g;
    uint32_t grad[FC_POOL_FLAT_ELEMENTS], cell[FC_POOL_FLAT_ELEMENTS];
    FC_OMP(omp simd)
    for (ptrdiff_t e = 0; e < count; ++e) {
        const uint32_t code = a[e];
        grad[e] = gb[e] & (keep_all | -(code >> 7));
        cell[e] = code & ~FC_POOL_POSITIVE;
    }
    for (ptrdiff_t i = 0; i < d->kh; ++i)
        for (ptrdiff_t j = 0; j < d->kw; ++j) {
            const uint32_t number = (uint32_t)(i * d->kw + j);
            fc_u32_alias *o = (fc_u32_alias *)(dst + (i * d->w + j) * d->c);
            FC_OMP(omp simd)
            for (ptrdiff_t e = 0; e < count; ++e)
                o[idx[e]] = grad[e] & -(uint32_t)(cell[e] == number);
        }
}

/* Max-pool backward of output row oh of one image, when windows do not
 * overlap (strides at least the window): every dx cell of the row's band
 * [r0, r1) lies in at most one window, so each is written once, with no
 * zeroing pass before and no read of dx; cells outside every window get
 * zero. ks (or NULL): the SIMD path's row kernels take the whole windows,
 * streaming with `stream`. */
static inline __attribute__((always_inline)) void
max_backward_disjoint(const fc_pool2d_desc *d, const int32_t *idx, const float *xi,
                      const uint8_t *argmax_row, const float *dy_row, float *dxi, ptrdiff_t oh,
                      ptrdiff_t r0, ptrdiff_t r1, const fc_pool_kernel_set *ks, int stream)
{
    const ptrdiff_t c = d->c;
    ptrdiff_t i0, i1;
    window_range(oh, d->sh, d->pt, d->kh, d->h, &i0, &i1);
    zero_columns(d, dxi, r0, i0, 0, d->w);
    zero_columns(d, dxi, i1, r1, 0, d->w);
    ptrdiff_t covered = 0; /* columns before this are written */
    for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
        ptrdiff_t j0, j1;
        window_range(ow, d->sw, d->pl, d->kw, d->w, &j0, &j1);
        zero_columns(d, dxi, i0, i1, covered, j0);
        const ptrdiff_t whole = ks ? whole_windows(d, ow, i0, i1) : 0;
        if (whole > 0) {
            float *first = dxi + (i0 * d->w + j0) * c;
            if (argmax_row)
                ks->max_backward_argmax(argmax_row + ow * c, dy_row + ow * c, first, whole,
                                        d->kh, d->kw, d->w, c, d->relu, stream);
            else
                ks->max_backward(xi + (i0 * d->w + j0) * c, dy_row + ow * c, first, whole,
                                 d->kh, d->kw, d->w, c, d->relu, stream);
            covered = j0 + whole * d->kw;
            ow += whole - 1;
            continue;
        }
        /* From the argmax, windows side by side: flat runs (see flat_run). */
        const ptrdiff_t run = idx && argmax_row && d->sw == d->kw ? flat_pixels(d, ow, i0, i1) : 0;
        if (run > 0) {
            flat_gradient_argmax(d, idx, argmax_row + ow * c, dy_row + ow * c, run * c,
                                 dxi + (i0 * d->w + j0) * c);
            covered = j0 + run * d->kw;
            ow += run - 1;
            continue;
        }
        covered = fc_max(covered, j1);
        const float *g = dy_row + ow * c;
        ptrdiff_t ch = 0;
        if (argmax_row) {
            const uint8_t *a = argmax_row + ow * c;
            const ptrdiff_t top = oh * d->sh - d->pt, left = ow * d->sw - d->pl;
            /* Blocks of four vectors (four stores in flight), then of two and
             * one as they fit, then 8 channels and the last c % 8 (constants
             * but for those last). */
            for (; ch + 64 <= c; ch += 64)
                window_gradient_argmax(4, d, a, i0, i1, j0, j1, top, left, ch, g, dxi);
            if (ch + 32 <= c) {
                window_gradient_argmax(2, d, a, i0, i1, j0, j1, top, left, ch, g, dxi);
                ch += 32;
            }
            if (ch + 16 <= c) {
                window_gradient_argmax(1, d, a, i0, i1, j0, j1, top, left, ch, g, dxi);
                ch += 16;
            }
            if (ch + 8 <= c) {
                window_gradient_argmax_rest(8, d, a, i0, i1, j0, j1, top, left, ch, g, dxi);
                ch += 8;
            }
            if (ch < c)
                window_gradient_argmax_rest(c - ch, d, a, i0, i1, j0, j1, top, left, ch, g, dxi);
        } else {
            for (; ch + FC_POOL_LANES <= c; ch += FC_POOL_LANES)
                window_gradient(FC_POOL_LANES, d, xi, i0, i1, j0, j1, ch, g, dxi);
            if (ch < c) /* the last c % 16 channels, their count not a constant */
                window_gradient((int)(c - ch), d, xi, i0, i1, j0, j1, ch, g, dxi);
        }
    }
    zero_columns(d, dxi, i0, i1, covered, d->w);
}

/* The windows of unit b from the forward's argmax, where windows may
 * overlap: each window adds its gradient (or zero) to every cell, in the
 * order and with the bits of max_backward_band's search of x. */
static inline __attribute__((always_inline)) void
max_backward_overlapping_argmax(const fc_pool2d_desc *d, const uint8_t *argmax, const float *dy,
                                float *dxi, const pool_band *b, float *scratch)
{
    const ptrdiff_t c = d->c;
    for (ptrdiff_t oh = b->oh0; oh < b->oh1; ++oh) {
        const float *dyr = dy_row(d, dy, b->img, oh, scratch);
        for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
            const pool_window win = window_of(d, oh, ow);
            const ptrdiff_t top = oh * d->sh - d->pt, left = ow * d->sw - d->pl;
            const uint8_t *a = argmax + ((b->img * d->ho + oh) * d->wo + ow) * c;
            const fc_u32_alias *gb = (const fc_u32_alias *)(dyr + ow * c);
            for (ptrdiff_t ih = win.i0; ih < win.i1; ++ih)
                for (ptrdiff_t iw = win.j0; iw < win.j1; ++iw) {
                    const uint32_t number = cell_number(d, top, left, ih, iw);
                    float *o = dxi + (ih * d->w + iw) * c;
                    for (ptrdiff_t ch = 0; ch < c; ++ch) {
                        const uint32_t pass = d->relu ? -(uint32_t)(a[ch] >> 7) : ~(uint32_t)0;
                        const uint32_t hit = -(uint32_t)((a[ch] & ~FC_POOL_POSITIVE) == number);
                        const uint32_t add_bits = gb[ch] & pass & hit;
                        float add;
                        memcpy(&add, &add_bits, sizeof add);
                        o[ch] += add;
                    }
                }
        }
    }
}

/* Unit b of max pooling's backward (row_bands: b is a band of rows); from
 * the forward's argmax where it is not NULL, else from x (ks and stream as
 * max_backward_disjoint's). */
static inline __attribute__((always_inline)) void
max_backward_band(const fc_pool2d_desc *d, const int32_t *idx, const float *x,
                  const uint8_t *argmax, const float *dy, float *dx, const pool_band *b,
                  int row_bands, float *scratch, const fc_pool_kernel_set *ks, int stream)
{
    const ptrdiff_t c = d->c;
    const float *xi = argmax ? NULL : x + b->img * d->h * d->w * c;
    float *dxi = dx + b->img * d->h * d->w * c;
    if (row_bands && d->sw >= d->kw) {
        const uint8_t *argmax_row =
            argmax ? argmax + (b->img * d->ho + b->oh0) * d->wo * c : NULL;
        max_backward_disjoint(d, idx, xi, argmax_row, dy_row(d, dy, b->img, b->oh0, scratch),
                              dxi, b->oh0, b->r0, b->r1, ks, stream);
        return;
    }
    zero_rows(d, b, dx);
    if (argmax) {
        max_backward_overlapping_argmax(d, argmax, dy, dxi, b, scratch);
        return;
    }
    /* Per channel: the window maximum, and whether a cell has taken the
     * gradient yet (all ones once taken). */
    float best[FC_POOL_CHANNEL_BLOCK];
    uint32_t taken[FC_POOL_CHANNEL_BLOCK], grad[FC_POOL_CHANNEL_BLOCK];
    for (ptrdiff_t oh = b->oh0; oh < b->oh1; ++oh) {
        const float *dyr = dy_row(d, dy, b->img, oh, scratch);
        for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
            const pool_window win = window_of(d, oh, ow);
            const ptrdiff_t i0 = win.i0, i1 = win.i1, j0 = win.j0, j1 = win.j1;
            const float *g = dyr + ow * c;
            for (ptrdiff_t c0 = 0; c0 < c; c0 += FC_POOL_CHANNEL_BLOCK) {
                const ptrdiff_t cb = fc_min(FC_POOL_CHANNEL_BLOCK, c - c0);
                const float *first = xi + (i0 * d->w + j0) * c + c0;
                for (ptrdiff_t ch = 0; ch < cb; ++ch) {
                    best[ch] = first[ch];
                    taken[ch] = 0;
                }
                for (ptrdiff_t ih = i0; ih < i1; ++ih)
                    for (ptrdiff_t iw = (ih == i0 ? j0 + 1 : j0); iw < j1; ++iw) {
                        const float *v = xi + (ih * d->w + iw) * c + c0;
                        for (ptrdiff_t ch = 0; ch < cb; ++ch) { /* the first NaN stays */
                            const float xv = v[ch];
                            best[ch] = ((xv > best[ch]) | ((xv != xv) & (best[ch] == best[ch])))
                                           ? xv
                                           : best[ch];
                        }
                    }
                const fc_u32_alias *gb = (const fc_u32_alias *)(g + c0);
                for (ptrdiff_t ch = 0; ch < cb; ++ch) /* through a ReLU: see window_gradient */
                    grad[ch] = gb[ch] & (d->relu ? -(uint32_t)(best[ch] > 0.0f) : ~(uint32_t)0);
                /* best holds the bits of the first cell that reached the
                 * maximum (later equal cells never replace it), so the
                 * first cell with the same bits takes dy; that also picks
                 * the first NaN. Integer masks keep the loop vectorised. */
                const fc_u32_alias *bb = (const fc_u32_alias *)best;
                for (ptrdiff_t ih = i0; ih < i1; ++ih)
                    for (ptrdiff_t iw = j0; iw < j1; ++iw) {
                        const fc_u32_alias *vb = (const fc_u32_alias *)(xi + (ih * d->w + iw) * c + c0);
                        float *o = dxi + (ih * d->w + iw) * c + c0;
                        for (ptrdiff_t ch = 0; ch < cb; ++ch) {
                            const uint32_t hit = ~taken[ch] & -(uint32_t)(vb[ch] == bb[ch]);
                            const uint32_t add_bits = grad[ch] & hit;
                            float add;
                            memcpy(&add, &add_bits, sizeof add);
                            o[ch] += add;
                            taken[ch] |= hit;
                        }
                    }
            }
        }
    }
}

/* Average pooling's backward of output row oh of one image, when windows do
 * not overlap (as max_backward_disjoint): each cell written once, 0 + dy *
 * scale (the sum the zeroing pass's cell would take, so the same bits), the
 * cells outside every window zero. The window's rows are all the same: the
 * first is computed, the others copied from it; then, with d->relu,
 * fc_relu_backward_f32's select against x, a whole row at a time. */
static inline __attribute__((always_inline)) void
avg_backward_disjoint(const fc_pool2d_desc *d, const int32_t *idx, const float *xi,
                      const float *dy_row, float *dxi, ptrdiff_t oh, ptrdiff_t r0, ptrdiff_t r1)
{
    const ptrdiff_t c = d->c, row_floats = d->w * c;
    ptrdiff_t i0, i1;
    window_range(oh, d->sh, d->pt, d->kh, d->h, &i0, &i1);
    zero_columns(d, dxi, r0, i0, 0, d->w);
    zero_columns(d, dxi, i1, r1, 0, d->w);
    float *first = dxi + i0 * row_floats;
    ptrdiff_t covered = 0; /* columns before this are written */
    for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
        ptrdiff_t j0, j1;
        window_range(ow, d->sw, d->pl, d->kw, d->w, &j0, &j1);
        zero_columns(d, dxi, i0, i0 + 1, covered, j0);
        /* Windows side by side, fewer than 8 channels: flat runs (see
         * flat_run; with 12 channels their scattered stores took 5-7 % more
         * than the loop over channels). */
        const ptrdiff_t run = idx && c < 8 && d->sw == d->kw ? flat_pixels(d, ow, i0, i1) : 0;
        if (run > 0) {
            const float scale = 1.0f / (float)(d->kh * d->kw), *g = dy_row + ow * c;
            for (ptrdiff_t j = 0; j < d->kw; ++j) {
                float *o = first + (j0 + j) * c;
                FC_OMP(omp simd)
                for (ptrdiff_t e = 0; e < run * c; ++e)
                    o[idx[e]] = 0.0f + g[e] * scale;
            }
            covered = j0 + run * d->kw;
            ow += run - 1;
            continue;
        }
        covered = fc_max(covered, j1);
        const float *g = dy_row + ow * c;
        const float scale = 1.0f / (float)((i1 - i0) * (j1 - j0));
        for (ptrdiff_t iw = j0; iw < j1; ++iw) {
            float *out = first + iw * c;
            FC_OMP(omp simd)
            for (ptrdiff_t ch = 0; ch < c; ++ch)
                out[ch] = 0.0f + g[ch] * scale;
        }
    }
    zero_columns(d, dxi, i0, i0 + 1, covered, d->w);
    for (ptrdiff_t ih = i0 + 1; ih < i1; ++ih)
        memcpy(dxi + ih * row_floats, first, (size_t)row_floats * sizeof(float));
    if (d->relu)
        for (ptrdiff_t ih = i0; ih < i1; ++ih) {
            float *out = dxi + ih * row_floats;
            const float *v = xi + ih * row_floats;
            FC_OMP(omp simd)
            for (ptrdiff_t e = 0; e < row_floats; ++e)
                out[e] = select_bits(-(uint32_t)(v[e] > 0.0f), out[e], 0.0f);
        }
}

/* Unit b of average pooling's backward (row_bands: b is a band of rows). */
static inline __attribute__((always_inline)) void
avg_backward_band(const fc_pool2d_desc *d, const int32_t *idx, const float *x, const float *dy,
                  float *dx, const pool_band *b, int row_bands, float *scratch)
{
    const ptrdiff_t c = d->c;
    const float *xi = d->relu ? x + b->img * d->h * d->w * c : NULL;
    float *dxi = dx + b->img * d->h * d->w * c;
    if (row_bands && d->sw >= d->kw) {
        avg_backward_disjoint(d, idx, xi, dy_row(d, dy, b->img, b->oh0, scratch), dxi, b->oh0,
                              b->r0, b->r1);
        return;
    }
    zero_rows(d, b, dx);
    for (ptrdiff_t oh = b->oh0; oh < b->oh1; ++oh) {
        const float *dyr = dy_row(d, dy, b->img, oh, scratch);
        for (ptrdiff_t ow = 0; ow < d->wo; ++ow) {
            const pool_window win = window_of(d, oh, ow);
            const ptrdiff_t i0 = win.i0, i1 = win.i1, j0 = win.j0, j1 = win.j1;
            const float *g = dyr + ow * c;
            const float scale = 1.0f / (float)((i1 - i0) * (j1 - j0));
            for (ptrdiff_t ih = i0; ih < i1; ++ih)
                for (ptrdiff_t iw = j0; iw < j1; ++iw) {
                    float *out = dxi + (ih * d->w + iw) * c;
                    for (ptrdiff_t ch = 0; ch < c; ++ch)
                        out[ch] += g[ch] * scale;
                }
        }
    }
    if (d->relu) { /* the band's sums done: fc_relu_backward_f32's select */
        const ptrdiff_t first = b->r0 * d->w * c, count = (b->r1 - b->r0) * d->w * c;
        FC_OMP(omp simd)
        for (ptrdiff_t e = first; e < first + count; ++e)
            dxi[e] = select_bits(-(uint32_t)(xi[e] > 0.0f), dxi[e], 0.0f);
    }
}

/* The backward passes, units shared out statically (cloned, as pool_forward). */
static FC_VECTOR_CLONES int pool_backward(int is_max, const fc_pool2d_desc *d, const float *x,
                                          const uint8_t *argmax, const float *dy, float *dx,
                                          int n_threads)
{
    const double work = (double)d->n * d->ho * d->wo * d->c * d->kh * d->kw;
    n_threads = fc_threads_for(work, FC_GRAIN_ELEMENTS, n_threads);
    if (d->c == 0) /* empty output: its pointers may be NULL, even for memcpy */
        return FC_OK;
    int row_bands;
    const ptrdiff_t units = band_count(d, &row_bands);
    /* Per thread, with dropout: a row of dy through it. */
    const ptrdiff_t per_thread = d->dropout ? fc_thread_stride(d->wo * d->c) : 0;
    float *scratch = d->dropout ? fc_aligned_alloc((size_t)(n_threads * per_thread) * sizeof(float))
                                : NULL;
    if (d->dropout && !scratch)
        return FC_ERR_NOMEM;
    int32_t offsets[FC_POOL_FLAT_ELEMENTS];
    const int32_t *idx = NULL;
    if (flat_channels(d->c)) {
        flat_offsets(d, offsets);
        idx = offsets;
    }
    /* Max pooling over bands of rows: the SIMD path's row kernels where they
     * apply (their g read through the dropout's scratch row). */
    const fc_pool_kernel_set *ks = is_max && row_bands ? row_kernels(d, 1) : NULL;
    const int stream = streams(ks, dx, (double)d->n * d->h * d->w * d->c);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        float *mine = scratch ? scratch + fc_thread_id() * per_thread : NULL;
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t u = 0; u < units; ++u) {
            const pool_band b = band_of(d, row_bands, u);
            if (is_max)
                max_backward_band(d, idx, x, argmax, dy, dx, &b, row_bands, mine, ks, stream);
            else
                avg_backward_band(d, idx, x, dy, dx, &b, row_bands, mine);
        }
        if (stream)
            fc_store_fence();
        fc_team_leave(&team);
    }
    fc_aligned_free(scratch);
    return FC_OK;
}

int fc_max_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x, const float *dy,
                               float *dx, int n_threads)
{
    return pool_backward(1, d, x, NULL, dy, dx, n_threads);
}

int fc_max_pool2d_backward_argmax_f32(const fc_pool2d_desc *d, const uint8_t *argmax,
                                      const float *dy, float *dx, int n_threads)
{
    if (d->kh * d->kw > FC_POOL_ARGMAX_MAX_CELLS)
        return FC_ERR_UNSUPPORTED;
    return pool_backward(1, d, NULL, argmax, dy, dx, n_threads);
}

int fc_avg_pool2d_backward_f32(const fc_pool2d_desc *d, const float *x, const float *dy,
                               float *dx, int n_threads)
{
    return pool_backward(0, d, x, NULL, dy, dx, n_threads);
}
