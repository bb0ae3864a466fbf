/* The direct few-channel convolution's row kernels for AVX2 + FMA (the template
 * in conv2d_direct_simd.h). Compiled with this ISA's flags for this file
 * only; called only when the CPU reports it. */
#include "fc_internal.h"
#include "simd_avx2.h"

#define SET_FN fc_direct_kernels_avx2

#include "conv2d_direct_simd.h"
