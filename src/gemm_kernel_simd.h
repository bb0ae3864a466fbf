/* The SIMD micro-kernel and peak probe, written once for any vector width.
 * Included by one file per kernel set (gemm_kernels_avx2.c,
 * gemm_kernels_avx512.c, gemm_kernels_avx512_narrow.c), which first includes
 * its ISA's vector vocabulary (simd_avx2.h, simd_avx512.h: VEC, VW, V_LOADU,
 * V_FMA, ...) and defines:
 *   MR, NR       the tile: MR rows, NR a multiple of VW (NR / VW vectors)
 *   KERNEL_NAME  the kernel set's name, SET_FN the function returning it,
 *   MC, KC, NC   its block sizes,
 *   NARROW_FN    optionally, the function returning its narrow set.
 *
 * The tile is MR x (NR / VW vectors), held in that many accumulators. Per
 * step of k: NR / VW loads of B, MR broadcasts of A, MR * NR / VW FMAs: with
 * 12 or more, enough independent chains to fill two FMA pipes of latency
 * 4-5 (Haswell to Zen 4, Skylake-X). A tile of 2 vectors is 6 x 16 in AVX2's
 * 16 registers; AVX-512's 32 hold 6 x 64 (24 accumulators, 4 of B, 1 of A).
 * A panel with at most half the tile's columns valid takes only the first
 * half of the tile's vectors. */

/* NV vectors across the tile. */
#define NV (NR / VW)

/* One step of k of the tile's first nv vectors (nv a constant): rows
 * a[0..MR) of A (element p of row i at a[i][p * cs]) times the packed B
 * panel b, which advances past the row it used. */
#define TILE_STEP(p, cs)                                                          \
    do {                                                                          \
        VEC bv[NV];                                                               \
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v)                      \
            bv[v] = V_LOADU(b + v * VW);                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i) {                    \
            const VEC ai = V_SET1(a[i][(p) * (cs)]);                              \
            _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v)                  \
                acc[i][v] = V_FMA(ai, bv[v], acc[i][v]);                          \
        }                                                                         \
        b += NR;                                                                  \
    } while (0)

/* kc steps, unrolled: the loop's index, compare and branch would otherwise
 * take issue slots from the FMAs of each step (unrolled, 1024^3 runs 7 %
 * faster on a Xeon, S7 forward 10 %). With ahead nonzero (cs = 1), each line
 * of the rows ahead floats further is prefetched, once per 16 steps. */
#define TILE_STEPS(kc, cs, ahead)                                                 \
    do {                                                                          \
        ptrdiff_t p = 0;                                                          \
        if (ahead) {                                                              \
            for (; p + 16 <= (kc); p += 16) {                                     \
                _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i)              \
                    V_PREFETCH(a[i] + (ahead) + p);                               \
                _Pragma("GCC unroll 16")                                          \
                for (ptrdiff_t q = p; q < p + 16; ++q)                            \
                    TILE_STEP(q, cs);                                             \
            }                                                                     \
        } else {                                                                  \
            for (; p + 4 <= (kc); p += 4) {                                       \
                _Pragma("GCC unroll 4")                                           \
                for (ptrdiff_t q = p; q < p + 4; ++q)                             \
                    TILE_STEP(q, cs);                                             \
            }                                                                     \
        }                                                                         \
        for (; p < (kc); ++p)                                                     \
            TILE_STEP(p, cs);                                                     \
    } while (0)

/* Declares the tile's accumulators, zeroed. */
#define TILE_ACCUMULATORS                                                         \
    VEC acc[MR][NV];                                                              \
    _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i)                          \
        _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v)                      \
            acc[i][v] = V_ZERO()

/* C is read at the end when accumulating: start fetching it now. */
static inline __attribute__((always_inline)) void
prefetch_c(float *const *crow, const fc_tile_epilogue *ep)
{
    if (ep->accumulate)
        for (int i = 0; i < ep->mr; ++i)
            for (int v = 0; v < NR; v += 16)
                V_PREFETCH(crow[i] + v);
}

