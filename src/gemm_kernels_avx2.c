/* AVX2 + FMA micro-kernel: a 6 x 16 tile in 12 ymm accumulators (the
 * template in gemm_kernel_simd.h). Compiled with -mavx2 -mfma for this file
 * only; called only when the CPU reports both features. */
#include "fc_internal.h"
#include "simd_avx2.h"

#define MR FC_AVX2_MR
#define NR FC_AVX2_NR
#define MC FC_AVX2_MC
#define KC FC_AVX2_KC
#define NC FC_AVX2_NC
#define KERNEL_NAME "avx2"
#define SET_FN fc_kernels_avx2

#include "gemm_kernel_simd.h"
