/* The direct few-channel convolution's row kernels in plain C (the template
 * in conv2d_direct_simd.h at a vector width of one float): the path used
 * where no SIMD path applies, and the one CI forces to test it. */
#include "fc_internal.h"
#include "simd_scalar.h"

#define SET_FN fc_direct_kernels_portable

#include "conv2d_direct_simd.h"
