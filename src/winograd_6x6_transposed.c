/* The backward-input pass of a 3x3, stride-1 layer by the transpose of its
 * forward F(4x4, 3x3) (winograd_6x6.c), tiled over dy rather than dx.
 *
 * The forward maps a tile's 6x6 input patch D to its 4x4 outputs by
 *     Y = A^T [ sum over channels of U .* (B^T D B) ] A,
 * so its transpose maps a tile's 4x4 dy to the patch's share of dx:
 *     dD = B [ sum over filters of U .* (A dY A^T) ] B^T,
 * 36 products per tile and channel-filter pair as in the forward. Patches of
 * neighbouring tiles overlap by two pixels, and their shares are added into
 * dx. The usual backward-input (a forward pass of dy, padded, with the
 * rotated kernel) tiles dx instead, and in an unpadded layer dx is larger than
 * dy by the kernel's border: MNIST's 24 x 24 dy and 26 x 26 dx take 36 tiles
 * here against 49, an 11 x 11 dy and 13 x 13 dx 9 against 16.
 *
 * Per position xi of the 6x6 domain the products over filters form one GEMM,
 * M[xi] (tiles, c) = Z[xi] (tiles, f) x U[xi]^T (f, c), with Z = A dY A^T
 * (winograd_6x6.c's weight-gradient transform) read in place. A block of
 * tiles holds whole images, so no two threads write one dx pixel; within an
 * image the tiles go in row-major order, the first share of each pixel
 * stored and the later ones added (and with a mask, the last one masked), so
 * each pixel is summed in a fixed order whatever the thread count. Where the
 * weight gradient is wanted too, one pass over dy's tiles computes both
 * (below). */
#include <string.h>

#include "fc_internal.h"

#define XI 36 /* positions of the 6x6 transformed domain */
#define TILE 4 /* dy pixels per tile side */
#define PATCH_CHANNELS 16 /* channels of a patch transformed at a time */

int fc_winograd_6x6_transposed_applies(const fc_conv2d_desc *d)
{
    if (d->kh != 3 || d->kw != 3 || d->n == 0 || d->ho == 0 || d->wo == 0
        || !fc_winograd_6x6_applies(d, FC_WINOGRAD_TRANSPOSED_MAX_CF))
        return 0;
    const ptrdiff_t dy_tiles = fc_ceil_div(d->ho, TILE) * fc_ceil_div(d->wo, TILE);
    const ptrdiff_t dx_tiles = fc_ceil_div(d->h, TILE) * fc_ceil_div(d->w, TILE);
    return dy_tiles < dx_tiles
           && dy_tiles * XI * (d->c + d->f) <= FC_WINOGRAD_TRANSPOSED_MAX_IMAGE_FLOATS;
}

/* o0..o5 = B s for one column (or row) s0..s5 of a tile's products: the
 * transpose of winograd_6x6.c's INPUT_POINTS (B^T d). */
#define PATCH_POINTS(s0, s1, s2, s3, s4, s5, o0, o1, o2, o3, o4, o5)                   \
    do {                                                                               \
        const float a1_ = (s1) + (s2), d1_ = (s2) - (s1);                              \
        const float a3_ = (s3) + (s4), d3_ = (s3) - (s4);                              \
        o0 = 4.0f * (s0);                                                              \
        o1 = 4.0f * d1_ - 2.0f * d3_ + 4.0f * (s5);                                    \
        o2 = -5.0f * (s0) - 4.0f * a1_ - a3_;                                          \
        o3 = 2.0f * d3_ - d1_ - 5.0f * (s5);                                           \
        o4 = (s0) + a1_ + a3_;                                                         \
        o5 = (s5);                                                                     \
    } while (0)

/* p[(i * 6 + j) * PATCH_CHANNELS + ch] = (B m B^T)[i][j] for the tile's
 * products m[xi * ld + ch], ch < count (a constant once inlined). */
