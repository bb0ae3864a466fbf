/* Max pooling's row kernels for AVX2 (the template in pool2d_simd.h).
 * Compiled with this ISA's flags for this file only; called only when the
 * CPU reports it. */
#include <math.h>

#include "fc_internal.h"
#include "simd_avx2.h"

#define SET_FN fc_pool_kernels_avx2

#include "pool2d_simd.h"
