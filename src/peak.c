/* The machine's peak FMA throughput, measured on the spot so benchmark
 * reports can say how close each kernel gets to the hardware. Each thread
 * runs the selected kernel set's register-only FMA loop: no memory traffic,
 * enough independent chains to fill the FMA pipes. */
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
#ifdef _OPENMP
#pragma omp parallel num_threads(n_threads)
#endif
    {
        const float r = ks->peak_loop(iters);
        peak_sink = r;
    }
    const double elapsed = now_seconds() - t0;
    return (double)n_threads * (double)iters * ks->peak_flops_per_iter / elapsed * 1e-9;
}
