/* Vector vocabulary for the AVX-512F kernels: 16 floats per __m512. Included
 * only by files compiled with -mavx512f -mfma; the templates
 * (gemm_kernel_simd.h, conv2d_direct_simd.h) are written in these names. */
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

#endif /* FC_SIMD_AVX512_H */
