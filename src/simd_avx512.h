/* Vector vocabulary for the AVX-512F kernels: 16 floats per __m512. Included
 * only by files compiled with -mavx512f -mfma; the templates
 * (gemm_kernel_simd.h, conv2d_direct_simd.h, pool2d_simd.h) are written in
 * these names. */
#ifndef FC_SIMD_AVX512_H
#define FC_SIMD_AVX512_H

#include <immintrin.h>

#define VEC __m512
#define VW 16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_STREAM(p, v) _mm512_stream_ps(p, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_SUM(v) _mm512_reduce_add_ps(v)
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

/* out[q] = the sum of the lanes of v[q], q < 8: halves of pairs of vectors
 * added across, then quarters, then within 128-bit lanes; 24 instructions
 * instead of 8 whole reductions (72, 32 of them shuffles on one port). */
static inline void sums8(const __m512 v[8], float out[8])
{
    __m512 r[4];
    for (int i = 0; i < 4; ++i) /* a, b -> [a0+a2, a1+a3, b0+b2, b1+b3] (128-bit quarters) */
        r[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    /* [a, b, c, d] and [e, f, g, h]: one quarter of 4 partial sums each */
    const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(r[0], r[1], 0x88),
                                   _mm512_shuffle_f32x4(r[0], r[1], 0xDD));
    const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(r[2], r[3], 0x88),
                                   _mm512_shuffle_f32x4(r[2], r[3], 0xDD));
    /* quarter i: [x_i0 + x_i1 + x_i2 + x_i3, y_i0 + ... + y_i3, the same again] */
    __m512 w = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
    w = _mm512_add_ps(w, _mm512_permute_ps(w, 0x4E));
    float t[16];
    _mm512_storeu_ps(t, w);
    for (int i = 0; i < 4; ++i) {
        out[i] = t[4 * i];
        out[4 + i] = t[4 * i + 1];
    }
}
#define V_SUMS8(v, out) sums8(v, out)

/* Lane masks, for max pooling's searches (pool2d_simd.h): one bit a lane. */
#define VMASK __mmask16
#define M_NONE ((__mmask16)0)
#define M_OR(a, b) ((__mmask16)((a) | (b)))
#define M_ANDNOT(a, b) ((__mmask16)((a) & ~(b))) /* a and not b */
/* Lanes where x replaces best as a window's maximum: x larger, or x NaN while
 * best is not (the first NaN stays). */
#define V_TAKES(x, best)                                                                       \
    _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(best, best, _CMP_ORD_Q), x, best, _CMP_NLE_UQ)
#define V_POSITIVE(v) _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ)
#define V_SAME_BITS(a, b) _mm512_cmpeq_epi32_mask(_mm512_castps_si512(a), _mm512_castps_si512(b))
#define V_SELECT(m, a, b) _mm512_mask_blend_ps(m, b, a) /* m ? a : b, lane by lane */
#define V_MUL(a, b) _mm512_mul_ps(a, b)
/* Lanes of 32-bit cell numbers (max pooling's argmax) and their bytes. */
#define VCELL __m512i
#define C_SET1(n) _mm512_set1_epi32((int)(n))
#define C_SELECT(m, a, b) _mm512_mask_blend_epi32(m, b, a) /* m ? a : b, lane by lane */
#define C_MARK(m, cell, bit) _mm512_mask_or_epi32(cell, m, cell, _mm512_set1_epi32(bit))
#define C_STORE_BYTES(p, cell) _mm_storeu_si128((__m128i *)(p), _mm512_cvtepi32_epi8(cell))
#define C_LOAD_BYTES(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define C_WITHOUT(cell, bit) _mm512_andnot_si512(_mm512_set1_epi32(bit), cell) /* cell & ~bit */
#define C_HAS(cell, bit) _mm512_test_epi32_mask(cell, _mm512_set1_epi32(bit))
#define C_EQ(cell, n) _mm512_cmpeq_epi32_mask(cell, _mm512_set1_epi32((int)(n)))

#endif /* FC_SIMD_AVX512_H */
