/* AVX-512F micro-kernel: a 6 x 64 tile in 24 zmm accumulators (the template
 * in gemm_kernel_simd.h). Per step of k: four loads of B, six broadcasts of
 * A, 24 FMAs; half the broadcasts per FMA of a 6 x 32 tile and half the
 * restarts, which count where the depth is short (S7's 1x1 forward, k = 64,
 * as a plain GEMM on 2 threads of a Xeon: 2.41 -> 2.29 ms; S7's weight
 * gradient 10 % faster, S8's passes 5 %). Products at most 32 columns wide
 * take the 6 x 32 set of gemm_kernels_avx512_narrow.c instead. Intel cores
 * with two 512-bit FMA pipes double AVX2's throughput; Zen 4 splits each
 * operation into two 256-bit halves. Compiled with -mavx512f for this file
 * only; called only when the CPU reports it. */
#include "fc_internal.h"
#include "simd_avx512.h"

#define MR FC_AVX512_MR
#define NR FC_AVX512_NR
#define MC FC_AVX512_MC
#define KC FC_AVX512_KC
#define NC FC_AVX512_NC
#define KERNEL_NAME "avx512"
#define SET_FN fc_kernels_avx512
#define NARROW_FN fc_kernels_avx512_narrow

#include "gemm_kernel_simd.h"
