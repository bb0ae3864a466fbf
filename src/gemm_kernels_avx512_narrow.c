/* AVX-512F micro-kernel for narrow products (at most 32 columns: a backward-
 * input pass onto 32 channels): a 6 x 32 tile in 12 zmm accumulators, so
 * that B's panels are no wider than the product. Compiled with -mavx512f for
 * this file only; reached only through fc_kernels_avx512's narrow set. */
#include "fc_internal.h"
#include "simd_avx512.h"

#define MR FC_AVX512_MR
#define NR FC_AVX512_NARROW_NR
#define MC FC_AVX512_MC
#define KC FC_AVX512_KC
#define NC FC_AVX512_NC
#define KERNEL_NAME "avx512-narrow"
#define SET_FN fc_kernels_avx512_narrow
#define NARROW_FN fc_kernels_avx512_single

#include "gemm_kernel_simd.h"
