/* The SIMD micro-kernel and peak probe, written once for any vector width.
 * Included by one file per ISA (gemm_kernels_avx2.c, gemm_kernels_avx512.c),
 * which first includes that ISA's vector vocabulary (simd_avx2.h,
 * simd_avx512.h: VEC, VW, V_LOADU, V_FMA, ...) and defines:
 *   MR, NR       the tile: MR must be 6, NR must be 2*VW
 *   KERNEL_NAME  the kernel set's name, SET_FN the function returning it,
 *   MC, KC, NC   its block sizes.
 *
 * The tile is MR x (2 vectors), held in 12 accumulators. Per step of k: two
 * loads of B, six broadcasts of A, twelve FMAs: enough independent chains to
 * fill two FMA pipes of latency 4-5 (Haswell to Zen 4, Skylake-X). */

/* Declares the tile's twelve accumulators, zeroed. */
#define TILE_ACCUMULATORS                                                         \
    VEC c00 = V_ZERO(), c01 = V_ZERO(), c10 = V_ZERO(), c11 = V_ZERO();           \
    VEC c20 = V_ZERO(), c21 = V_ZERO(), c30 = V_ZERO(), c31 = V_ZERO();           \
    VEC c40 = V_ZERO(), c41 = V_ZERO(), c50 = V_ZERO(), c51 = V_ZERO()

/* One step of k of the tile: rows a0..a5 of A (element p of row i at
 * ai[p * cs]) times the packed B panel b, which advances past the row it
 * used. */
#define TILE_STEP(p, cs)                                                          \
    do {                                                                          \
        const VEC b0 = V_LOADU(b), b1 = V_LOADU(b + VW);                          \
        VEC ai;                                                                   \
        ai = V_SET1(a0[(p) * (cs)]);                                              \
        c00 = V_FMA(ai, b0, c00); c01 = V_FMA(ai, b1, c01);                       \
        ai = V_SET1(a1[(p) * (cs)]);                                              \
        c10 = V_FMA(ai, b0, c10); c11 = V_FMA(ai, b1, c11);                       \
        ai = V_SET1(a2[(p) * (cs)]);                                              \
        c20 = V_FMA(ai, b0, c20); c21 = V_FMA(ai, b1, c21);                       \
        ai = V_SET1(a3[(p) * (cs)]);                                              \
        c30 = V_FMA(ai, b0, c30); c31 = V_FMA(ai, b1, c31);                       \
        ai = V_SET1(a4[(p) * (cs)]);                                              \
        c40 = V_FMA(ai, b0, c40); c41 = V_FMA(ai, b1, c41);                       \
        ai = V_SET1(a5[(p) * (cs)]);                                              \
        c50 = V_FMA(ai, b0, c50); c51 = V_FMA(ai, b1, c51);                       \
        b += NR;                                                                  \
    } while (0)

/* kc steps, unrolled: the loop's index, compare and branch would otherwise
 * take issue slots from the twelve FMAs of each step (unrolled, 1024^3 runs
 * 7 % faster on a Xeon, S7 forward 10 %). With ahead nonzero (cs = 1), each
 * line of the rows ahead floats further is prefetched, once per 16 steps. */
