/* AVX-512F micro-kernel: a 6 x 32 tile in 12 zmm accumulators (the template
 * in gemm_kernel_simd.h), the AVX2 kernel's shape at twice the width. Intel
 * cores with two 512-bit FMA pipes double their throughput; Zen 4 splits
 * each operation into two 256-bit halves. Compiled with -mavx512f for this
 * file only; called only when the CPU reports it. */
#include <immintrin.h>

#include "fc_internal.h"

#define VEC __m512
#define VW 16
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_SUM(v) _mm512_reduce_add_ps(v)

#define MR FC_AVX512_MR
#define NR FC_AVX512_NR
#define MC FC_AVX512_MC
#define KC FC_AVX512_KC
#define NC FC_AVX512_NC
#define KERNEL_NAME "avx512"
#define SET_FN fc_kernels_avx512

#include "gemm_kernel_simd.h"
