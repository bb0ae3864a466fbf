/* The machine's limits, measured on the spot so benchmark reports can say
 * how close each kernel gets to the hardware: peak FMA throughput (each
 * thread runs the selected kernel set's register-only FMA loop: no memory
 * traffic, enough independent chains to fill the FMA pipes) and memory
 * bandwidth (a STREAM-like triad over arrays far larger than the caches). */
#include <time.h>

#include "fc_internal.h"

static double now_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

/* Keeps the loops' results alive so the compiler cannot drop them. */
static volatile float peak_sink;

double fc_peak_gflops(int n_threads, double seconds)
{
    const fc_kernel_set *ks = fc_kernels();
#ifdef _OPENMP
    if (n_threads < 1)
        n_threads = 1;
#else
    n_threads = 1; /* a serial build runs one loop */
#endif
    if (seconds <= 0.0)
        seconds = 0.2;
    /* Calibrate on one thread, then give every thread the same work. */
    ptrdiff_t iters = 1 << 16;
    double t;
    for (;;) {
        const double t0 = now_seconds();
        peak_sink = ks->peak_loop(iters);
        t = now_seconds() - t0;
        if (t > 0.02 || iters > ((ptrdiff_t)1 << 40))
            break;
        iters *= 4;
    }
    iters = (ptrdiff_t)((double)iters * seconds / t) + 1;
    const double t0 = now_seconds();
    FC_OMP(omp parallel num_threads(n_threads))
    {
        const float r = ks->peak_loop(iters);
        peak_sink = r;
    }
    const double elapsed = now_seconds() - t0;
    return (double)n_threads * (double)iters * ks->peak_flops_per_iter / elapsed * 1e-9;
}

double fc_triad_gbs(int n_threads, ptrdiff_t n_floats, int repeats)
{
#ifndef _OPENMP
    n_threads = 1;
#endif
    if (n_threads < 1)
        n_threads = 1;
    if (repeats < 1)
        repeats = 1;
    float *a = fc_aligned_alloc((size_t)n_floats * sizeof(float));
    float *b = fc_aligned_alloc((size_t)n_floats * sizeof(float));
    float *c = fc_aligned_alloc((size_t)n_floats * sizeof(float));
    if (!a || !b || !c) {
        fc_aligned_free(a);
        fc_aligned_free(b);
        fc_aligned_free(c);
        return -1.0;
    }
    double best = 1e300;
    /* First touch from the threads that will stream the arrays. */
    FC_OMP(omp parallel for schedule(static) num_threads(n_threads))
    for (ptrdiff_t i = 0; i < n_floats; ++i) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    for (int r = 0; r < repeats; ++r) {
        const double t0 = now_seconds();
        FC_OMP(omp parallel for schedule(static) num_threads(n_threads))
        for (ptrdiff_t i = 0; i < n_floats; ++i)
            a[i] = b[i] + 3.0f * c[i];
        const double t = now_seconds() - t0;
        best = t < best ? t : best;
    }
    peak_sink = a[n_floats / 2];
    fc_aligned_free(a);
    fc_aligned_free(b);
    fc_aligned_free(c);
    /* STREAM counts 3 arrays moved (2 read, 1 written). */
    return 3.0 * (double)n_floats * sizeof(float) / best * 1e-9;
}