#define TILE_STEPS(kc, cs, ahead)                                                 \
    do {                                                                          \
        ptrdiff_t p = 0;                                                          \
        if (ahead) {                                                              \
            for (; p + 16 <= (kc); p += 16) {                                     \
                V_PREFETCH(a0 + (ahead) + p); V_PREFETCH(a1 + (ahead) + p);       \
                V_PREFETCH(a2 + (ahead) + p); V_PREFETCH(a3 + (ahead) + p);       \
                V_PREFETCH(a4 + (ahead) + p); V_PREFETCH(a5 + (ahead) + p);       \
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

/* C is read at the end when accumulating: start fetching it now. */
static inline __attribute__((always_inline)) void
prefetch_c(float *const *crow, const fc_tile_epilogue *ep)
{
    if (ep->accumulate)
        for (int i = 0; i < ep->mr; ++i) {
            V_PREFETCH(crow[i]);
            V_PREFETCH(crow[i] + NR - 1);
        }
}

/* Writes the accumulators to C through the epilogue. */
static inline __attribute__((always_inline)) void
store_tile(const VEC acc[MR][2], float *const *crow, const fc_tile_epilogue *ep)
{
    if (ep->mr == MR && ep->nr == NR) {
        const VEC zero = V_ZERO();
        for (int i = 0; i < MR; ++i) {
            float *c = crow[i];
            VEC v0 = acc[i][0], v1 = acc[i][1];
            if (ep->accumulate) {
                v0 = V_ADD(v0, V_LOADU(c));
                v1 = V_ADD(v1, V_LOADU(c + VW));
            } else if (ep->bias) {
                v0 = V_ADD(v0, V_LOADU(ep->bias));
                v1 = V_ADD(v1, V_LOADU(ep->bias + VW));
            }
            if (ep->relu) { /* max(0, v) returns v when v is NaN */
                v0 = V_MAX(zero, v0);
                v1 = V_MAX(zero, v1);
            }
            if (ep->stream && ((uintptr_t)c & 63) == 0) {
                V_STREAM(c, v0);
                V_STREAM(c + VW, v1);
            } else {
                V_STOREU(c, v0);
                V_STOREU(c + VW, v1);
            }
        }
    } else {
        float tile[FC_MR_MAX * FC_NR_MAX];
        for (int i = 0; i < MR; ++i) {
            V_STOREU(tile + i * FC_NR_MAX, acc[i][0]);
            V_STOREU(tile + i * FC_NR_MAX + VW, acc[i][1]);
        }
        fc_tile_store(tile, crow, ep);
    }
}

#define STORE_ACCUMULATORS(crow, ep)                                              \
    do {                                                                          \
        const VEC acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},               \
                                {c30, c31}, {c40, c41}, {c50, c51}};              \
        store_tile(acc, crow, ep);                                                \
    } while (0)

/* Element (i, p) of A is a_i[p * cs]. Inlined for cs = 1 (row-major rows)
 * and cs = MR (interleaved panel), so the compiler folds the stride, and for
 * any other column stride with unit row stride (a transposed row-major block). */
static inline __attribute__((always_inline)) void
tile_6x2v(ptrdiff_t kc, const float *a, ptrdiff_t rs, const ptrdiff_t cs,
          const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs;
    const float *a3 = a + 3 * rs, *a4 = a + 4 * rs, *a5 = a + 5 * rs;
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
    STORE_ACCUMULATORS(crow, ep);
}

static void ukernel(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                    const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    if (cs_a == 1)
        tile_6x2v(kc, a, rs_a, 1, b, crow, ep);
    else if (cs_a == MR)
        tile_6x2v(kc, a, 1, MR, b, crow, ep);
    else
        tile_6x2v(kc, a, 1, cs_a, b, crow, ep);
}

/* The tile summed over taps: tap t's MR rows of A are a[t * MR + i], each
 * kc contiguous floats read in place, against the next kc rows of B. */
static void ukernel_taps(ptrdiff_t taps, ptrdiff_t kc, const float *const *a, const float *b,
                         float *const *crow, const fc_tile_epilogue *ep)
{
    prefetch_c(crow, ep);
    TILE_ACCUMULATORS;
    for (ptrdiff_t t = 0; t < taps; ++t, a += MR) {
        const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
        TILE_STEPS(kc, 1, 0);
    }
    STORE_ACCUMULATORS(crow, ep);
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

static const fc_kernel_set kernel_set = {
    KERNEL_NAME, MR, NR, MC, KC, NC, ukernel, ukernel_taps, peak_loop, 10 * VW * 2,
};

const fc_kernel_set *SET_FN(void) { return &kernel_set; }
