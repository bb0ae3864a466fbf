/* Row kernels of the direct convolution for few input channels, written once
 * for any vector width (conv2d_direct.c explains the method). Included by one
 * file per SIMD path, which first includes a vocabulary header (simd_avx2.h,
 * simd_avx512.h, simd_scalar.h) and defines SET_FN, the function returning
 * this path's fc_direct_kernel_set.
 *
 * A filter block is NB = 2 vectors wide; a forward tile is up to TILE output
 * pixels by NB filters, in 2 * TILE accumulators: with the two weight vectors
 * and a broadcast, 14 fill AVX-512's 32 registers and 6 AVX2's 16. */

#include <math.h>
#include <string.h>

#define NB (2 * VW)
#define TILE (VW >= 16 ? 14 : 6)
/* A block of VW filters (the default MNIST model's 16 on AVX-512; in the
 * weight gradient, of at most VW) takes one vector a pixel, and twice the
 * pixels or taps a tile: half the multiply-adds of a full block, whose
 * other vector would hold zeros. */
#define HALF_TILE (2 * TILE)

/* P pixels (a constant once inlined: the accumulators stay in registers)
 * from patch, step floats apart (STEP, when not 0, a constant for step). */
static inline __attribute__((always_inline)) void
forward_tile(const int P, const int STEP, const float *patch, ptrdiff_t step,
             const ptrdiff_t *off, ptrdiff_t k, const float *wp, VEC b0, VEC b1, int relu,
             float *y, ptrdiff_t ldy)
{
    if (STEP)
        step = STEP;
    VEC c0[TILE], c1[TILE];
    for (int i = 0; i < P; ++i) {
        c0[i] = b0;
        c1[i] = b1;
    }
    for (ptrdiff_t t = 0; t < k; ++t) {
        const VEC w0 = V_LOADU(wp + t * NB), w1 = V_LOADU(wp + t * NB + VW);
        const float *q = patch + off[t];
        for (int i = 0; i < P; ++i) {
            const VEC xb = V_SET1(q[i * step]);
            c0[i] = V_FMA(xb, w0, c0[i]);
            c1[i] = V_FMA(xb, w1, c1[i]);
        }
    }
    /* max(lo, v) keeps a NaN v; with lo = -inf it is v. */
    const VEC lo = relu ? V_ZERO() : V_SET1(-INFINITY);
    for (int i = 0; i < P; ++i) {
        V_STOREU(y + i * ldy, V_MAX(lo, c0[i]));
        V_STOREU(y + i * ldy + VW, V_MAX(lo, c1[i]));
    }
}

/* forward_tile for a block of VW filters: P (<= HALF_TILE) pixels
 * by one vector, the first of each tap's NB weights. */
static inline __attribute__((always_inline)) void
forward_tile_half(const int P, const int STEP, const float *patch, ptrdiff_t step,
                  const ptrdiff_t *off, ptrdiff_t k, const float *wp, VEC b0, int relu,
                  float *y, ptrdiff_t ldy)
{
    if (STEP)
        step = STEP;
    VEC c0[HALF_TILE];
    for (int i = 0; i < P; ++i)
        c0[i] = b0;
    for (ptrdiff_t t = 0; t < k; ++t) {
        const VEC w0 = V_LOADU(wp + t * NB);
        const float *q = patch + off[t];
        for (int i = 0; i < P; ++i)
            c0[i] = V_FMA(V_SET1(q[i * step]), w0, c0[i]);
    }
    const VEC lo = relu ? V_ZERO() : V_SET1(-INFINITY);
    for (int i = 0; i < P; ++i)
        V_STOREU(y + i * ldy, V_MAX(lo, c0[i]));
}

/* forward_row_step for a block of exactly VW filters. */
static inline __attribute__((always_inline)) void
forward_row_half(const int STEP, const float *patch, ptrdiff_t step, const ptrdiff_t *off,
                 ptrdiff_t k, const float *wp, const float *bias, int relu, ptrdiff_t count,
                 float *y, ptrdiff_t ldy)
{
    const VEC b0 = V_LOADU(bias);
    const ptrdiff_t tiles = (count + HALF_TILE - 1) / HALF_TILE;
    for (ptrdiff_t ti = 0, o = 0; ti < tiles; ++ti) {
        const ptrdiff_t o1 = (ti + 1) * count / tiles;
        const float *p = patch + o * step;
        float *yo = y + o * ldy;
        switch (o1 - o) {
#define HALF_TILE_CASE(P)                                                         \
    case P:                                                                       \
        forward_tile_half((P) < HALF_TILE ? (P) : HALF_TILE, STEP, p, step, off, k, wp, b0, \
                          relu, yo, ldy);                                         \
        break;
        HALF_TILE_CASE(1) HALF_TILE_CASE(2) HALF_TILE_CASE(3) HALF_TILE_CASE(4)
        HALF_TILE_CASE(5) HALF_TILE_CASE(6) HALF_TILE_CASE(7) HALF_TILE_CASE(8)
        HALF_TILE_CASE(9) HALF_TILE_CASE(10) HALF_TILE_CASE(11) HALF_TILE_CASE(12)
        HALF_TILE_CASE(13) HALF_TILE_CASE(14) HALF_TILE_CASE(15) HALF_TILE_CASE(16)
        HALF_TILE_CASE(17) HALF_TILE_CASE(18) HALF_TILE_CASE(19) HALF_TILE_CASE(20)
        HALF_TILE_CASE(21) HALF_TILE_CASE(22) HALF_TILE_CASE(23) HALF_TILE_CASE(24)
        HALF_TILE_CASE(25) HALF_TILE_CASE(26) HALF_TILE_CASE(27)
#undef HALF_TILE_CASE
        default:
            forward_tile_half(HALF_TILE, STEP, p, step, off, k, wp, b0, relu, yo, ldy);
        }
        o = o1;
    }
}

