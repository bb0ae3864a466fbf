/* Packed GEMM in the BLIS structure: loops JC (columns by NC), PC (depth by
 * KC), IC (rows by MC), JR (columns by NR), IR (rows by MR) around an
 * MR x NR register-blocked micro-kernel.
 *
 * The driver does not know where A, B and C come from: A and B are produced
 * by pack callbacks (so a convolution can gather its im2col rows straight
 * into the packed block, never building the whole im2col matrix) and C rows
 * are located through a row map (so a convolution gradient can write a
 * strided subset of pixels). Threads share the packed B block and each packs
 * its own A block. When all of B's depth is packed at once (see
 * fc_gemm_run), the IC loop moves outside PC, so each thread takes a row
 * block through every depth block without waiting for the others. Every C
 * tile is computed by exactly one thread, with the same depth order whatever
 * the thread count, so results are bitwise identical for any n_threads (a
 * product split along its depth, gemm_run_split, sums chunks fixed by its
 * shape, in order). */
#include <string.h>

#include "fc_internal.h"

void fc_tile_store(const float *acc, float *const *crow, const fc_tile_epilogue *ep)
{
    for (int i = 0; i < ep->mr; ++i) {
        float *c = crow[i];
        const float *t = acc + i * FC_NR_MAX;
        for (int j = 0; j < ep->nr; ++j) {
            float v = t[j];
            if (ep->accumulate)
                v += c[j];
            else if (ep->bias)
                v += ep->bias[j];
            if (ep->relu)
                v = v < 0.0f ? 0.0f : v; /* keeps NaN */
            c[j] = v;
        }
    }
}

void fc_pack_b_tapped(const void *ctx, ptrdiff_t p0, ptrdiff_t kc,
                      ptrdiff_t j0, ptrdiff_t nr_valid, int nr, float *dst)
{
    const fc_tapped_matrix *m = ctx;
    ptrdiff_t t = p0 / m->rows_per_tap, r = p0 - t * m->rows_per_tap;
    for (ptrdiff_t p = 0; p < kc; ++p) {
        const float *src = m->base + m->tap_off[t] + r * m->ld + j0;
        float *out = dst + p * nr;
        memcpy(out, src, (size_t)nr_valid * sizeof(float));
        for (ptrdiff_t j = nr_valid; j < nr; ++j)
            out[j] = 0.0f;
        if (++r == m->rows_per_tap) {
            r = 0;
            ++t;
        }
    }
}

/* A plain row-major matrix (fc_plain_matrix), copied in row-major blocks. */
static void pack_a_plain(const void *ctx, ptrdiff_t i0, ptrdiff_t mc,
                         ptrdiff_t p0, ptrdiff_t kc, int mr, float *dst)
{
    const fc_plain_matrix *m = ctx;
    (void)mr;
    for (ptrdiff_t i = 0; i < mc; ++i)
        memcpy(dst + i * kc, m->a + (i0 + i) * m->lda + p0, (size_t)kc * sizeof(float));
}

/* The last rows [i, i+mr) of an in-place A, as an interleaved sliver padded
 * with zero rows to MR. */
static void copy_partial_sliver(const fc_gemm_plan *p, ptrdiff_t i, int mr, ptrdiff_t pc,
                                ptrdiff_t kc, int MR, float *dst)
{
    for (ptrdiff_t q = 0; q < kc; ++q)
        for (int r = 0; r < MR; ++r)
            dst[q * MR + r] = r < mr ? p->a_base[(i + r) * p->a_rs + (pc + q) * p->a_cs] : 0.0f;
}

/* Eight floats as one value (GCC's and Clang's vector extension),
 * unaligned and free to alias the floats they are read from. */
typedef float vec8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int ivec8 __attribute__((vector_size(32)));
#if defined(__clang__)
#define SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (ivec8){__VA_ARGS__})
#endif

/* out[k * ld_out + j] = in[j * ld_in + k] for j, k < 8: an 8 x 8 block
 * transposed in registers (three rounds of pairwise shuffles). */