/* Writes the first nv vectors of the accumulators to C through the epilogue. */
static inline __attribute__((always_inline)) void
store_tile(const int nv, const VEC acc[MR][NV], float *const *crow, const fc_tile_epilogue *ep)
{
    if (ep->mr == MR && ep->nr == nv * VW) {
        const VEC zero = V_ZERO();
        _Pragma("GCC unroll 8") for (int i = 0; i < MR; ++i) {
            float *c = crow[i];
            VEC out[NV];
            _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v) {
                out[v] = acc[i][v];
                if (ep->accumulate)
                    out[v] = V_ADD(out[v], V_LOADU(c + v * VW));
                else if (ep->bias)
                    out[v] = V_ADD(out[v], V_LOADU(ep->bias + v * VW));
                if (ep->relu) /* max(0, v) returns v when v is NaN */
                    out[v] = V_MAX(zero, out[v]);
            }
            if (ep->stream && ((uintptr_t)c & 63) == 0) {
                _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v)
                    V_STREAM(c + v * VW, out[v]);
            } else {
                _Pragma("GCC unroll 8") for (int v = 0; v < nv; ++v)
                    V_STOREU(c + v * VW, out[v]);
            }
        }
    } else {
        float tile[FC_MR_MAX * FC_NR_MAX];
        for (int i = 0; i < MR; ++i)
            for (int v = 0; v < nv; ++v)
                V_STOREU(tile + i * FC_NR_MAX + v * VW, acc[i][v]);
        fc_tile_store(tile, crow, ep);
    }
}

/* Element (i, p) of A is a_i[p * cs]. Inlined for cs = 1 (row-major rows)
 * and cs = MR (interleaved panel), so the compiler folds the stride, and for
 * any other column stride with unit row stride (a transposed row-major block). */
static inline __attribute__((always_inline)) void
tile_mr_nv(const int nv, ptrdiff_t kc, const float *a0, ptrdiff_t rs, const ptrdiff_t cs,
           const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    const float *a[MR];
    for (int i = 0; i < MR; ++i)
        a[i] = a0 + i * rs;
    prefetch_c(crow, ep);
    TILE_ACCUMULATORS;
    if (cs == 1) {
        /* Row-major rows read in place usually stream from memory: fetch
         * the next sliver's (the rows below) a line at a time ahead. */
        const ptrdiff_t next = MR * rs;
        TILE_STEPS(kc, 1, next);
    } else {
        TILE_STEPS(kc, cs, 0);
    }
    store_tile(nv, acc, crow, ep);
}

/* The whole tile, or, for a panel whose valid columns fit in half of it
 * (the last panel of a product 96 or 160 columns wide on a 64-wide tile),
 * only its first half. */
static inline __attribute__((always_inline)) void
tile_mr_nr(ptrdiff_t kc, const float *a, ptrdiff_t rs, const ptrdiff_t cs,
           const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    if (NV > 2 && ep->nr <= NR / 2)
        tile_mr_nv(NV / 2, kc, a, rs, cs, b, crow, ep);
    else
        tile_mr_nv(NV, kc, a, rs, cs, b, crow, ep);
}

static void ukernel(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                    const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    if (cs_a == 1)
        tile_mr_nr(kc, a, rs_a, 1, b, crow, ep);
    else if (cs_a == MR)
        tile_mr_nr(kc, a, 1, MR, b, crow, ep);
    else
        tile_mr_nr(kc, a, 1, cs_a, b, crow, ep);
}

/* The tile summed over taps: tap t's MR rows of A are rows[t * MR + i], each
 * kc contiguous floats read in place, against the next kc rows of B. */
static inline __attribute__((always_inline)) void
taps_mr_nv(const int nv, ptrdiff_t taps, ptrdiff_t kc, const float *const *rows, const float *b,
           float *const *crow, const fc_tile_epilogue *ep)
{
    prefetch_c(crow, ep);
    TILE_ACCUMULATORS;
    for (ptrdiff_t t = 0; t < taps; ++t, rows += MR) {
        const float *a[MR];
        for (int i = 0; i < MR; ++i)
            a[i] = rows[i];
        TILE_STEPS(kc, 1, 0);
    }
    store_tile(nv, acc, crow, ep);
}

static void ukernel_taps(ptrdiff_t taps, ptrdiff_t kc, const float *const *rows, const float *b,
                         float *const *crow, const fc_tile_epilogue *ep)
{
    if (NV > 2 && ep->nr <= NR / 2)
        taps_mr_nv(NV / 2, taps, kc, rows, b, crow, ep);
    else
        taps_mr_nv(NV, taps, kc, rows, b, crow, ep);
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
    KERNEL_NAME, MR, NR, MC, KC, NC, ukernel, ukernel_taps, peak_loop, 10 * VW * 2, NARROW_FN,
};

const fc_kernel_set *SET_FN(void) { return &kernel_set; }
