/* The SIMD micro-kernel and peak probe, written once for any vector width.
 * Included by one file per kernel set (gemm_kernels_avx2.c,
 * gemm_kernels_avx512.c, gemm_kernels_avx512_narrow.c,
 * gemm_kernels_avx512_single.c), which first includes
 * its ISA's vector vocabulary (simd_avx2.h, simd_avx512.h: VEC, VW, V_LOADU,
 * V_FMA, ...) and defines:
 *   MR, NR       the tile: MR must be 6, NR 1, 2 or 4 vectors of VW floats
 *   KERNEL_NAME  the kernel set's name, SET_FN the function returning it,
 *   MC, KC, NC   its block sizes,
 *   NARROW_FN    optionally, the function returning its narrow set.
 *
 * The tile is MR x (NR / VW vectors), held in that many accumulators. Per
 * step of k: NR / VW loads of B, MR broadcasts of A, MR * NR / VW FMAs: with
 * 12 or more, enough independent chains to fill two FMA pipes of latency
 * 4-5 (Haswell to Zen 4, Skylake-X). A tile of 2 vectors is 6 x 16 in AVX2's
 * 16 registers; AVX-512's 32 hold 6 x 64 (24 accumulators, 4 of B, 1 of A).
 * A tile of one vector has only 6 chains, which hold the pipes three
 * quarters busy: it serves products of one vector's columns, where two
 * would multiply as many zeros. A panel with at most half the tile's
 * columns valid takes only the first half of the tile's vectors. */

/* NV vectors across the tile: 1, 2 or 4. */
#define NV (NR / VW)

/* The accumulators are named variables, not an array: an array of vectors
 * was kept in memory around the loop (GCC 12), 48 extra stores and 24 loads
 * per tile. Row i's are ci0..ci3; with nv = 2 the last two go unused. A
 * full tile written with a bias starts from the bias instead of zero, which
 * saves the write-out its adds (S7's forward, k = 64: 1.3-2 %). */
#define TILE_ACCUMULATORS                                                         \
    const int from_bias = !ep->accumulate && ep->bias && ep->mr == MR            \
                          && ep->nr == nv * VW;                                   \
    const VEC init0 = from_bias ? V_LOADU(ep->bias) : V_ZERO();                   \
    const VEC init1 = from_bias && nv > 1 ? V_LOADU(ep->bias + VW) : V_ZERO();    \
    const VEC init2 = from_bias && nv > 2 ? V_LOADU(ep->bias + 2 * VW) : V_ZERO(); \
    const VEC init3 = from_bias && nv > 2 ? V_LOADU(ep->bias + 3 * VW) : V_ZERO(); \
    VEC c00 = init0, c01 = init1, c02 = init2, c03 = init3;                       \
    VEC c10 = init0, c11 = init1, c12 = init2, c13 = init3;                       \
    VEC c20 = init0, c21 = init1, c22 = init2, c23 = init3;                       \
    VEC c30 = init0, c31 = init1, c32 = init2, c33 = init3;                       \
    VEC c40 = init0, c41 = init1, c42 = init2, c43 = init3;                       \
    VEC c50 = init0, c51 = init1, c52 = init2, c53 = init3