/* forward_row for one STEP (0: any): the row in tiles as equal as TILE
 * allows (S1's 26 pixels: two of 13, where tiles of 6 computed 30). */
static inline __attribute__((always_inline)) void
forward_row_step(const int STEP, const float *patch, ptrdiff_t step, const ptrdiff_t *off,
                 ptrdiff_t k, const float *wp, const float *bias, int relu, ptrdiff_t count,
                 float *y, ptrdiff_t ldy, int nb_valid)
{
    const VEC b0 = V_LOADU(bias), b1 = V_LOADU(bias + VW);
    const ptrdiff_t tiles = (count + TILE - 1) / TILE;
    for (ptrdiff_t ti = 0, o = 0; ti < tiles; ++ti) {
        const ptrdiff_t o1 = (ti + 1) * count / tiles;
        const float *p = patch + o * step;
        /* A block of fewer than NB filters goes through a full-width copy. */
        float part[TILE * NB];
        float *yo = nb_valid == NB ? y + o * ldy : part;
        const ptrdiff_t ldo = nb_valid == NB ? ldy : NB;
        switch (o1 - o) {
/* (Cases past TILE never run; capped, they stay within the arrays.) */
#define FORWARD_TILE_CASE(P)                                                      \
    case P:                                                                       \
        forward_tile((P) < TILE ? (P) : TILE, STEP, p, step, off, k, wp, b0, b1, relu, yo, \
                     ldo);                                                        \
        break;
        FORWARD_TILE_CASE(1) FORWARD_TILE_CASE(2) FORWARD_TILE_CASE(3)
        FORWARD_TILE_CASE(4) FORWARD_TILE_CASE(5) FORWARD_TILE_CASE(6)
        FORWARD_TILE_CASE(7) FORWARD_TILE_CASE(8) FORWARD_TILE_CASE(9)
        FORWARD_TILE_CASE(10) FORWARD_TILE_CASE(11) FORWARD_TILE_CASE(12)
        FORWARD_TILE_CASE(13)
#undef FORWARD_TILE_CASE
        default: forward_tile(TILE, STEP, p, step, off, k, wp, b0, b1, relu, yo, ldo);
        }
        if (nb_valid < NB)
            for (ptrdiff_t i = o; i < o1; ++i)
                memcpy(y + i * ldy, part + (i - o) * NB, (size_t)nb_valid * sizeof(float));
        o = o1;
    }
}

static void forward_row(const float *patch, ptrdiff_t step, const ptrdiff_t *off, ptrdiff_t k,
                        const float *wp, const float *bias, int relu, ptrdiff_t count,
                        float *y, ptrdiff_t ldy, int nb_valid)
{
    /* (A block of fewer than VW filters ran 17 % slower in half tiles: 1 -> 8
     * channels at batch 128, 0.236 -> 0.276 ms.) */
    if (nb_valid == VW && step == 1)
        forward_row_half(1, patch, step, off, k, wp, bias, relu, count, y, ldy);
    else if (nb_valid == VW)
        forward_row_half(0, patch, step, off, k, wp, bias, relu, count, y, ldy);
    else if (step == 1) /* one channel, stride 1: the broadcasts' offsets are constants */
        forward_row_step(1, patch, step, off, k, wp, bias, relu, count, y, ldy, nb_valid);
    else
        forward_row_step(0, patch, step, off, k, wp, bias, relu, count, y, ldy, nb_valid);
}

/* Taps of the weight gradient taken in one sweep of a dy row: as many as
 * the registers hold, 2 accumulators each (AVX-512: 9, a 3x3 kernel's on
 * one input channel; AVX2's 16 registers: 6). */
#define WTILE (VW >= 16 ? 9 : 6)