static inline __attribute__((always_inline)) void
patch_of(const float *m, ptrdiff_t ld, const ptrdiff_t count, float *p)
{
    FC_OMP(omp simd)
    for (ptrdiff_t ch = 0; ch < count; ++ch) {
        float s[6][6];
        const float *mc = m + ch;
        _Pragma("GCC unroll 6")
        for (int j = 0; j < 6; ++j) /* B m: combine rows */
            PATCH_POINTS(mc[j * ld], mc[(6 + j) * ld], mc[(12 + j) * ld], mc[(18 + j) * ld],
                         mc[(24 + j) * ld], mc[(30 + j) * ld], s[0][j], s[1][j], s[2][j], s[3][j],
                         s[4][j], s[5][j]);
        float *o = p + ch;
        _Pragma("GCC unroll 6")
        for (int r = 0; r < 6; ++r) /* (B m) B^T: combine columns */
            PATCH_POINTS(s[r][0], s[r][1], s[r][2], s[r][3], s[r][4], s[r][5],
                         o[(r * 6) * PATCH_CHANNELS], o[(r * 6 + 1) * PATCH_CHANNELS],
                         o[(r * 6 + 2) * PATCH_CHANNELS], o[(r * 6 + 3) * PATCH_CHANNELS],
                         o[(r * 6 + 4) * PATCH_CHANNELS], o[(r * 6 + 5) * PATCH_CHANNELS]);
    }
}

/* Nonzero when the products behind patch p (count channels) hold an
 * infinity or NaN (see FC_NONFINITE). Its pixels (2, 2), (2, 3), (3, 2) and
 * (3, 3) take every one of the 36 products with a nonzero factor, so such a
 * product reaches one of them as an infinity or a NaN. */
static inline __attribute__((always_inline)) int
patch_nonfinite(const float *p, const ptrdiff_t count)
{
    int bad = 0;
    FC_OMP(omp simd reduction(|:bad))
    for (ptrdiff_t ch = 0; ch < count; ++ch) {
        const float q = p[14 * PATCH_CHANNELS + ch] + p[15 * PATCH_CHANNELS + ch]
                        + p[20 * PATCH_CHANNELS + ch] + p[21 * PATCH_CHANNELS + ch];
        bad |= q - q != 0.0f; /* NaN: not finite */
    }
    return bad;
}

/* One pixel's share p (count channels) into dx at o: stored if it is the
 * pixel's first, else added; with mask (the pixel's last share), 0 where
 * the mask is not positive. */
static inline __attribute__((always_inline)) void
share(const float *p, const float *mask, const ptrdiff_t count, int first, float *o)
{
    if (first && mask) {
        FC_OMP(omp simd)
        for (ptrdiff_t ch = 0; ch < count; ++ch)
            o[ch] = mask[ch] > 0.0f ? p[ch] : 0.0f;
    } else if (first) {
        FC_OMP(omp simd)
        for (ptrdiff_t ch = 0; ch < count; ++ch)
            o[ch] = p[ch];
    } else if (mask) {
        FC_OMP(omp simd)
        for (ptrdiff_t ch = 0; ch < count; ++ch)
            o[ch] = mask[ch] > 0.0f ? o[ch] + p[ch] : 0.0f;
    } else {
        FC_OMP(omp simd)
        for (ptrdiff_t ch = 0; ch < count; ++ch)
            o[ch] += p[ch];
    }
}

/* Channels [c0, c0 + count) of one tile's shares (count a constant once
 * inlined): its products m (positions ld apart), its patch's first pixel
 * in dx at (ih0, iw0), image img. A patch pixel is a dx pixel's first share
 * unless the tile above or to the left covers it too (its top two rows or
 * left two columns, but in the image's first row or column of tiles), and
 * its last unless the tile below or to the right does. */
static inline __attribute__((always_inline)) int
tile_shares(const int CHECK, const fc_conv2d_desc *d, const float *m, ptrdiff_t ld, ptrdiff_t c0,
            const ptrdiff_t count, ptrdiff_t img, ptrdiff_t ih0, ptrdiff_t iw0, int top, int left,
            int bottom, int right, const float *mask, float *dx)
{
    float p[XI * PATCH_CHANNELS];
    patch_of(m + c0, ld, count, p);
    const int bad = CHECK && patch_nonfinite(p, count);
    for (int i = 0; i < 6; ++i) {
        const ptrdiff_t ih = ih0 + i;
        if (ih < 0 || ih >= d->h)
            continue;
        const int first_i = i >= 6 - TILE || top, last_i = i < TILE || bottom;
        for (int j = 0; j < 6; ++j) {
            const ptrdiff_t iw = iw0 + j;
            if (iw < 0 || iw >= d->w)
                continue;
            const ptrdiff_t at = ((img * d->h + ih) * d->w + iw) * d->c + c0;
            const int last = last_i && (j < TILE || right);
            share(p + (i * 6 + j) * PATCH_CHANNELS, mask && last ? mask + at : NULL, count,
                  first_i && (j >= 6 - TILE || left), dx + at);
        }
    }
    return bad;
}