/* Row i of one step: its element of A, broadcast, times the step's B vectors. */
#define ROW_STEP(i, p, cs)                                                        \
    do {                                                                          \
        const VEC ai = V_SET1(a##i[(p) * (cs)]);                                  \
        c##i##0 = V_FMA(ai, b0, c##i##0);                                         \
        if (nv > 1)                                                               \
            c##i##1 = V_FMA(ai, b1, c##i##1);                                     \
        if (nv > 2) {                                                             \
            c##i##2 = V_FMA(ai, b2, c##i##2);                                     \
            c##i##3 = V_FMA(ai, b3, c##i##3);                                     \
        }                                                                         \
    } while (0)

/* One step of k of the tile's first nv vectors (nv a constant): rows a0..a5
 * of A (element p of row i at ai[p * cs]) times B's row at b, which then
 * advances bs floats to the next (bs: NR in a packed panel, a constant, or
 * B's row length when B is read in place). */
#define TILE_STEP(p, cs)                                                          \
    do {                                                                          \
        const VEC b0 = V_LOADU(b), b1 = nv > 1 ? V_LOADU(b + VW) : b0;            \
        const VEC b2 = nv > 2 ? V_LOADU(b + 2 * VW) : b0;                         \
        const VEC b3 = nv > 2 ? V_LOADU(b + 3 * VW) : b1;                         \
        ROW_STEP(0, p, cs); ROW_STEP(1, p, cs); ROW_STEP(2, p, cs);               \
        ROW_STEP(3, p, cs); ROW_STEP(4, p, cs); ROW_STEP(5, p, cs);               \
        b += bs;                                                                  \
    } while (0)

/* Two lines of the tile's share of the caller's prefetch queue (pf, up to
 * ep->prefetch_end: see fc_prefetch_queue), fetched every four steps; the
 * last pair may reach a line past the share (a prefetch never faults). */
#define QUEUE_PREFETCH()                                                          \
    do {                                                                          \
        if (pf < ep->prefetch_end) {                                              \
            V_PREFETCH(pf);                                                       \
            V_PREFETCH(pf + 64);                                                  \
            pf += 128;                                                            \
        }                                                                         \
    } while (0)

/* kc steps, unrolled: the loop's index, compare and branch would otherwise
 * take issue slots from the FMAs of each step (unrolled, 1024^3 runs 7 %
 * faster on a Xeon, S7 forward 10 %). With fetch_next (cs = 1), each line
 * of the next sliver's rows n0..n5 (the caller's) is prefetched, once per
 * 16 steps. Steps past the unrolled groups fetch nothing from the prefetch
 * queue. */
#define TILE_STEPS(kc, cs, fetch_next)                                            \
    do {                                                                          \
        ptrdiff_t p = 0;                                                          \
        const char *pf = ep->prefetch;                                            \
        if (fetch_next) {                                                         \
            for (; p + 16 <= (kc); p += 16) {                                     \
                V_PREFETCH(n0 + p); V_PREFETCH(n1 + p); V_PREFETCH(n2 + p);       \
                V_PREFETCH(n3 + p); V_PREFETCH(n4 + p); V_PREFETCH(n5 + p);       \
                _Pragma("GCC unroll 16")                                          \
                for (ptrdiff_t q = p; q < p + 16; ++q) {                          \
                    if ((q - p) % 4 == 0)                                         \
                        QUEUE_PREFETCH();                                         \
                    TILE_STEP(q, cs);                                             \
                }                                                                 \
            }                                                                     \
        } else {                                                                  \
            for (; p + 4 <= (kc); p += 4) {                                       \
                QUEUE_PREFETCH();                                                 \
                _Pragma("GCC unroll 4")                                           \
                for (ptrdiff_t q = p; q < p + 4; ++q)                             \
                    TILE_STEP(q, cs);                                             \
            }                                                                     \
        }                                                                         \
        for (; p < (kc); ++p)                                                     \
            TILE_STEP(p, cs);                                                     \
    } while (0)

/* C is read at the end when accumulating: start fetching it now. */
static inline __attribute__((always_inline)) void
prefetch_c(float *const *crow, const fc_tile_epilogue *ep)
{
    if (ep->accumulate)
        for (int i = 0; i < ep->mr; ++i)
            for (int j = 0; j < NR; j += 16) /* a 64-byte line at a time */
                V_PREFETCH(crow[i] + j);
}

/* Vector j of a row of a full tile: the accumulator v (which started from the
 * bias, if any) with the rest of the epilogue applied. */
static inline __attribute__((always_inline)) VEC
epilogue(VEC v, const float *c, int j, const fc_tile_epilogue *ep)
{
    if (ep->accumulate)
        v = V_ADD(v, V_LOADU(c + j * VW));
    if (ep->relu) /* max(0, v) returns v when v is NaN */
        v = V_MAX(V_ZERO(), v);
    return v;
}

/* Row c of a full tile's first nv vectors (v0..v3) through the epilogue. */
static inline __attribute__((always_inline)) void
store_row(const int nv, float *c, VEC v0, VEC v1, VEC v2, VEC v3, const fc_tile_epilogue *ep)
{
    v0 = epilogue(v0, c, 0, ep);
    if (nv > 1)
        v1 = epilogue(v1, c, 1, ep);
    if (nv > 2) {
        v2 = epilogue(v2, c, 2, ep);
        v3 = epilogue(v3, c, 3, ep);
    }
    if (ep->stream && ((uintptr_t)c & 63) == 0) {
        V_STREAM(c, v0);
        if (nv > 1)
            V_STREAM(c + VW, v1);
        if (nv > 2) {
            V_STREAM(c + 2 * VW, v2);
            V_STREAM(c + 3 * VW, v3);
        }
    } else {
        V_STOREU(c, v0);
        if (nv > 1)
            V_STOREU(c + VW, v1);
        if (nv > 2) {
            V_STOREU(c + 2 * VW, v2);
            V_STOREU(c + 3 * VW, v3);
        }
    }
}

/* The first n (1-4) vectors of row c of a partial tile (fewer rows or
 * columns than the tile's) through the epilogue, which here also adds the
 * bias: a partial tile's accumulators start from zero. The same operations
 * in the same order as fc_tile_store's, so the same bits. */
static inline __attribute__((always_inline)) VEC
partial_epilogue(VEC v, const float *c, int j, const fc_tile_epilogue *ep)
{
    if (!ep->accumulate && ep->bias)
        v = V_ADD(v, V_LOADU(ep->bias + j * VW));
    return epilogue(v, c, j, ep);
}

static inline __attribute__((always_inline)) void
store_row_part(int n, float *c, VEC v0, VEC v1, VEC v2, VEC v3, const fc_tile_epilogue *ep)
{
    V_STOREU(c, partial_epilogue(v0, c, 0, ep));
    if (n > 1)
        V_STOREU(c + VW, partial_epilogue(v1, c, 1, ep));
    if (n > 2)
        V_STOREU(c + 2 * VW, partial_epilogue(v2, c, 2, ep));
    if (n > 3)
        V_STOREU(c + 3 * VW, partial_epilogue(v3, c, 3, ep));
}

/* Row i of the accumulators into row i of an edge tile held in memory. */
#define SPILL_ROW(i)                                                              \
    do {                                                                          \
        V_STOREU(tile + i * FC_NR_MAX, c##i##0);                                  \
        if (nv > 1)                                                               \
            V_STOREU(tile + i * FC_NR_MAX + VW, c##i##1);                         \
        if (nv > 2) {                                                             \
            V_STOREU(tile + i * FC_NR_MAX + 2 * VW, c##i##2);                     \
            V_STOREU(tile + i * FC_NR_MAX + 3 * VW, c##i##3);                     \
        }                                                                         \
    } while (0)

/* Writes the accumulators' first nv vectors to C through the epilogue: a
 * full tile, a tile of whole vectors (fewer rows, or columns: a backward-
 * input pass onto 16 channels fills half of a 32-wide tile, which through
 * the scalar store below took 13 % of the default model's second
 * convolution's backward), else any other edge tile through memory. */
#define STORE_ACCUMULATORS(crow, ep)                                              \
    do {                                                                          \
        if ((ep)->mr == MR && (ep)->nr == nv * VW) {                              \
            store_row(nv, (crow)[0], c00, c01, c02, c03, ep);                     \
            store_row(nv, (crow)[1], c10, c11, c12, c13, ep);                     \
            store_row(nv, (crow)[2], c20, c21, c22, c23, ep);                     \
            store_row(nv, (crow)[3], c30, c31, c32, c33, ep);                     \
            store_row(nv, (crow)[4], c40, c41, c42, c43, ep);                     \
            store_row(nv, (crow)[5], c50, c51, c52, c53, ep);                     \
        } else if ((ep)->nr % VW == 0) {                                          \
            const int n_ = (ep)->nr / VW, m_ = (ep)->mr;                          \
            store_row_part(n_, (crow)[0], c00, c01, c02, c03, ep);                \
            if (m_ > 1)                                                           \
                store_row_part(n_, (crow)[1], c10, c11, c12, c13, ep);            \
            if (m_ > 2)                                                           \
                store_row_part(n_, (crow)[2], c20, c21, c22, c23, ep);            \
            if (m_ > 3)                                                           \
                store_row_part(n_, (crow)[3], c30, c31, c32, c33, ep);            \
            if (m_ > 4)                                                           \
                store_row_part(n_, (crow)[4], c40, c41, c42, c43, ep);            \
            if (m_ > 5)                                                           \
                store_row_part(n_, (crow)[5], c50, c51, c52, c53, ep);            \
        } else {                                                                  \
            float tile[FC_MR_MAX * FC_NR_MAX];                                    \
            SPILL_ROW(0); SPILL_ROW(1); SPILL_ROW(2);                             \
            SPILL_ROW(3); SPILL_ROW(4); SPILL_ROW(5);                             \
            fc_tile_store(tile, crow, ep);                                        \
        }                                                                         \
    } while (0)

/* Element (i, p) of A is a_i[p * cs]. Inlined for cs = 1 (row-major rows)
 * and cs = MR (interleaved panel), so the compiler folds the stride, and for
 * any other column stride with unit row stride (a transposed row-major block). */
static inline __attribute__((always_inline)) void
tile_mr_nv(const int nv, ptrdiff_t kc, const float *a, ptrdiff_t rs, const ptrdiff_t cs,
           const float *b, const ptrdiff_t bs, float *const *crow, const fc_tile_epilogue *ep)
{
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs;
    const float *a3 = a + 3 * rs, *a4 = a + 4 * rs, *a5 = a + 5 * rs;
    /* Row-major rows read in place usually stream from memory: fetch the
     * next sliver's (the rows below) a line at a time ahead. */
    const ptrdiff_t next = MR * rs;
    const float *n0 = a0 + next, *n1 = a1 + next, *n2 = a2 + next;
    const float *n3 = a3 + next, *n4 = a4 + next, *n5 = a5 + next;
    prefetch_c(crow, ep);
    TILE_ACCUMULATORS;
    if (cs == 1)
        TILE_STEPS(kc, 1, 1);
    else
        TILE_STEPS(kc, cs, 0);
    STORE_ACCUMULATORS(crow, ep);
}

/* The whole tile, or, for a panel whose valid columns fit in half of it
 * (the last panel of a product 96 or 160 columns wide on a 64-wide tile),
 * only its first half; B a packed panel (bs = NR, a constant once inlined)
 * or read in place (bs its row length: whole panels only). */
static inline __attribute__((always_inline)) void
tile_mr_nr(ptrdiff_t kc, const float *a, ptrdiff_t rs, const ptrdiff_t cs,
           const float *b, const ptrdiff_t bs, float *const *crow, const fc_tile_epilogue *ep)
{
    if (NV > 2 && ep->nr <= NR / 2)
        tile_mr_nv(NV / 2, kc, a, rs, cs, b, bs, crow, ep);
    else
        tile_mr_nv(NV, kc, a, rs, cs, b, bs, crow, ep);
}

static inline __attribute__((always_inline)) void
tile_any_a(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a, const float *b,
           const ptrdiff_t bs, float *const *crow, const fc_tile_epilogue *ep)
{
    if (cs_a == 1)
        tile_mr_nr(kc, a, rs_a, 1, b, bs, crow, ep);
    else if (cs_a == MR)
        tile_mr_nr(kc, a, 1, MR, b, bs, crow, ep);
    else
        tile_mr_nr(kc, a, 1, cs_a, b, bs, crow, ep);
}

static void ukernel(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                    const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    tile_any_a(kc, a, rs_a, cs_a, b, NR, crow, ep);
}

/* ukernel with B's rows read in place, ep->b_ld floats apart. (A kernel of
 * its own: the same branch inside ukernel cost S7's forward 3 %.) */
static void ukernel_b_rows(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                           const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    tile_any_a(kc, a, rs_a, cs_a, b, ep->b_ld, crow, ep);
}

/* The tile summed over taps: tap t's MR rows of A are rows[t * MR + i], each
 * kc contiguous floats read in place, against the next kc rows of B. */
static inline __attribute__((always_inline)) void
taps_mr_nv(const int nv, ptrdiff_t taps, ptrdiff_t kc, const float *const *rows, const float *b,
           const ptrdiff_t bs, float *const *crow, const fc_tile_epilogue *ep)
{
    prefetch_c(crow, ep);
    TILE_ACCUMULATORS;
    const float *const *next = ep->next_rows;
    for (ptrdiff_t t = 0; t < taps; ++t, rows += MR) {
        const float *a0 = rows[0], *a1 = rows[1], *a2 = rows[2];
        const float *a3 = rows[3], *a4 = rows[4], *a5 = rows[5];
        /* The next sliver's rows of this tap, if any (see fc_tile_epilogue). */
        const float *const *nt = next ? next + t * MR : rows;
        const float *n0 = nt[0], *n1 = nt[1], *n2 = nt[2];
        const float *n3 = nt[3], *n4 = nt[4], *n5 = nt[5];
        TILE_STEPS(kc, 1, next != NULL);
    }
    STORE_ACCUMULATORS(crow, ep);
}

static void ukernel_taps(ptrdiff_t taps, ptrdiff_t kc, const float *const *rows, const float *b,
                         float *const *crow, const fc_tile_epilogue *ep)
{
    if (NV > 2 && ep->nr <= NR / 2)
        taps_mr_nv(NV / 2, taps, kc, rows, b, NR, crow, ep);
    else
        taps_mr_nv(NV, taps, kc, rows, b, NR, crow, ep);
}

static void ukernel_taps_b_rows(ptrdiff_t taps, ptrdiff_t kc, const float *const *rows,
                                const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    taps_mr_nv(NV, taps, kc, rows, b, ep->b_ld, crow, ep); /* whole panels */
}

/* Ten independent FMA chains per round: enough to cover latency x pipes. */
static float peak_loop(ptrdiff_t iters)
{
    const VEC x = V_SET1(1.0f - 1e-7f), y = V_SET1(1e-7f);
    VEC c0 = V_SET1(0.f), c1 = V_SET1(1.f), c2 = V_SET1(2.f), c3 = V_SET1(3.f);
    VEC c4 = V_SET1(4.f), c5 = V_SET1(5.f), c6 = V_SET1(6.f), c7 = V_SET1(7.f);
    VEC c8 = V_SET1(8.f), c9 = V_SET1(9.f);
    for (ptrdiff_t it = 0; it < iters; ++it) {
        c0 = V_FMA(c0, x, y); c1 = V_FMA(c1, x, y);
        c2 = V_FMA(c2, x, y); c3 = V_FMA(c3, x, y);
        c4 = V_FMA(c4, x, y); c5 = V_FMA(c5, x, y);
        c6 = V_FMA(c6, x, y); c7 = V_FMA(c7, x, y);
        c8 = V_FMA(c8, x, y); c9 = V_FMA(c9, x, y);
    }
    VEC s = V_ADD(V_ADD(V_ADD(c0, c1), V_ADD(c2, c3)), V_ADD(V_ADD(c4, c5), V_ADD(c6, c7)));
    return V_SUM(V_ADD(s, V_ADD(c8, c9)));
}

#ifndef NARROW_FN
#define NARROW_FN NULL
#endif

static const fc_kernel_set kernel_set = {
    KERNEL_NAME, MR, NR, MC, KC, NC, ukernel, ukernel_taps, ukernel_b_rows, ukernel_taps_b_rows,
    peak_loop, 10 * VW * 2, NARROW_FN,
};

const fc_kernel_set *SET_FN(void) { return &kernel_set; }
