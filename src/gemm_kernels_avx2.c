/* AVX2 + FMA micro-kernel: a 6 x 16 tile held in 12 ymm accumulators.
 * Per step of k: two loads of B, six broadcasts of A, twelve FMAs, which
 * keeps both FMA pipes of Haswell-to-Zen cores busy (latency 4-5, so at
 * least 8-10 independent chains are needed). Compiled with -mavx2 -mfma for
 * this file only; called only when the CPU reports both features. */
#include <immintrin.h>

#include "fc_internal.h"

#define MR FC_AVX2_MR
#define NR FC_AVX2_NR

/* Element (i, p) of A is a_i[p * cs]. Inlined for cs = 1 (row-major rows)
 * and cs = MR (interleaved panel), so the compiler folds the stride, and for
 * any other column stride with unit row stride (a transposed row-major block). */
static inline __attribute__((always_inline)) void
avx2_6x16(ptrdiff_t kc, const float *a, ptrdiff_t rs, const ptrdiff_t cs,
          const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs;
    const float *a3 = a + 3 * rs, *a4 = a + 4 * rs, *a5 = a + 5 * rs;
    /* C is read at the end when accumulating: start fetching it now. */
    if (ep->accumulate)
        for (int i = 0; i < ep->mr; ++i) {
            _mm_prefetch((const char *)crow[i], _MM_HINT_T0);
            _mm_prefetch((const char *)(crow[i] + NR - 1), _MM_HINT_T0);
        }
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; ++p) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        ai = _mm256_broadcast_ss(a0 + p * cs);
        c00 = _mm256_fmadd_ps(ai, b0, c00); c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a1 + p * cs);
        c10 = _mm256_fmadd_ps(ai, b0, c10); c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a2 + p * cs);
        c20 = _mm256_fmadd_ps(ai, b0, c20); c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a3 + p * cs);
        c30 = _mm256_fmadd_ps(ai, b0, c30); c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a4 + p * cs);
        c40 = _mm256_fmadd_ps(ai, b0, c40); c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a5 + p * cs);
        c50 = _mm256_fmadd_ps(ai, b0, c50); c51 = _mm256_fmadd_ps(ai, b1, c51);
        b += NR;
    }
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    if (ep->mr == MR && ep->nr == NR) {
        const __m256 zero = _mm256_setzero_ps();
        for (int i = 0; i < MR; ++i) {
            float *c = crow[i];
            __m256 v0 = acc[i][0], v1 = acc[i][1];
            if (ep->accumulate) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));
            } else if (ep->bias) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ep->bias));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ep->bias + 8));
            }
            if (ep->relu) { /* max(0, v) returns v when v is NaN */
                v0 = _mm256_max_ps(zero, v0);
                v1 = _mm256_max_ps(zero, v1);
            }
            _mm256_storeu_ps(c, v0);
            _mm256_storeu_ps(c + 8, v1);
        }
    } else {
        float tile[FC_MR_MAX * FC_NR_MAX];
        for (int i = 0; i < MR; ++i) {
            _mm256_storeu_ps(tile + i * FC_NR_MAX, acc[i][0]);
            _mm256_storeu_ps(tile + i * FC_NR_MAX + 8, acc[i][1]);
        }
        fc_tile_store(tile, crow, ep);
    }
}

static void ukernel_avx2(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                         const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    if (cs_a == 1)
        avx2_6x16(kc, a, rs_a, 1, b, crow, ep);
    else if (cs_a == MR)
        avx2_6x16(kc, a, 1, MR, b, crow, ep);
    else
        avx2_6x16(kc, a, 1, cs_a, b, crow, ep);
}

/* Ten independent FMA chains per round: enough to cover latency x pipes. */
static float peak_loop_avx2(ptrdiff_t iters)
{
    __m256 x = _mm256_set1_ps(1.0f - 1e-7f), y = _mm256_set1_ps(1e-7f);
    __m256 c0 = _mm256_set1_ps(0.f), c1 = _mm256_set1_ps(1.f), c2 = _mm256_set1_ps(2.f);
    __m256 c3 = _mm256_set1_ps(3.f), c4 = _mm256_set1_ps(4.f), c5 = _mm256_set1_ps(5.f);
    __m256 c6 = _mm256_set1_ps(6.f), c7 = _mm256_set1_ps(7.f), c8 = _mm256_set1_ps(8.f);
    __m256 c9 = _mm256_set1_ps(9.f);
    for (ptrdiff_t it = 0; it < iters; ++it) {
        c0 = _mm256_fmadd_ps(c0, x, y); c1 = _mm256_fmadd_ps(c1, x, y);
        c2 = _mm256_fmadd_ps(c2, x, y); c3 = _mm256_fmadd_ps(c3, x, y);
        c4 = _mm256_fmadd_ps(c4, x, y); c5 = _mm256_fmadd_ps(c5, x, y);
        c6 = _mm256_fmadd_ps(c6, x, y); c7 = _mm256_fmadd_ps(c7, x, y);
        c8 = _mm256_fmadd_ps(c8, x, y); c9 = _mm256_fmadd_ps(c9, x, y);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(c8, c9));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

static const fc_kernel_set avx2_set = {
    "avx2", MR, NR, FC_AVX2_MC, FC_AVX2_KC, FC_AVX2_NC,
    ukernel_avx2, peak_loop_avx2, 10 * 8 * 2,
};

const fc_kernel_set *fc_kernels_avx2(void) { return &avx2_set; }