/* The shares of tiles [t0, t0 + count) (whole images) in dx: M[xi][t][ch]
 * at m + xi * ld_block; a vector's worth of channels at a time (the last
 * chunk may be narrower). With CHECK (a constant once inlined), returns
 * nonzero when a patch holds an infinity or NaN, else 0. */
static inline __attribute__((always_inline)) int
patches(const int CHECK, const fc_conv2d_desc *d, const float *m, ptrdiff_t tiles_h,
        ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld_block, const float *mask,
        float *dx)
{
    const ptrdiff_t c = d->c, per_img = tiles_h * tiles_w;
    const ptrdiff_t whole = c / PATCH_CHANNELS * PATCH_CHANNELS;
    int bad = 0;
    for (ptrdiff_t t = 0; t < count; ++t) {
        const ptrdiff_t tile = t0 + t, img = tile / per_img;
        const ptrdiff_t th = (tile - img * per_img) / tiles_w, tw = tile - img * per_img - th * tiles_w;
        const ptrdiff_t ih0 = TILE * th - d->pt, iw0 = TILE * tw - d->pl;
        const int top = th == 0, left = tw == 0, bottom = th == tiles_h - 1, right = tw == tiles_w - 1;
        const float *mt = m + t * c;
        for (ptrdiff_t c0 = 0; c0 < whole; c0 += PATCH_CHANNELS)
            bad |= tile_shares(CHECK, d, mt, ld_block, c0, PATCH_CHANNELS, img, ih0, iw0, top,
                               left, bottom, right, mask, dx);
        if (whole < c)
            bad |= tile_shares(CHECK, d, mt, ld_block, whole, c - whole, img, ih0, iw0, top, left,
                               bottom, right, mask, dx);
    }
    return bad;
}

/* patches() with the check: for the backward-input pass alone, whose dx is
 * the only result that an infinity in dy reaches. */
FC_VECTOR_CLONES static int add_patches_checked(const fc_conv2d_desc *d, const float *m,
                                                ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                                ptrdiff_t count, ptrdiff_t ld_block,
                                                const float *mask, float *dx)
{
    return patches(1, d, m, tiles_h, tiles_w, t0, count, ld_block, mask, dx);
}

/* patches() without: in the one pass that also takes dw, any infinity or
 * NaN in dy's or x's transformed tiles reaches dw, which is checked once. */
FC_VECTOR_CLONES static void add_patches(const fc_conv2d_desc *d, const float *m,
                                         ptrdiff_t tiles_h, ptrdiff_t tiles_w, ptrdiff_t t0,
                                         ptrdiff_t count, ptrdiff_t ld_block, const float *mask,
                                         float *dx)
{
    patches(0, d, m, tiles_h, tiles_w, t0, count, ld_block, mask, dx);
}

