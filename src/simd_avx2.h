/* Vector vocabulary for the AVX2 + FMA kernels: 8 floats per __m256. Included
 * only by files compiled with -mavx2 -mfma; the templates
 * (gemm_kernel_simd.h, conv2d_direct_simd.h, pool2d_simd.h) are written in
 * these names. */
#ifndef FC_SIMD_AVX2_H
#define FC_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#define VEC __m256
#define VW 8
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_STREAM(p, v) _mm256_stream_ps(p, v)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)

static inline float sum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#define V_SUM(v) sum8(v)

/* out[q] = the sum of the lanes of v[q], q < 8: three rounds of pairwise
 * horizontal adds and one across the halves, instead of 8 reductions. */
static inline void sums8(const __m256 v[8], float out[8])
{
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const __m256 efgh = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    /* each: the four sums of the low 128 bits, then those of the high */
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(abcd, efgh, 0x20),
                                        _mm256_permute2f128_ps(abcd, efgh, 0x31)));
}
#define V_SUMS8(v, out) sums8(v, out)
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

/* Lane masks, for max pooling's searches (pool2d_simd.h): all ones or all
 * zeros a lane. */
#define VMASK __m256
#define M_NONE _mm256_setzero_ps()
#define M_OR(a, b) _mm256_or_ps(a, b)
#define M_ANDNOT(a, b) _mm256_andnot_ps(b, a) /* a and not b */
/* Lanes where x replaces best as a window's maximum: x larger, or x NaN while
 * best is not (the first NaN stays). */
#define V_TAKES(x, best)                                                                       \
    _mm256_and_ps(_mm256_cmp_ps(x, best, _CMP_NLE_UQ), _mm256_cmp_ps(best, best, _CMP_ORD_Q))
#define V_POSITIVE(v) _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ)
#define V_SAME_BITS(a, b)                                                                      \
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)))
#define V_SELECT(m, a, b) _mm256_blendv_ps(b, a, m) /* m ? a : b, lane by lane */
#define V_MUL(a, b) _mm256_mul_ps(a, b)
/* Lanes of 32-bit cell numbers (max pooling's argmax) and their bytes. */
#define VCELL __m256i
#define C_SET1(n) _mm256_set1_epi32((int)(n))
#define C_SELECT(m, a, b) /* m ? a : b, lane by lane */                                         \
    _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m))
#define C_MARK(m, cell, bit)                                                                    \
    _mm256_or_si256(cell, _mm256_and_si256(_mm256_castps_si256(m), _mm256_set1_epi32(bit)))
/* Eight numbers below 256 stored as bytes. */
static inline void store_bytes8(uint8_t *p, __m256i cell)
{
    const __m128i words =
        _mm_packus_epi32(_mm256_castsi256_si128(cell), _mm256_extracti128_si256(cell, 1));
    _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(words, words));
}
#define C_STORE_BYTES(p, cell) store_bytes8(p, cell)
#define C_LOAD_BYTES(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define C_WITHOUT(cell, bit) _mm256_andnot_si256(_mm256_set1_epi32(bit), cell) /* cell & ~bit */
#define C_HAS(cell, bit)                                                                        \
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(cell, _mm256_set1_epi32(bit)),    \
                                           _mm256_set1_epi32(bit)))
#define C_EQ(cell, n) _mm256_castsi256_ps(_mm256_cmpeq_epi32(cell, _mm256_set1_epi32((int)(n))))

#endif /* FC_SIMD_AVX2_H */
