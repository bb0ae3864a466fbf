/* Vector vocabulary for the AVX2 + FMA kernels: 8 floats per __m256. Included
 * only by files compiled with -mavx2 -mfma; the templates
 * (gemm_kernel_simd.h, conv2d_direct_simd.h) are written in these names. */
#ifndef FC_SIMD_AVX2_H
#define FC_SIMD_AVX2_H

#include <immintrin.h>

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
#define V_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

#endif /* FC_SIMD_AVX2_H */