int fc_conv2d_winograd_6x6_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                              const float *w, const float *mask, float *dx,
                                              int n_threads)
{
    /* The GEMMs' depth is the layer's filters, their columns its channels. */
    const ptrdiff_t c = d->c, f = d->f;
    const fc_kernel_set *ks = fc_kernels_for(c);
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t tiles_h = fc_ceil_div(d->ho, TILE), tiles_w = fc_ceil_div(d->wo, TILE);
    const ptrdiff_t per_img = tiles_h * tiles_w;
    if (d->n == 0 || c == 0)
        return FC_OK;
    n_threads = fc_threads_for(fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t n_panels = fc_ceil_div(c, NR);
    /* Whole images per block, their Z and M together about half an L2. */
    const ptrdiff_t target = FC_WINOGRAD_BLOCK_FLOATS / (XI * (f + n_panels * NR));
    const ptrdiff_t images = fc_max(1, fc_min(d->n, target / per_img));
    const ptrdiff_t run = fc_round_up(images * per_img, MR);
    const ptrdiff_t n_blocks = fc_ceil_div(d->n, images);
    /* Per thread: Z (read in place up to a whole last sliver), M, f zeros
     * (dy past its edge). */
    const ptrdiff_t ld_z = fc_position_stride(run * f), ld_m = fc_position_stride(run * c);
    const ptrdiff_t per_thread = fc_thread_stride(XI * (ld_z + ld_m) + f);
    const int threads = (int)fc_min(n_threads, n_blocks);
    const fc_conv2d_desc swapped = {d->n, d->ho, d->wo, f, d->kh, d->kw, c, 1, 1, 1, 1,
                                    0, 0, 0, 0, d->h, d->w, 0};
    float *up = fc_aligned_alloc((size_t)(XI * n_panels * NR * f) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = up && ws ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK
        && !fc_winograd_6x6_transform_weights(&swapped, w, FC_WEIGHTS_TRANSPOSED, NR, up, n_threads))
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
        float *z = ws + fc_thread_id() * per_thread;
        float *mm = z + XI * ld_z;
        float *zeros = mm + XI * ld_m;
        /* Rows of Z past the last tile are read by the micro-kernel: keep
         * them finite; the zeros must be zero. */
        memset(z, 0, (size_t)(XI * ld_z) * sizeof(float));
        memset(zeros, 0, (size_t)f * sizeof(float));
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t blk = 0; blk < n_blocks; ++blk) {
            const ptrdiff_t t0 = blk * images * per_img;
            const ptrdiff_t count = fc_min(images, d->n - blk * images) * per_img;
            /* One panel of all f filters: Z's rows are row-major, f apart. */
            fc_winograd_6x6_grads(d, dy, NULL, NULL, tiles_h, tiles_w, t0, count, run, (int)f, ld_z,
                                  zeros, z, NULL);
            fc_winograd_products(XI, z, ld_z, f, up, c, count, mm, ld_m);
            bad |= add_patches_checked(d, mm, tiles_h, tiles_w, t0, count, ld_m, mask, dx);
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(up);
    fc_aligned_free(ws);
    return bad ? FC_NONFINITE : FC_OK;
}

/* ---- both gradients in one pass ---------------------------------------
 *
 * The weight gradient (winograd.c's driver with winograd_6x6.c's transforms)
 * sums S[xi] = V[xi]^T Z[xi] over dy's tiles, Z = A dY A^T as above and V the
 * forward's transform of the same tiles' input patches. When the filters fill
 * one panel of its micro-kernel, Z packed as that panel is also Z row-major,
 * the backward-input's A: one transform of dy serves both gradients. */

int fc_winograd_6x6_fused_applies(const fc_conv2d_desc *d)
{
    return fc_winograd_6x6_transposed_applies(d)
           && fc_winograd_6x6_applies(d, FC_WINOGRAD_6X6_WGRAD_MAX_CF)
           && d->f == fc_kernels_for(d->f)->nr;
}

int fc_conv2d_winograd_6x6_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                        const fc_pooled_gradient *pooled, const float *w,
                                        const float *mask, float *dx, float *dw, float *db,
                                        int n_threads)
{
    const ptrdiff_t c = d->c, f = d->f;
    const fc_kernel_set *ks_w = fc_kernels_for(f); /* S[xi] (c, f): f = its NR */
    const fc_kernel_set *ks_x = fc_kernels_for(c); /* M[xi] (tiles, c) */
    const int MR_W = ks_w->mr, MR_X = ks_x->mr, NR_X = ks_x->nr;
    const ptrdiff_t tiles_h = fc_ceil_div(d->ho, TILE), tiles_w = fc_ceil_div(d->wo, TILE);
    const ptrdiff_t per_img = tiles_h * tiles_w;
    n_threads = fc_threads_for((dx ? 2.0 : 1.0) * fc_conv_macs(d), FC_GRAIN_WINOGRAD, n_threads);
    const ptrdiff_t n_panels = fc_ceil_div(c, NR_X);
    /* Whole images per block: their V, Z and M together about L2; the
     * weight gradient's chunks (fixed by the shape, added in order) of whole
     * images too. */
    const ptrdiff_t per_img_floats = per_img * XI * (c + f + n_panels * NR_X);
    const ptrdiff_t images = fc_max(1, fc_min(d->n, FC_WINOGRAD_WGRAD_BLOCK_FLOATS / per_img_floats));
    const ptrdiff_t run = fc_round_up(images * per_img, fc_max(MR_X, MR_W));
    const ptrdiff_t s_floats = XI * c * f + f, s_stride = fc_thread_stride(s_floats);
    /* As many chunks as can be (not fewer for few tiles, as the weight
     * gradient alone takes): the backward-input's share of the work is
     * spread by them too (the default model's second layer, 128 images in
     * 3 chunks, left one of 2 threads a third idle). */
    ptrdiff_t chunks = fc_min(FC_WGRAD_MAX_CHUNKS, d->n);
    chunks = fc_min(chunks, FC_WGRAD_PARTIAL_BYTES / (ptrdiff_t)(s_floats * sizeof(float)));
    chunks = fc_max(chunks, 1);
    /* Per thread: V (a sliver past the last channel reads up to MR - 1
     * floats beyond it), Z, M, zeros for the patches and tiles past the
     * edges, a tile of the pooled gradient. */
    const ptrdiff_t ld_v = fc_position_stride(run * c + MR_W), ld_z = fc_position_stride(run * f);
    const ptrdiff_t ld_m = fc_position_stride(run * c);
    const ptrdiff_t unpooled_floats = pooled ? TILE * TILE * f : 0;
    const ptrdiff_t per_thread = fc_thread_stride(XI * (ld_v + ld_z + ld_m) + fc_max(c, f)
                                                  + unpooled_floats);
    const int threads = (int)fc_min(n_threads, chunks);
    const fc_conv2d_desc swapped = {d->n, d->ho, d->wo, f, d->kh, d->kw, c, 1, 1, 1, 1,
                                    0, 0, 0, 0, d->h, d->w, 0};
    float *up = dx ? fc_aligned_alloc((size_t)(XI * n_panels * NR_X * f) * sizeof(float)) : NULL;
    float *partials = fc_aligned_alloc((size_t)(chunks * s_stride) * sizeof(float));
    float *ws = fc_aligned_alloc((size_t)(threads * per_thread) * sizeof(float));
    int status = (up || !dx) && partials && ws ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK && dx
        && !fc_winograd_6x6_transform_weights(&swapped, w, FC_WEIGHTS_TRANSPOSED, NR_X, up, n_threads))
        status = FC_NONFINITE;
    if (status != FC_OK) {
        fc_aligned_free(up);
        fc_aligned_free(partials);
        fc_aligned_free(ws);
        return status;
    }

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
        fc_fp_state fp = fc_fp_enter();
        float *v = ws + fc_thread_id() * per_thread;
        float *z = v + XI * ld_v, *mm = z + XI * ld_z, *zeros = mm + XI * ld_m;
        float *unpooled = zeros + fc_max(c, f);
        /* Filler the micro-kernels read but discard must be finite; the
         * padding input must be zero. */
        memset(v, 0, (size_t)per_thread * sizeof(float));
        FC_OMP(omp for schedule(static))
        for (ptrdiff_t ci = 0; ci < chunks; ++ci) {
            float *s = partials + ci * s_stride, *db_part = s + XI * c * f;
            const ptrdiff_t img0 = ci * d->n / chunks, img1 = (ci + 1) * d->n / chunks;
            memset(db_part, 0, (size_t)f * sizeof(float));
            for (ptrdiff_t i0 = img0; i0 < img1; i0 += images) {
                const ptrdiff_t t0 = i0 * per_img, count = fc_min(images, img1 - i0) * per_img;
                fc_winograd_6x6_inputs(d, x, tiles_h, tiles_w, t0, count, ld_v, zeros, v);
                fc_winograd_6x6_grads(d, dy, pooled, unpooled, tiles_h, tiles_w, t0, count, run,
                                      (int)f, ld_z, zeros, z, db_part);
                fc_winograd_weight_products(XI, v, ld_v, c, z, ld_z, run, f, count, i0 > img0, s);
                if (dx) {
                    fc_winograd_products(XI, z, ld_z, f, up, c, count, mm, ld_m);
                    add_patches(d, mm, tiles_h, tiles_w, t0, count, ld_m, mask, dx);
                }
            }
        }
        fc_winograd_add_chunks(partials, s_floats, chunks, s_stride);
        const ptrdiff_t cf_blocks = fc_ceil_div(c * f, FC_REDUCE_BLOCK);
        FC_OMP(omp for schedule(static) nowait) /* the region's end waits */
        for (ptrdiff_t cb = 0; cb < cf_blocks; ++cb)
            fc_winograd_6x6_weights(d, partials, c * f, dw, cb * FC_REDUCE_BLOCK,
                                    fc_min(c * f, (cb + 1) * FC_REDUCE_BLOCK));
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    if (db)
        memcpy(db, partials + XI * c * f, (size_t)f * sizeof(float));
    fc_aligned_free(up);
    fc_aligned_free(partials);
    fc_aligned_free(ws);
    /* An infinity or NaN in x's or dy's transformed tiles reaches every
     * channel-filter pair of its position's S, so dw tells: then dx is not
     * to be trusted either (dy's infinity spreads over whole patches). */
    return fc_all_finite(dw, d->kh * d->kw * c * f) ? FC_OK : FC_NONFINITE;
}