/* G taps (G <= WTILE, a constant once inlined) of weight_row, and with db
 * the sums of dy's pixels; with pf, the first and last byte of pixel o at
 * pf + o * pf_step are fetched into cache as pixel o of dy is read. */
static inline __attribute__((always_inline)) void
weight_taps(const int G, const float *patch, ptrdiff_t step, const ptrdiff_t *off,
            const float *dy, ptrdiff_t lddy, ptrdiff_t count, float *acc, float *db,
            const char *pf, ptrdiff_t pf_step)
{
    VEC a0[WTILE], a1[WTILE];
    const float *q[WTILE];
    for (int i = 0; i < G; ++i) {
        a0[i] = V_LOADU(acc + i * NB);
        a1[i] = V_LOADU(acc + i * NB + VW);
        q[i] = patch + off[i];
    }
    VEC s0 = V_ZERO(), s1 = V_ZERO();
    for (ptrdiff_t o = 0; o < count; ++o) {
        if (pf) {
            V_PREFETCH(pf + o * pf_step);
            V_PREFETCH(pf + o * pf_step + pf_step - 1);
        }
        const VEC d0 = V_LOADU(dy + o * lddy), d1 = V_LOADU(dy + o * lddy + VW);
        if (db) {
            s0 = V_ADD(s0, d0);
            s1 = V_ADD(s1, d1);
        }
        for (int i = 0; i < G; ++i) {
            const VEC xb = V_SET1(q[i][o * step]);
            a0[i] = V_FMA(xb, d0, a0[i]);
            a1[i] = V_FMA(xb, d1, a1[i]);
        }
    }
    for (int i = 0; i < G; ++i) {
        V_STOREU(acc + i * NB, a0[i]);
        V_STOREU(acc + i * NB + VW, a1[i]);
    }
    if (db) {
        V_STOREU(db, V_ADD(V_LOADU(db), s0));
        V_STOREU(db + VW, V_ADD(V_LOADU(db + VW), s1));
    }
}

/* weight_taps for a block of at most VW filters: G (<= HALF_WTILE) taps of
 * one vector, the first of each tap's NB sums (dy read one vector a pixel). */
#define HALF_WTILE (2 * WTILE)

static inline __attribute__((always_inline)) void
weight_taps_half(const int G, const float *patch, ptrdiff_t step, const ptrdiff_t *off,
                 const float *dy, ptrdiff_t lddy, ptrdiff_t count, float *acc, float *db,
                 const char *pf, ptrdiff_t pf_step)
{
    VEC a0[HALF_WTILE];
    const float *q[HALF_WTILE];
    for (int i = 0; i < G; ++i) {
        a0[i] = V_LOADU(acc + i * NB);
        q[i] = patch + off[i];
    }
    VEC s0 = V_ZERO();
    for (ptrdiff_t o = 0; o < count; ++o) {
        if (pf) {
            V_PREFETCH(pf + o * pf_step);
            V_PREFETCH(pf + o * pf_step + pf_step - 1);
        }
        const VEC d0 = V_LOADU(dy + o * lddy);
        if (db)
            s0 = V_ADD(s0, d0);
        for (int i = 0; i < G; ++i)
            a0[i] = V_FMA(V_SET1(q[i][o * step]), d0, a0[i]);
    }
    for (int i = 0; i < G; ++i)
        V_STOREU(acc + i * NB, a0[i]);
    if (db)
        V_STOREU(db, V_ADD(V_LOADU(db), s0));
}

