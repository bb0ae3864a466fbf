/* The kernels' run-time environment: status strings, the choice of SIMD path
 * from the CPU's features, build facts, aligned scratch, and the
 * floating-point state each kernel thread works under. */
#include <stdlib.h>

#include "fc_internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define FC_X86 1
#include <immintrin.h>
#endif

const char *fc_strerror(int status)
{
    switch (status) {
    case FC_OK: return "success";
    case FC_ERR_NOMEM: return "out of memory for kernel scratch space";
    case FC_ERR_UNSUPPORTED: return "SIMD path not available on this build or CPU";
    default: return "unknown fastconv status";
    }
}

/* ---- SIMD path ----------------------------------------------------------- */

static int cpu_has(int path)
{
#if defined(FC_X86) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    switch (path) {
    case FC_SIMD_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FC_SIMD_AVX512:
        return __builtin_cpu_supports("avx512f");
    default:
        return 0;
    }
#else
    (void)path;
    return 0;
#endif
}

int fc_simd_available(int path)
{
    switch (path) {
    case FC_SIMD_PORTABLE: return 1;
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return cpu_has(FC_SIMD_AVX2);
#endif
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return cpu_has(FC_SIMD_AVX512);
#endif
    default: return 0;
    }
}

static const fc_kernel_set *kernel_set_of(int path)
{
    switch (path) {
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return fc_kernels_avx2();
#endif
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return fc_kernels_avx512();
#endif
    default: return fc_kernels_portable();
    }
}

/* -1 until the first query; then the selected path. Selection is a process-wide
 * setting changed only by fc_simd_select, like a thread count. */
static int selected_path = -1;

static int best_path(void)
{
    for (int p = FC_SIMD_COUNT - 1; p > 0; --p)
        if (fc_simd_available(p))
            return p;
    return FC_SIMD_PORTABLE;
}

int fc_simd_current(void)
{
    if (selected_path < 0)
        selected_path = best_path();
    return selected_path;
}

int fc_simd_select(int path)
{
    if (path < 0 || path >= FC_SIMD_COUNT || !fc_simd_available(path))
        return FC_ERR_UNSUPPORTED;
    selected_path = path;
    return FC_OK;
}

const char *fc_simd_name(int path)
{
    switch (path) {
    case FC_SIMD_PORTABLE: return "portable";
    case FC_SIMD_AVX2: return "avx2";
    case FC_SIMD_AVX512: return "avx512";
    default: return "unknown";
    }
}

const fc_kernel_set *fc_kernels(void) { return kernel_set_of(fc_simd_current()); }

/* ---- build facts ----------------------------------------------------------- */

int fc_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_default_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

const char *fc_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
    return "msvc";
#else
    return "unknown";
#endif
}

/* ---- scratch ----------------------------------------------------------------- */

void *fc_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = FC_ALIGN;
#ifdef _WIN32
    p = _aligned_malloc(bytes, FC_ALIGN);
#else
    if (posix_memalign(&p, FC_ALIGN, bytes) != 0)
        p = NULL;
#endif
    return p;
}

void fc_aligned_free(void *p)
{
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
}

/* ---- floating-point state ---------------------------------------------------- */

fc_fp_state fc_fp_enter(void)
{
#ifdef FC_X86
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned long long saved;
    __asm__ volatile("mrs %0, fpcr" : "=r"(saved));
    __asm__ volatile("msr fpcr, %0" : : "r"(saved | (1ull << 24))); /* FZ */
    return saved;
#else
    return 0;
#endif
}

void fc_fp_leave(fc_fp_state saved)
{
#ifdef FC_X86
    _mm_setcsr((unsigned int)saved);
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ volatile("msr fpcr, %0" : : "r"(saved));
#else
    (void)saved;
#endif
}
