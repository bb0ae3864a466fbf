/* Max pooling's row kernels for AVX-512F (the template in pool2d_simd.h).
 * Compiled with this ISA's flags for this file only; called only when the
 * CPU reports it. */
#include <math.h>

#include "fc_internal.h"
#include "simd_avx512.h"

#define SET_FN fc_pool_kernels_avx512

#include "pool2d_simd.h"
