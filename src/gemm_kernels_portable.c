/* The portable micro-kernel: plain C that compilers vectorise for the
 * baseline ISA of any machine. It is the reference for the SIMD kernels and
 * the path used where no SIMD kernel applies. Its two kernels serve B
 * packed and B read in place alike (ep->b_ld). */
#include "fc_internal.h"

#define MR FC_PORTABLE_MR
#define NR FC_PORTABLE_NR

static void ukernel_portable(ptrdiff_t kc, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                             const float *b, float *const *crow, const fc_tile_epilogue *ep)
{
    float acc[FC_MR_MAX * FC_NR_MAX] = {0};
    const ptrdiff_t bs = ep->b_ld ? ep->b_ld : NR;
    for (ptrdiff_t p = 0; p < kc; ++p) {
        const float *bp = b + p * bs;
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i * rs_a + p * cs_a];
            float *row = acc + i * FC_NR_MAX;
            for (int j = 0; j < NR; ++j)
                row[j] += ai * bp[j];
        }
    }
    fc_tile_store(acc, crow, ep);
}

static void ukernel_taps_portable(ptrdiff_t taps, ptrdiff_t kc, const float *const *a,
                                  const float *b, float *const *crow,
                                  const fc_tile_epilogue *ep)
{
    float acc[FC_MR_MAX * FC_NR_MAX] = {0};
    const ptrdiff_t bs = ep->b_ld ? ep->b_ld : NR;
    for (ptrdiff_t t = 0; t < taps; ++t, a += MR) {
        for (ptrdiff_t p = 0; p < kc; ++p, b += bs) {
            for (int i = 0; i < MR; ++i) {
                const float ai = a[i][p];
                float *row = acc + i * FC_NR_MAX;
                for (int j = 0; j < NR; ++j)
                    row[j] += ai * b[j];
            }
        }
    }
    fc_tile_store(acc, crow, ep);
}

/* Eight independent accumulator rows of 8 floats hide the add latency. */
static float peak_loop_portable(ptrdiff_t iters)
{
    float acc[8][8], x[8];
    for (int j = 0; j < 8; ++j) {
        x[j] = 1.0f + 1e-7f * (float)j;
        for (int i = 0; i < 8; ++i)
            acc[i][j] = (float)i;
    }
    for (ptrdiff_t it = 0; it < iters; ++it)
        for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 8; ++j)
                acc[i][j] = acc[i][j] * x[j] + x[j];
    float s = 0.0f;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
            s += acc[i][j];
    return s;
}

static const fc_kernel_set portable_set = {
    "portable", MR, NR, FC_PORTABLE_MC, FC_PORTABLE_KC, FC_PORTABLE_NC,
    ukernel_portable, ukernel_taps_portable, ukernel_portable, ukernel_taps_portable,
    peak_loop_portable, 8 * 8 * 2, NULL,
};

const fc_kernel_set *fc_kernels_portable(void) { return &portable_set; }
