/* AVX-512F micro-kernel for products of at most 16 columns (a backward-input
 * pass onto 16 channels, the default MNIST model's second convolution): a
 * 6 x 16 tile in 6 zmm accumulators. The 6 x 32 tile of the narrow set
 * would spend half its multiply-adds on zero columns; one vector runs 6
 * independent chains per step, three quarters of the two pipes. Compiled
 * with -mavx512f for this file only; reached only through
 * fc_kernels_avx512_narrow's narrow set. */
#include "fc_internal.h"
#include "simd_avx512.h"

#define MR FC_AVX512_MR
#define NR FC_AVX512_SINGLE_NR
#define MC FC_AVX512_MC
#define KC FC_AVX512_KC
#define NC FC_AVX512_NC
#define KERNEL_NAME "avx512-single"
#define SET_FN fc_kernels_avx512_single

#include "gemm_kernel_simd.h"
