/* AVX-512F micro-kernel: a 6 x 32 tile in 12 zmm accumulators (the template
 * in gemm_kernel_simd.h), the AVX2 kernel's shape at twice the width. Intel
 * cores with two 512-bit FMA pipes double their throughput; Zen 4 splits
 * each operation into two 256-bit halves. Compiled with -mavx512f for this
 * file only; called only when the CPU reports it. */
#include "fc_internal.h"
#include "simd_avx512.h"

#define MR FC_AVX512_MR
#define NR FC_AVX512_NR
#define MC FC_AVX512_MC
#define KC FC_AVX512_KC
#define NC FC_AVX512_NC
#define KERNEL_NAME "avx512"
#define SET_FN fc_kernels_avx512

#include "gemm_kernel_simd.h"