static void weight_row(const float *patch, ptrdiff_t step, const ptrdiff_t *off, ptrdiff_t k,
                       const float *dy, ptrdiff_t lddy, ptrdiff_t count, float *acc, float *db,
                       const char *pf, ptrdiff_t pf_step, int nb_valid)
{
    /* Groups of taps as equal as the registers allow (25 taps: 9, 8, 8; a
     * half block's 25: 13, 12), the first also summing db and fetching the
     * next row. */
    const int half = nb_valid <= VW;
    const ptrdiff_t most = half ? HALF_WTILE : WTILE;
    const ptrdiff_t groups = (k + most - 1) / most;
    for (ptrdiff_t gi = 0, t = 0; gi < groups; ++gi) {
        const ptrdiff_t t1 = (gi + 1) * k / groups;
        const char *p = gi == 0 ? pf : NULL;
        float *sums = gi == 0 ? db : NULL;
        const ptrdiff_t *ot = off + t;
        float *at = acc + t * NB;
        switch (t1 - t) {
/* (Cases past a variant's most taps never run for it; capped, they stay
 * within the arrays.) */
#define WEIGHT_TAPS_CASE(G)                                                       \
    case G:                                                                       \
        if (half)                                                                 \
            weight_taps_half((G) < HALF_WTILE ? (G) : HALF_WTILE, patch, step, ot, dy, lddy, \
                             count, at, sums, p, pf_step);                        \
        else                                                                      \
            weight_taps((G) < WTILE ? (G) : WTILE, patch, step, ot, dy, lddy, count, at, sums, \
                        p, pf_step);                                              \
        break;
        WEIGHT_TAPS_CASE(1) WEIGHT_TAPS_CASE(2) WEIGHT_TAPS_CASE(3) WEIGHT_TAPS_CASE(4)
        WEIGHT_TAPS_CASE(5) WEIGHT_TAPS_CASE(6) WEIGHT_TAPS_CASE(7) WEIGHT_TAPS_CASE(8)
        WEIGHT_TAPS_CASE(9) WEIGHT_TAPS_CASE(10) WEIGHT_TAPS_CASE(11) WEIGHT_TAPS_CASE(12)
        WEIGHT_TAPS_CASE(13) WEIGHT_TAPS_CASE(14) WEIGHT_TAPS_CASE(15) WEIGHT_TAPS_CASE(16)
        WEIGHT_TAPS_CASE(17)
#undef WEIGHT_TAPS_CASE
        default:
            if (half)
                weight_taps_half(HALF_WTILE, patch, step, ot, dy, lddy, count, at, sums, p,
                                 pf_step);
            else
                weight_taps(WTILE, patch, step, ot, dy, lddy, count, at, sums, p, pf_step);
        }
        t = t1;
    }
}

#define GROUP FC_DIRECT_GROUP

/* dx of GROUP neighbouring pixels [iw, iw + GROUP), channel ci, from TAPS
 * taps (a constant once inlined: the loop over them unrolls). Tap t reads
 * dy pixel iw + q at dy[t] + (iw + q) * fp and weights w[t] + ci * fp, fp a
 * multiple of NB; the first `valid` sums are written. */
static inline __attribute__((always_inline)) void
input_group(const int TAPS, const float *const *dy, const float *const *w, ptrdiff_t ci,
            ptrdiff_t fp, ptrdiff_t iw, int valid, float *dx, ptrdiff_t c)
{
    VEC s0[GROUP], s1[GROUP];
    for (int q = 0; q < GROUP; ++q)
        s0[q] = s1[q] = V_ZERO();
    for (ptrdiff_t j = 0; j < fp; j += NB)
        for (int t = 0; t < TAPS; ++t) {
            const float *d = dy[t] + iw * fp + j, *wv = w[t] + ci * fp + j;
            const VEC w0 = V_LOADU(wv), w1 = V_LOADU(wv + VW);
            for (int q = 0; q < GROUP; ++q) {
                s0[q] = V_FMA(V_LOADU(d + q * fp), w0, s0[q]);
                s1[q] = V_FMA(V_LOADU(d + q * fp + VW), w1, s1[q]);
            }
        }
    VEC s[GROUP];
    float sums[GROUP];
    for (int q = 0; q < GROUP; ++q)
        s[q] = V_ADD(s0[q], s1[q]);
    V_SUMS8(s, sums);
    for (int q = 0; q < valid; ++q)
        dx[(iw + q) * c + ci] = sums[q];
}

/* input_row for fp filters a constant once inlined: one block (fp = NB,
 * up to 32 filters on AVX-512, unrolled whole) or any number. A row of S1's
 * 28 pixels in cache: 172 -> 134-145 ns. */
static inline __attribute__((always_inline)) void
input_row_fp(const float *const *dy, const float *const *w, int taps, ptrdiff_t c,
             const ptrdiff_t fp, ptrdiff_t width, float *dx)
{
    for (ptrdiff_t iw = 0; iw < width; iw += GROUP) {
        const int valid = (int)fc_min(GROUP, width - iw);
        for (ptrdiff_t ci = 0; ci < c; ++ci)
            switch (taps) { /* the rows of a 3x3 kernel, all three or those inside */
            case 9: input_group(9, dy, w, ci, fp, iw, valid, dx, c); break;
            case 6: input_group(6, dy, w, ci, fp, iw, valid, dx, c); break;
            case 3: input_group(3, dy, w, ci, fp, iw, valid, dx, c); break;
            default: input_group(taps, dy, w, ci, fp, iw, valid, dx, c); break;
            }
    }
}

static void input_row(const float *const *dy, const float *const *w, int taps, ptrdiff_t c,
                      ptrdiff_t fp, ptrdiff_t width, float *dx)
{
    if (fp == NB)
        input_row_fp(dy, w, taps, c, NB, width, dx);
    else
        input_row_fp(dy, w, taps, c, fp, width, dx);
}

static const fc_direct_kernel_set direct_set = {NB, forward_row, weight_row, input_row};

const fc_direct_kernel_set *SET_FN(void) { return &direct_set; }