static inline __attribute__((always_inline)) void
transpose8(const float *in, ptrdiff_t ld_in, float *out, ptrdiff_t ld_out)
{
    vec8 r[8], a[8], b[8];
    for (int j = 0; j < 8; ++j)
        r[j] = *(const vec8 *)(in + j * ld_in);
    for (int j = 0; j < 8; j += 2) { /* pairs of rows interleaved */
        a[j] = SHUFFLE8(r[j], r[j + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        a[j + 1] = SHUFFLE8(r[j], r[j + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int j = 0; j < 8; j += 4) /* then pairs of pairs */
        for (int h = 0; h < 2; ++h) {
            b[j + 2 * h] = SHUFFLE8(a[j + h], a[j + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            b[j + 2 * h + 1] = SHUFFLE8(a[j + h], a[j + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int k = 0; k < 4; ++k) { /* then the halves */
        *(vec8 *)(out + k * ld_out) = SHUFFLE8(b[k], b[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        *(vec8 *)(out + (k + 4) * ld_out) = SHUFFLE8(b[k], b[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* Panel of the transpose of a row-major n x k matrix: element (p, j) of
 * op(B) is b[j * ld + p]. Blocks of 8 x 8 are transposed in registers (the
 * Keras example's Dense backward-input packs 4.7 MB a step this way), the
 * edges element by element. */
FC_VECTOR_CLONES void fc_pack_b_transposed(const void *ctx, ptrdiff_t p0, ptrdiff_t kc,
                                           ptrdiff_t j0, ptrdiff_t nr_valid, int nr, float *dst)
{
    const fc_plain_matrix *m = ctx;
    const float *src = m->a + j0 * m->lda + p0;
    const ptrdiff_t j8 = nr_valid / 8 * 8, p8 = kc / 8 * 8;
    for (ptrdiff_t p = 0; p < p8; p += 8)
        for (ptrdiff_t j = 0; j < j8; j += 8)
            transpose8(src + j * m->lda + p, m->lda, dst + p * nr + j, nr);
    for (ptrdiff_t p = 0; p < kc; ++p) {
        float *out = dst + p * nr;
        for (ptrdiff_t j = p < p8 ? j8 : 0; j < nr_valid; ++j)
            out[j] = src[j * m->lda + p];
        for (ptrdiff_t j = nr_valid; j < nr; ++j)
            out[j] = 0.0f;
    }
}

/* A tapped matrix whose taps are stored transposed (ctx an
 * fc_tapped_matrix): element (p, j), p = t * rows_per_tap + r, is
 * base[tap_off[t] + j * ld + r]; each tap's run packed as
 * fc_pack_b_transposed packs a plain matrix. */
void fc_pack_b_tapped_transposed(const void *ctx, ptrdiff_t p0, ptrdiff_t kc, ptrdiff_t j0,
                                 ptrdiff_t nr_valid, int nr, float *dst)
{
    const fc_tapped_matrix *m = ctx;
    for (ptrdiff_t p = p0; p < p0 + kc;) {
        const ptrdiff_t t = p / m->rows_per_tap, r = p - t * m->rows_per_tap;
        const ptrdiff_t run = fc_min(m->rows_per_tap - r, p0 + kc - p);
        const fc_plain_matrix tap = {m->base + m->tap_off[t], m->ld};
        fc_pack_b_transposed(&tap, r, run, j0, nr_valid, nr, dst + (p - p0) * nr);
        p += run;
    }
}

/* dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols: strips
 * of 8 rows in 8 x 8 blocks transposed in registers, the edges element by
 * element. Element by element, every read of a large matrix took a cache
 * line of its own (transposing a 512 x 512 kernel's taps took a fifth of the
 * 8 x 7 x 7 x 512 -> 512 layer's backward-input pass). */
FC_VECTOR_CLONES void fc_transpose_f32(ptrdiff_t rows, ptrdiff_t cols, const float *src,
                                       ptrdiff_t ld_src, float *dst, ptrdiff_t ld_dst)
{
    const ptrdiff_t i8 = rows / 8 * 8, j8 = cols / 8 * 8;
    for (ptrdiff_t i = 0; i < i8; i += 8) {
        for (ptrdiff_t j = 0; j < j8; j += 8)
            transpose8(src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
        for (ptrdiff_t j = j8; j < cols; ++j)
            for (ptrdiff_t r = i; r < i + 8; ++r)
                dst[j * ld_dst + r] = src[r * ld_src + j];
    }
    for (ptrdiff_t r = i8; r < rows; ++r)
        for (ptrdiff_t j = 0; j < cols; ++j)
            dst[j * ld_dst + r] = src[r * ld_src + j];
}

/* K == 0: the product is empty and C is the bias (or zero). */
static void write_bias_only(const fc_gemm_plan *p)
{
    for (ptrdiff_t i = 0; i < p->m; ++i) {
        float *c;
        fc_row_ptrs(&p->c, i, 1, &c);
        for (ptrdiff_t j = 0; j < p->n; ++j) {
            float v = p->bias ? p->bias[j] : 0.0f;
            c[j] = (p->relu && v < 0.0f) ? 0.0f : v;
        }
    }
}

/* Whether the panel of B from column j (NR wide) is read in place. */
static int in_place_panel(const fc_gemm_plan *p, ptrdiff_t j, int nr)
{
    return p->b_rows && j + nr <= p->n;
}

/* The part of the prefetch queue q (or none) that a tile of depth kc takes:
 * a line for every two steps, as the micro-kernels fetch them. */
static void take_prefetch(fc_prefetch_queue *q, ptrdiff_t kc, fc_tile_epilogue *ep)
{
    ep->prefetch = ep->prefetch_end = NULL;
    if (!q)
        return;
    const int r = q->next[0] < q->end[0] ? 0 : 1;
    const ptrdiff_t left = q->end[r] - q->next[r];
    if (left <= 0)
        return;
    const ptrdiff_t bytes = fc_min(left, kc / 4 * 2 * 64);
    ep->prefetch = q->next[r];
    ep->prefetch_end = q->next[r] + bytes;
    q->next[r] += bytes;
}

/* One row block [i0, i0+mc) of C (row pointers rowp) times panels
 * [jp_begin, jp_end) of one depth block [pc, pc+kc) of packed B (bp: the
 * block's first panel, panels nr*kc floats apart), in a sum over the depth
 * from p0 (0, or a depth chunk's start: see gemm_run_split). */
static void multiply_block(const fc_gemm_plan *p, const fc_kernel_set *ks, ptrdiff_t i0,
                           ptrdiff_t mc, ptrdiff_t p0, ptrdiff_t pc, ptrdiff_t kc, ptrdiff_t jc,
                           ptrdiff_t jp_begin, ptrdiff_t jp_end, const float *bp,
                           float *apack, float *const *rowp)
{
    const int MR = ks->mr, NR = ks->nr;
    const int interleaved = p->a_interleaved;
    float *crow[FC_MR_MAX];
    const float **a_rows = (const float **)apack;
    const ptrdiff_t taps = p->rows_a ? kc / p->a_tap_depth : 0;
    if (p->pack_a)
        p->pack_a(p->a_ctx, i0, mc, pc, kc, MR, apack);
    else if (p->rows_a)
        p->rows_a(p->a_ctx, i0, mc, pc / p->a_tap_depth, taps, MR, a_rows);
    else if (mc % MR) /* an in-place A's last, partial sliver, copied once for all panels */
        copy_partial_sliver(p, i0 + mc / MR * MR, (int)(mc % MR), pc, kc, MR, apack);
    for (ptrdiff_t jp = jp_begin; jp < jp_end; ++jp) {
        const ptrdiff_t j = jc + jp * NR;
        fc_tile_epilogue ep;
        ep.next_rows = NULL;
        ep.nr = (int)fc_min(NR, p->n - j);
        ep.accumulate = pc > p0 || p->accumulate;
        ep.bias = (!ep.accumulate && p->bias) ? p->bias + j : NULL;
        ep.relu = p->relu && pc + kc >= p->k;
        ep.stream = p->stream && pc == 0 && kc >= p->k;
        ep.b_ld = in_place_panel(p, j, NR) ? p->b_ld : 0;
        const float *panel = ep.b_ld ? p->b_rows + pc * p->b_ld + j : bp + jp * NR * kc;
        const fc_ukernel_fn kernel = ep.b_ld ? ks->ukernel_b_rows : ks->ukernel;
        const fc_ukernel_taps_fn taps_kernel = ep.b_ld ? ks->ukernel_taps_b_rows
                                                       : ks->ukernel_taps;
        for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
            ep.mr = (int)fc_min(MR, mc - ir);
            for (int i = 0; i < MR; ++i)
                crow[i] = rowp[ir + (i < ep.mr ? i : 0)] + j;
            take_prefetch(p->prefetch, kc, &ep);
            if (p->rows_a) {
                ep.next_rows = ir + MR < mc ? a_rows + (ir + MR) * taps : NULL;
                taps_kernel(taps, p->a_tap_depth, a_rows + ir * taps, panel, crow, &ep);
            } else if (p->pack_a) {
                /* Row-major rows sit kc apart; an interleaved panel of MR
                 * rows takes the same kc*MR floats. */
                kernel(kc, apack + ir * kc, interleaved ? 1 : kc, interleaved ? MR : 1, panel,
                       crow, &ep);
            } else if (ep.mr == MR) {
                kernel(kc, p->a_base + (i0 + ir) * p->a_rs + pc * p->a_cs, p->a_rs, p->a_cs,
                       panel, crow, &ep);
            } else {
                kernel(kc, apack, 1, MR, panel, crow, &ep);
            }
        }
    }
}

/* First row of row block ic of n_ic: blocks of whole slivers of MR rows,
 * their sizes differing by at most one sliver (1024 rows in 8 blocks:
 * 126-132 rows each, not 7 x 132 + 100, which left one of 2 threads idle 6%
 * of the time). */
static ptrdiff_t row_start(ptrdiff_t ic, ptrdiff_t n_ic, ptrdiff_t m, int mr)
{
    return fc_min(m, mr * (ic * fc_ceil_div(m, mr) / n_ic));
}

/* How a GEMM is cut into blocks and spread over threads. */
typedef struct {
    ptrdiff_t kc, nc, mc, n_ic;
    int n_threads;
    int whole_b;          /* B's whole depth packed at once */
    ptrdiff_t a_floats;   /* per thread: the packed A block (or A's row pointers) */
    ptrdiff_t ws_bytes;   /* per thread: that, then MC row pointers into C */
} gemm_blocking;

/* Depth blocks are of equal size, up to a quarter larger than the nominal
 * KC, so that no block is a short remainder (K = 288 is one block of 288,
 * not 256 + 32): each block costs a full pass of C loads and stores. */
static ptrdiff_t depth_block_max(const fc_kernel_set *ks)
{
    const ptrdiff_t kc = fc_gemm_kc(ks);
    return kc + kc / 4;
}

static gemm_blocking blocking_of(const fc_gemm_plan *p, const fc_kernel_set *ks, int n_threads)
{
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t M = p->m, N = p->n, K = p->k;
    gemm_blocking b;
    b.kc = fc_ceil_div(K, fc_ceil_div(K, depth_block_max(ks)));
    if (p->rows_a) {
        /* Whole taps per block. A read in place costs nothing to pack, so a
         * block may be deeper, B's panel read from L2: each block costs the
         * micro-kernel a pass over its C tile and a restart. */
        const ptrdiff_t td = p->a_tap_depth, n_taps = K / td;
        const ptrdiff_t per_block = fc_max(1, FC_INDIRECT_PANEL_BYTES / (NR * (ptrdiff_t)sizeof(float)) / td);
        b.kc = td * fc_ceil_div(n_taps, fc_ceil_div(n_taps, per_block));
    }
    b.nc = fc_min(ks->nc, fc_round_up(N, NR));
    b.mc = fc_min(ks->mc, fc_round_up(M, MR));
    b.n_ic = fc_ceil_div(M, b.mc);
    n_threads = fc_threads_for((double)M * N * K, FC_GRAIN_GEMM, n_threads);
    if (n_threads > b.n_ic * fc_ceil_div(b.nc, NR))
        n_threads = (int)(b.n_ic * fc_ceil_div(b.nc, NR));
    /* One row block (at most MC rows) is split by columns instead
     * (column_groups): each thread then packs and reads only its own panels
     * of B, where row blocks would have each read all of B, half of it from
     * the other core's cache (a Dense layer on 32 rows, 32 x 9216 @ 9216 x
     * 128, on 2 threads: 771 -> 630 us; with 2 row blocks no gain). */
    const int by_columns = b.n_ic == 1 && fc_ceil_div(b.nc, NR) >= n_threads;
    if (n_threads > 1 && !by_columns) {
        /* Few row blocks: make their count a multiple of the threads (1024
         * rows: 8 blocks, not 7 x 144 + 16, which left one thread a fifth
         * idle). */
        b.n_ic = fc_round_up(b.n_ic, n_threads);
        b.mc = fc_round_up(fc_ceil_div(M, b.n_ic), MR);
    }
    b.n_ic = fc_min(b.n_ic, fc_ceil_div(M, MR));
    b.n_threads = n_threads;
    /* On several threads, B's whole depth may be packed at once, each thread
     * then taking its row blocks through every depth block: one barrier per
     * column block instead of two per depth block (a barrier costs a
     * sleeping thread's wake-up: milliseconds for a Dense layer's K = 9216),
     * and a row block of C stays in cache across the depth blocks. It pays
     * when B fits in about half an L2, or when there are few row blocks; with
     * many, a larger B would be read from L3 again for each. One thread has
     * no barriers to save. Each C tile still sums the depth blocks in order. */
    b.whole_b = n_threads > 1 && K * b.nc <= FC_GEMM_WHOLE_B_MAX_FLOATS
                && (K * b.nc <= FC_GEMM_WHOLE_B_FLOATS || b.n_ic <= 4 * n_threads);
    const ptrdiff_t ptr_floats = (ptrdiff_t)sizeof(float *) / (ptrdiff_t)sizeof(float);
    b.a_floats = fc_round_up(b.mc, MR) * (p->rows_a ? ptr_floats * (b.kc / p->a_tap_depth) : b.kc);
    b.ws_bytes = (ptrdiff_t)sizeof(float) * fc_thread_stride(
        b.a_floats + b.mc * ptr_floats);
    return b;
}

/* Column groups of a block of n_panels panels: with few row blocks its
 * columns are split too, so every thread has work: into the fewest groups
 * that give each thread as many items (or plenty), as each group packs the
 * row block's A again. The split never changes a tile's sums. */
static ptrdiff_t column_groups(ptrdiff_t n_ic, ptrdiff_t n_panels, int n_threads)
{
    ptrdiff_t groups = 1;
    while (groups < n_panels && n_ic * groups < 4 * n_threads && (n_ic * groups) % n_threads)
        ++groups;
    return groups;
}

/* Item `item` of a stage's B packing: depth block item % n_pc (counted from
 * ps) of panel item / n_pc, packed at its place in the stage's buffer bp. */
static void pack_b_item(const fc_gemm_plan *p, const gemm_blocking *b, int nr, ptrdiff_t item,
                        ptrdiff_t n_pc, ptrdiff_t ps, ptrdiff_t jc, ptrdiff_t nc, float *bp)
{
    const ptrdiff_t pc = ps + item % n_pc * b->kc, jp = item / n_pc;
    const ptrdiff_t kc = fc_min(b->kc, p->k - pc);
    if (in_place_panel(p, jc + jp * nr, nr))
        return;
    p->pack_b(p->b_ctx, pc, kc, jc + jp * nr, fc_min(nr, nc - jp * nr), nr,
              bp + (pc - ps) * b->nc + jp * nr * kc);
}

/* The GEMM of a batch that item belongs to, given each one's end (exclusive)
 * in the batch's item count. */
static int batch_member(ptrdiff_t item, const ptrdiff_t *ends)
{
    int i = 0;
    while (item >= ends[i])
        ++i;
    return i;
}

/* Item `item` of a block's row-block-and-column-group items: row block
 * item / groups through depth blocks [ps, pe) of B packed at bp. */
static void multiply_item(const fc_gemm_plan *p, const fc_kernel_set *ks, const gemm_blocking *b,
                          ptrdiff_t item, ptrdiff_t groups, ptrdiff_t jc, ptrdiff_t n_panels,
                          ptrdiff_t ps, ptrdiff_t pe, const float *bp, float *apack, float **rowp)
{
    const ptrdiff_t ic = item / groups, g = item - ic * groups;
    const ptrdiff_t i0 = row_start(ic, b->n_ic, p->m, ks->mr);
    const ptrdiff_t mc = row_start(ic + 1, b->n_ic, p->m, ks->mr) - i0;
    fc_row_ptrs(&p->c, i0, mc, rowp);
    for (ptrdiff_t pc = ps; pc < pe; pc += b->kc)
        multiply_block(p, ks, i0, mc, 0, pc, fc_min(b->kc, p->k - pc), jc, g * n_panels / groups,
                       (g + 1) * n_panels / groups, bp + (pc - ps) * b->nc, apack, rowp);
}

/* Depth chunks of a product split along k (gemm_run_split), or 1: a product
 * of one row block and a few panels whose depth is long (a Dense layer's
 * forward, 128 x 9216 x 128). Split by columns, each thread would read all
 * of A (4.7 MB) and pack its panels' whole depth (2.4 MB, past L2) to read
 * it back; split by depth, each reads its chunks' part of A and of B once.
 * The count depends on the shape only, so the sums do not depend on the
 * thread count. */
static ptrdiff_t depth_chunks(const fc_gemm_plan *p, const fc_kernel_set *ks)
{
    if (p->m > ks->mc || p->n > FC_GEMM_SPLIT_MAX_PANELS * ks->nr || p->rows_a
        || p->accumulate || p->k < 2 * FC_GEMM_SPLIT_DEPTH)
        return 1;
    return fc_min(FC_GEMM_SPLIT_MAX_CHUNKS, p->k / FC_GEMM_SPLIT_DEPTH);
}

/* C = bias + sum over the depth chunks of A[:, chunk] B[chunk, :], ReLU:
 * every chunk's product is summed into its own m x n block of partial sums
 * (in depth blocks of up to a quarter over the nominal KC, all panels of B
 * packed per block, so B's block stays in L2 for the row block's slivers),
 * the chunks spread over the threads; the thread that finishes last adds the
 * blocks to the bias in chunk order (no barrier: a sleeping thread's wake-up
 * costs 40-60 us). */
static int gemm_run_split(const fc_gemm_plan *p, const fc_kernel_set *ks, ptrdiff_t chunks,
                          int n_threads)
{
    const int MR = ks->mr, NR = ks->nr;
    const ptrdiff_t M = p->m, N = p->n, K = p->k, n_panels = fc_ceil_div(N, NR);
    const ptrdiff_t kc_max = depth_block_max(ks);
    const ptrdiff_t ptr_floats = (ptrdiff_t)sizeof(float *) / (ptrdiff_t)sizeof(float);
    const ptrdiff_t a_floats = fc_round_up(M, MR) * kc_max, b_floats = n_panels * NR * kc_max;
    const ptrdiff_t ws_floats = fc_thread_stride(a_floats + b_floats + M * ptr_floats);
    const ptrdiff_t part_floats = fc_thread_stride(M * N);
    const int threads = (int)fc_min(chunks, fc_threads_for((double)M * N * K, FC_GRAIN_GEMM,
                                                            n_threads));
    float *ws_all = fc_aligned_alloc((size_t)(ws_floats * threads + part_floats * chunks)
                                     * sizeof(float));
    if (!ws_all)
        return FC_ERR_NOMEM;
    float *partial = ws_all + ws_floats * threads;
    /* The chunks' products have no bias, ReLU or streaming stores: those
     * belong to the sum. */
    fc_gemm_plan q = *p;
    q.bias = NULL;
    q.relu = 0;
    q.stream = 0;
    atomic_int finished = 0;

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads) if (threads > 1))
    {
        fc_fp_state fp = fc_fp_enter();
        const int t = fc_thread_id();
        float *apack = ws_all + ws_floats * t, *bpack = apack + a_floats;
        float **rowp = (float **)(bpack + b_floats);
        /* A packed block's rows past the last are read by the micro-kernel:
         * keep them finite. */
        if (p->pack_a)
            memset(apack, 0, (size_t)a_floats * sizeof(float));
        for (ptrdiff_t s = t * chunks / threads; s < (t + 1) * chunks / threads; ++s) {
            const ptrdiff_t p0 = s * K / chunks, p1 = (s + 1) * K / chunks;
            const ptrdiff_t kc = fc_ceil_div(p1 - p0, fc_ceil_div(p1 - p0, kc_max));
            for (ptrdiff_t i = 0; i < M; ++i)
                rowp[i] = partial + s * part_floats + i * N;
            for (ptrdiff_t pc = p0; pc < p1; pc += kc) {
                const ptrdiff_t kb = fc_min(kc, p1 - pc);
                for (ptrdiff_t jp = 0; jp < n_panels; ++jp)
                    if (!in_place_panel(p, jp * NR, NR))
                        p->pack_b(p->b_ctx, pc, kb, jp * NR, fc_min(NR, N - jp * NR), NR,
                                  bpack + jp * NR * kb);
                multiply_block(&q, ks, 0, M, p0, pc, kb, 0, 0, n_panels, bpack, apack, rowp);
            }
        }
        if (atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel) == threads - 1) {
            float **crow = rowp;
            fc_row_ptrs(&p->c, 0, M, crow);
            for (ptrdiff_t i = 0; i < M; ++i) {
                float *c = crow[i];
                for (ptrdiff_t j = 0; j < N; ++j)
                    c[j] = p->bias ? p->bias[j] : 0.0f;
                for (ptrdiff_t s = 0; s < chunks; ++s) {
                    const float *part = partial + s * part_floats + i * N;
                    for (ptrdiff_t j = 0; j < N; ++j)
                        c[j] += part[j];
                }
                if (p->relu)
                    for (ptrdiff_t j = 0; j < N; ++j) /* keeps NaN */
                        c[j] = c[j] < 0.0f ? 0.0f : c[j];
            }
        }
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(ws_all);
    return FC_OK;
}

ptrdiff_t fc_gemm_serial_max_n(void)
{
    return fc_kernels()->nc;
}

ptrdiff_t fc_gemm_packed_b_floats(const fc_gemm_plan *p)
{
    const fc_kernel_set *ks = fc_kernels_for(p->n);
    return p->k * fc_round_up(p->n, ks->nr);
}

ptrdiff_t fc_gemm_max_kc(ptrdiff_t n)
{
    return depth_block_max(fc_kernels_for(n));
}

/* The serial workspace's packed A block, the row pointers after it. A
 * shallower product may take deeper blocks (240 rows: one block of 240; 510:
 * three of 170), so the block is sized for the deepest up to p's depth. */
static ptrdiff_t serial_a_floats(const fc_gemm_plan *p, const fc_kernel_set *ks,
                                 const gemm_blocking *b)
{
    return fc_round_up(b->mc, ks->mr) * fc_min(p->k, depth_block_max(ks));
}

ptrdiff_t fc_gemm_serial_ws_floats(const fc_gemm_plan *p)
{
    const fc_kernel_set *ks = fc_kernels_for(p->n);
    const gemm_blocking b = blocking_of(p, ks, 1);
    const ptrdiff_t ptr_floats = (ptrdiff_t)sizeof(float *) / (ptrdiff_t)sizeof(float);
    return serial_a_floats(p, ks, &b) + b.mc * ptr_floats;
}

/* B packed whole, as one of fc_gemm_run's whole-B stages: depth block pc's
 * panels from b_packed + pc * nc (n rounded up to whole panels), nr * kc
 * floats apart. */
void fc_gemm_pack_b(const fc_gemm_plan *p, float *b_packed)
{
    const fc_kernel_set *ks = fc_kernels_for(p->n);
    const gemm_blocking b = blocking_of(p, ks, 1);
    const ptrdiff_t n_pc = fc_ceil_div(p->k, b.kc), n_panels = fc_ceil_div(p->n, ks->nr);
    for (ptrdiff_t item = 0; item < n_pc * n_panels; ++item)
        pack_b_item(p, &b, ks->nr, item, n_pc, 0, 0, p->n, b_packed);
}

void fc_gemm_run_serial(const fc_gemm_plan *p, const float *b_packed, float *ws)
{
    const fc_kernel_set *ks = fc_kernels_for(p->n);
    if (p->m <= 0 || p->n <= 0)
        return;
    if (p->k <= 0) {
        if (!p->accumulate)
            write_bias_only(p);
        return;
    }
    const gemm_blocking b = blocking_of(p, ks, 1);
    float **rowp = (float **)(ws + serial_a_floats(p, ks, &b));
    for (ptrdiff_t item = 0; item < b.n_ic; ++item)
        multiply_item(p, ks, &b, item, 1, 0, fc_ceil_div(p->n, ks->nr), 0, p->k, b_packed, ws,
                      rowp);
}

/* Whether each thread should take columns of C of its own
 * (gemm_run_private_b): B past half an L2; panels that the threads share
 * evenly, or at least 8 each (a weight gradient's 9 panels on 2 threads,
 * 4 and 5, took 6-14 % longer than by row blocks); and A, which every
 * thread then reads whole, at most FC_GEMM_PRIVATE_B_MAX_ROWS_PER_COLUMN
 * times as many rows as B has columns. */
static int private_b_pays(const fc_gemm_plan *p, const fc_kernel_set *ks, const gemm_blocking *b)
{
    const ptrdiff_t n_panels = fc_ceil_div(p->n, ks->nr), threads = b->n_threads;
    return threads > 1 && p->k * p->n > FC_GEMM_WHOLE_B_FLOATS
           && n_panels >= 2 * threads && (n_panels % threads == 0 || n_panels >= 8 * threads)
           && p->m <= FC_GEMM_PRIVATE_B_MAX_ROWS_PER_COLUMN * p->n;
}

/* C = A B with each thread computing whole panels of its own: it packs its
 * part of B a depth block at a time into memory no other thread reads (so
 * no barrier between depth blocks, and the block stays in its core's cache
 * for every row block), and takes A's row blocks itself. Each C tile sums
 * the depth blocks in order, as fc_gemm_run's other schedules do. */
static int gemm_run_private_b(const fc_gemm_plan *p, const fc_kernel_set *ks,
                              const gemm_blocking *b)
{
    const int NR = ks->nr, threads = b->n_threads;
    const ptrdiff_t M = p->m, N = p->n, K = p->k, KC = b->kc, n_panels = fc_ceil_div(N, NR);
    /* A thread's panels in column blocks of at most NC, as fc_gemm_run's. */
    const ptrdiff_t block_panels = fc_max(1, ks->nc / NR);
    const ptrdiff_t b_floats = fc_thread_stride(
        KC * fc_min(fc_ceil_div(n_panels, threads), block_panels) * NR);
    const ptrdiff_t ws_floats = b_floats + b->ws_bytes / (ptrdiff_t)sizeof(float);
    float *mem = fc_aligned_alloc((size_t)(ws_floats * threads) * sizeof(float));
    if (!mem)
        return FC_ERR_NOMEM;
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads))
    {
        fc_fp_state fp = fc_fp_enter();
        const int t = fc_thread_id();
        float *bpack = mem + ws_floats * t, *apack = bpack + b_floats;
        memset(apack, 0, (size_t)b->ws_bytes); /* rows past the last: finite */
        float **rowp = (float **)((char *)apack + b->a_floats * (ptrdiff_t)sizeof(float));
        const ptrdiff_t jp_end = (t + 1) * n_panels / threads;
        for (ptrdiff_t jp0 = t * n_panels / threads; jp0 < jp_end; jp0 += block_panels) {
            const ptrdiff_t jp1 = fc_min(jp_end, jp0 + block_panels);
            for (ptrdiff_t pc = 0; pc < K; pc += KC) {
                const ptrdiff_t kc = fc_min(KC, K - pc);
                for (ptrdiff_t jp = jp0; jp < jp1; ++jp)
                    if (!in_place_panel(p, jp * NR, NR))
                        p->pack_b(p->b_ctx, pc, kc, jp * NR, fc_min(NR, N - jp * NR), NR,
                                  bpack + (jp - jp0) * NR * kc);
                for (ptrdiff_t ic = 0; ic < b->n_ic; ++ic) {
                    const ptrdiff_t i0 = row_start(ic, b->n_ic, M, ks->mr);
                    const ptrdiff_t mc = row_start(ic + 1, b->n_ic, M, ks->mr) - i0;
                    fc_row_ptrs(&p->c, i0, mc, rowp);
                    multiply_block(p, ks, i0, mc, 0, pc, kc, jp0 * NR, 0, jp1 - jp0, bpack,
                                   apack, rowp);
                }
            }
        }
        if (p->stream)
            fc_store_fence();
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(mem);
    return FC_OK;
}

int fc_gemm_run(const fc_gemm_plan *p, int n_threads)
{
    const fc_kernel_set *ks = fc_kernels_for(p->n);
    const int NR = ks->nr;
    const ptrdiff_t M = p->m, N = p->n, K = p->k;
    if (M <= 0 || N <= 0)
        return FC_OK;
    if (K <= 0) {
        if (!p->accumulate)
            write_bias_only(p);
        return FC_OK;
    }
    const ptrdiff_t chunks = depth_chunks(p, ks);
    if (chunks > 1)
        return gemm_run_split(p, ks, chunks, n_threads);
    const gemm_blocking b = blocking_of(p, ks, n_threads);
    if (private_b_pays(p, ks, &b))
        return gemm_run_private_b(p, ks, &b);
    const ptrdiff_t KC = b.kc, NC = b.nc;
    float *bpack = fc_aligned_alloc((size_t)((b.whole_b ? K : KC) * NC) * sizeof(float));
    char *thread_ws = fc_aligned_alloc((size_t)(b.ws_bytes * b.n_threads));
    if (!bpack || !thread_ws) {
        fc_aligned_free(bpack);
        fc_aligned_free(thread_ws);
        return FC_ERR_NOMEM;
    }

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(b.n_threads) if (b.n_threads > 1))
    {
        fc_fp_state fp = fc_fp_enter();
        char *ws = thread_ws + b.ws_bytes * fc_thread_id();
        /* Rows past the last valid one are read by the micro-kernel: keep
         * them finite. Each thread clears its own part, in parallel. */
        memset(ws, 0, (size_t)b.ws_bytes);
        float *apack = (float *)ws;
        float **rowp = (float **)(ws + b.a_floats * (ptrdiff_t)sizeof(float));

        for (ptrdiff_t jc = 0; jc < N; jc += NC) {
            const ptrdiff_t nc = fc_min(NC, N - jc);
            const ptrdiff_t n_panels = fc_ceil_div(nc, NR);
            const ptrdiff_t groups = column_groups(b.n_ic, n_panels, b.n_threads);
            /* B is packed a stage at a time: all of its depth blocks at once
             * (whole_b) or one. Within a stage, depth block pc's panels start
             * at bpack + (pc - ps) * NC, handed out in the order the row
             * blocks' column groups take them (with few row blocks, a thread
             * packs what it uses). */
            const ptrdiff_t stage = b.whole_b ? K : KC;
            for (ptrdiff_t ps = 0; ps < K; ps += stage) {
                const ptrdiff_t pe = fc_min(K, ps + stage), n_pc = fc_ceil_div(pe - ps, KC);
                /* B's buffer is packed again only once every thread is done
                 * with the last stage. (No barrier after the last stage: the
                 * region's end waits anyway, and with sleeping threads each
                 * barrier costs a wake-up.) */
#ifdef _OPENMP
                if (jc > 0 || ps > 0) {
#pragma omp barrier
                }
#pragma omp for schedule(static)
#endif
                for (ptrdiff_t item = 0; item < n_pc * n_panels; ++item)
                    pack_b_item(p, &b, NR, item, n_pc, ps, jc, nc, bpack);
                FC_OMP(omp for schedule(static) nowait)
                for (ptrdiff_t item = 0; item < b.n_ic * groups; ++item)
                    multiply_item(p, ks, &b, item, groups, jc, n_panels, ps, pe, bpack, apack, rowp);
            }
        }
        if (p->stream)
            fc_store_fence();
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(bpack);
    fc_aligned_free(thread_ws);
    return FC_OK;
}

int fc_gemm_run_batch(const fc_gemm_plan *plans, int count, int n_threads)
{
    ptrdiff_t widest = 0;
    for (int i = 0; i < count; ++i)
        widest = fc_max(widest, plans[i].n);
    const fc_kernel_set *ks = fc_kernels_for(widest);
    const int NR = ks->nr;
    gemm_blocking b[FC_GEMM_MAX_BATCH];
    ptrdiff_t b_off[FC_GEMM_MAX_BATCH + 1], pack_end[FC_GEMM_MAX_BATCH], item_end[FC_GEMM_MAX_BATCH];
    ptrdiff_t groups[FC_GEMM_MAX_BATCH], n_panels[FC_GEMM_MAX_BATCH];
    double work = 0.0;
    for (int i = 0; i < count; ++i)
        work += (double)plans[i].m * plans[i].n * plans[i].k;
    const int threads = fc_threads_for(work, FC_GRAIN_GEMM, n_threads);
    /* Together only when each is one whole-B stage of one column block (and
     * not empty), on several threads: else there is no barrier to save. */
    int together = count > 1 && count <= FC_GEMM_MAX_BATCH && threads > 1;
    ptrdiff_t ws_bytes = 0;
    b_off[0] = 0;
    for (int i = 0; i < count && together; ++i) {
        const fc_gemm_plan *p = &plans[i];
        /* An empty product first: blocking_of divides by its sizes. */
        together = p->m > 0 && p->n > 0 && p->k > 0 && depth_chunks(p, ks) == 1;
        if (!together)
            break;
        b[i] = blocking_of(p, ks, threads);
        together = p->n <= b[i].nc && p->k * b[i].nc <= FC_GEMM_WHOLE_B_MAX_FLOATS;
        b[i].n_threads = threads;
        n_panels[i] = fc_ceil_div(p->n, NR);
        groups[i] = column_groups(b[i].n_ic, n_panels[i], threads);
        b_off[i + 1] = b_off[i] + fc_round_up(p->k * b[i].nc, FC_ALIGN_FLOATS);
        pack_end[i] = (i ? pack_end[i - 1] : 0) + fc_ceil_div(p->k, b[i].kc) * n_panels[i];
        item_end[i] = (i ? item_end[i - 1] : 0) + b[i].n_ic * groups[i];
        ws_bytes = fc_max(ws_bytes, b[i].ws_bytes);
    }
    if (!together) {
        for (int i = 0; i < count; ++i)
            if (fc_gemm_run(&plans[i], n_threads) != FC_OK)
                return FC_ERR_NOMEM;
        return FC_OK;
    }
    float *bpack = fc_aligned_alloc((size_t)b_off[count] * sizeof(float));
    char *thread_ws = fc_aligned_alloc((size_t)(ws_bytes * threads));
    if (!bpack || !thread_ws) {
        fc_aligned_free(bpack);
        fc_aligned_free(thread_ws);
        return FC_ERR_NOMEM;
    }
    int stream = 0;
    for (int i = 0; i < count; ++i)
        stream |= plans[i].stream;
    const ptrdiff_t n_pack = pack_end[count - 1], n_items = item_end[count - 1];

    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(threads))
    {
        fc_fp_state fp = fc_fp_enter();
        char *ws = thread_ws + ws_bytes * fc_thread_id();
        memset(ws, 0, (size_t)ws_bytes);
        float *apack = (float *)ws;
        /* Every GEMM's B, packed whole, then one barrier. */
        FC_OMP(omp for schedule(static))
        for (ptrdiff_t item = 0; item < n_pack; ++item) {
            const int i = batch_member(item, pack_end);
            pack_b_item(&plans[i], &b[i], NR, item - (i ? pack_end[i - 1] : 0),
                        fc_ceil_div(plans[i].k, b[i].kc), 0, 0, plans[i].n, bpack + b_off[i]);
        }
        /* Then every GEMM's row blocks, handed out as threads free up: the
         * GEMMs differ in depth, so equal counts would not be equal work. */
        FC_OMP(omp for schedule(dynamic) nowait) /* the region's end waits */
        for (ptrdiff_t item = 0; item < n_items; ++item) {
            const int i = batch_member(item, item_end);
            float **rowp = (float **)(ws + b[i].a_floats * (ptrdiff_t)sizeof(float));
            multiply_item(&plans[i], ks, &b[i], item - (i ? item_end[i - 1] : 0), groups[i], 0,
                          n_panels[i], 0, plans[i].k, bpack + b_off[i], apack, rowp);
        }
        if (stream)
            fc_store_fence();
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    fc_aligned_free(bpack);
    fc_aligned_free(thread_ws);
    return FC_OK;
}

/* Columns [j0, j1) of C for at most FC_SMALL_M rows, FC_SMALL_M_COLS at a
 * time: every element summed in order of k from its bias, in one pass over
 * those columns of B (the sums live in L1; the pass is bound by reading B:
 * two passes over halves of its rows cost as much as two over all of it). */
FC_VECTOR_CLONES static void small_m_columns(const fc_gemm_desc *d, const float *a,
                                             const float *b, const float *bias, float *c,
                                             ptrdiff_t j0, ptrdiff_t j1)
{
    const ptrdiff_t m = d->m;
    float acc[FC_SMALL_M * FC_SMALL_M_COLS];
    for (ptrdiff_t jb = j0; jb < j1; jb += FC_SMALL_M_COLS) {
        const ptrdiff_t nb = fc_min(FC_SMALL_M_COLS, j1 - jb);
        for (ptrdiff_t i = 0; i < m; ++i)
            for (ptrdiff_t j = 0; j < nb; ++j)
                acc[i * nb + j] = bias ? bias[jb + j] : 0.0f;
        for (ptrdiff_t p = 0; p < d->k; ++p) {
            const float *brow = b + p * d->ldb + jb;
            for (ptrdiff_t i = 0; i < m; ++i) {
                const float aip = d->trans_a ? a[p * d->lda + i] : a[i * d->lda + p];
                float *row = acc + i * nb;
                for (ptrdiff_t j = 0; j < nb; ++j)
                    row[j] += aip * brow[j];
            }
        }
        for (ptrdiff_t i = 0; i < m; ++i)
            for (ptrdiff_t j = 0; j < nb; ++j) { /* v < 0 is false for a NaN v, which stays */
                const float v = acc[i * nb + j];
                c[i * d->ldc + jb + j] = d->relu && v < 0.0f ? 0.0f : v;
            }
    }
}

/* C = A B (+ bias) (ReLU) for at most FC_SMALL_M rows and a row-major B:
 * each thread takes a range of columns, whole vectors of 16. */
static int gemm_small_m(const fc_gemm_desc *d, const float *a, const float *b, const float *bias,
                        float *c, int n_threads)
{
    const ptrdiff_t groups = fc_ceil_div(d->n, 16);
    if (d->m <= 0 || groups == 0)
        return FC_OK;
    const double work = (double)d->m * d->n * d->k;
    n_threads = (int)fc_min(fc_threads_for(work, FC_GRAIN_GEMM, n_threads), groups);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        const fc_fp_state fp = fc_fp_enter();
        const ptrdiff_t t = fc_thread_id();
        small_m_columns(d, a, b, bias, c, fc_min(d->n, t * groups / n_threads * 16),
                        fc_min(d->n, (t + 1) * groups / n_threads * 16));
        fc_fp_leave(fp);
        fc_team_leave(&team);
    }
    return FC_OK;
}

int fc_gemm_f32(const fc_gemm_desc *d, const float *a, const float *b,
                const float *bias, float *c, int n_threads)
{
    if (d->m <= FC_SMALL_M && d->k > 0 && !d->trans_b)
        return gemm_small_m(d, a, b, bias, c, n_threads);
    const ptrdiff_t tap0 = 0;
    fc_plain_matrix am = {a, d->lda};
    fc_tapped_matrix bm = {b, d->ldb, d->k > 0 ? d->k : 1, &tap0};
    fc_gemm_plan plan = {0};
    plan.m = d->m;
    plan.n = d->n;
    plan.k = d->k;
    plan.pack_a = pack_a_plain;
    plan.a_ctx = &am;
    plan.a_interleaved = 0;
    plan.pack_b = fc_pack_b_tapped;
    plan.b_ctx = &bm;
    plan.c.base = c;
    plan.c.ga = 1;
    plan.c.gb = d->m > 0 ? d->m : 1;
    plan.c.s_img = 0;
    plan.c.s_a = 0;
    plan.c.s_b = d->ldc;
    plan.bias = bias;
    plan.relu = d->relu;
    /* A large C written in one pass bypasses the cache: it would not fit, and
     * each line it evicts would first be read. */
    plan.stream = (double)d->m * d->n >= (double)fc_stream_min_floats();
    fc_plain_matrix bt = {b, d->ldb};
    if (!d->trans_b && d->m <= FC_GEMM_B_IN_PLACE_MAX_M) {
        plan.b_rows = b;
        plan.b_ld = d->ldb;
    }
    if (d->trans_b) {
        plan.pack_b = fc_pack_b_transposed;
        plan.b_ctx = &bt;
    }
    if (d->trans_a) { /* the micro-kernel reads columns of A in place */
        plan.pack_a = NULL;
        plan.a_base = a;
        plan.a_rs = 1;
        plan.a_cs = d->lda;
    } else if (d->lda % 1024 != 0 || d->n <= FC_GEMM_ALIASED_A_MAX_PANELS * fc_kernels_for(d->n)->nr) {
        /* Row-major A blocks are read in place rather than copied, except
         * rows a multiple of 4 KiB apart, which alias in L1 (all MR rows of a
         * sliver share one set), when B has many panels to read each sliver
         * again. */
        plan.pack_a = NULL;
        plan.a_base = a;
        plan.a_rs = d->lda;
        plan.a_cs = 1;
    }
    return fc_gemm_run(&plan, n_threads);
}
