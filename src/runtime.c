/* The kernels' run-time environment: status strings, the choice of SIMD path
 * from the CPU's features, build facts, aligned scratch, and the
 * floating-point state each kernel thread works under. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "fc_internal.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define FC_X86 1
#include <immintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#include <cpuid.h>
#endif
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

static int winograd_mode = FC_WINOGRAD_FAST;

int fc_winograd_current(void) { return winograd_mode; }

int fc_winograd_select(int mode)
{
    if (mode < 0 || mode >= FC_WINOGRAD_COUNT)
        return FC_ERR_UNSUPPORTED;
    winograd_mode = mode;
    return FC_OK;
}

const char *fc_winograd_name(int mode)
{
    switch (mode) {
    case FC_WINOGRAD_OFF: return "off";
    case FC_WINOGRAD_ACCURATE: return "accurate";
    case FC_WINOGRAD_FAST: return "fast";
    default: return "unknown";
    }
}

/* *setting = scale, a scale of fc_winograd_threshold_select's or
 * fc_parallel_threshold_select's. */
static int select_scale(_Atomic double *setting, double scale)
{
    if (!(scale >= 0.0 && scale <= 1e6)) /* also refuses NaN */
        return FC_ERR_UNSUPPORTED;
    *setting = scale;
    return FC_OK;
}

static _Atomic double winograd_threshold = 1.0;

double fc_winograd_threshold_current(void) { return winograd_threshold; }

int fc_winograd_threshold_select(double scale) { return select_scale(&winograd_threshold, scale); }

/* ---- threads per call ---------------------------------------------------- */

static _Atomic double parallel_threshold = 1.0;

double fc_parallel_threshold_current(void) { return parallel_threshold; }

int fc_parallel_threshold_select(double scale) { return select_scale(&parallel_threshold, scale); }

int fc_threads_for(double work, double grain, int n_threads)
{
    if (n_threads <= 1)
        return 1;
    const double share = grain * parallel_threshold;
    if (share <= 0.0)
        return n_threads;
    const double paid = work / share; /* threads the work pays for */
    return paid >= n_threads ? n_threads : paid >= 2.0 ? (int)paid : 1;
}

/* The level-1 data cache's size in bytes, or 0 when the system does not say. */
static long l1d_bytes(void)
{
#if defined(__linux__) && defined(_SC_LEVEL1_DCACHE_SIZE)
    return sysconf(_SC_LEVEL1_DCACHE_SIZE);
#else
    return 0;
#endif
}

/* Whether this CPU runs AVX-512 on 256-bit units, one 512-bit FMA a cycle
 * where a Xeon issues two: AMD's family 0x19 with AVX-512, Zen 4. */
static int avx512_on_half_width_units(void)
{
#if defined(FC_X86) && (defined(__GNUC__) || defined(__clang__))
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) || memcmp(&ebx, "Auth", 4) != 0
        || memcmp(&edx, "enti", 4) != 0 || memcmp(&ecx, "cAMD", 4) != 0
        || !__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    const unsigned base = (eax >> 8) & 0xf;
    const unsigned family = base == 0xf ? base + ((eax >> 20) & 0xff) : base;
    return family == 0x19 && cpu_has(FC_SIMD_AVX512);
#else
    return 0;
#endif
}

ptrdiff_t fc_gemm_kc(const fc_kernel_set *ks)
{
    static atomic_long l1 = -1, half_width = -1; /* read once */
    long bytes = atomic_load_explicit(&l1, memory_order_relaxed);
    if (bytes < 0) {
        bytes = l1d_bytes();
        atomic_store_explicit(&l1, bytes, memory_order_relaxed);
    }
    long halved = atomic_load_explicit(&half_width, memory_order_relaxed);
    if (halved < 0) {
        halved = avx512_on_half_width_units();
        atomic_store_explicit(&half_width, halved, memory_order_relaxed);
    }
    /* ks->kc fills half of a 32 KiB L1 with B's sliver; keep that share of
     * a larger one (up to twice the size). */
    const long used = bytes < (32 << 10) ? (32 << 10) : bytes > (64 << 10) ? (64 << 10) : bytes;
    const ptrdiff_t kc = ks->kc * (used >> 10) / 32;
    /* At one 512-bit FMA a cycle a step of the 6 x 64 tile takes 24 cycles,
     * time enough to bring B's 4 vectors from L2: blocks 4x deeper pass over
     * C a quarter as often (as BLIS's Zen 4 configuration, KC 480-512). */
    return halved && fc_simd_current() == FC_SIMD_AVX512 ? 4 * kc : kc;
}

/* The last-level cache's size in bytes as Linux lists it (the largest of
 * CPU 0's caches in sysfs; glibc's sysconf said 320 MiB for a 2-vCPU Zen 4
 * guest's 32), or 0 if unknown. */
static long llc_bytes(void)
{
#if defined(__linux__)
    long largest = 0;
    for (int i = 0; i < 8; ++i) {
        char path[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *file = fopen(path, "r");
        if (!file)
            break;
        long size = 0;
        char unit = 0;
        const int fields = fscanf(file, "%ld%c", &size, &unit);
        fclose(file);
        if (fields >= 1 && size > 0) {
            size *= unit == 'K' ? 1L << 10 : unit == 'M' ? 1L << 20 : 1;
            largest = size > largest ? size : largest;
        }
    }
    return largest;
#else
    return 0;
#endif
}

ptrdiff_t fc_stream_min_floats(void)
{
    static atomic_long cached = -1; /* read once */
    long floats = atomic_load_explicit(&cached, memory_order_relaxed);
    if (floats < 0) {
        const long llc = llc_bytes();
        floats = llc > 0 ? llc / 8 / (long)sizeof(float) : FC_STREAM_BOUND_MAX_FLOATS;
        floats = floats < FC_STREAM_BOUND_MIN_FLOATS ? FC_STREAM_BOUND_MIN_FLOATS
                 : floats > FC_STREAM_BOUND_MAX_FLOATS ? FC_STREAM_BOUND_MAX_FLOATS
                                                  : floats;
        atomic_store_explicit(&cached, floats, memory_order_relaxed);
    }
    return floats;
}

ptrdiff_t fc_stream_min_bytes(void) { return fc_stream_min_floats() * (ptrdiff_t)sizeof(float); }

const fc_direct_kernel_set *fc_direct_kernels(void)
{
    switch (fc_simd_current()) {
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return fc_direct_kernels_avx2();
#endif
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return fc_direct_kernels_avx512();
#endif
    default: return fc_direct_kernels_portable();
    }
}

const fc_pool_kernel_set *fc_pool_kernels(void)
{
    switch (fc_simd_current()) {
#ifdef FC_HAVE_AVX2
    case FC_SIMD_AVX2: return fc_pool_kernels_avx2();
#endif
#ifdef FC_HAVE_AVX512
    case FC_SIMD_AVX512: return fc_pool_kernels_avx512();
#endif
    default: return NULL;
    }
}

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

/* ---- scratch ----------------------------------------------------------------
 * Kernels allocate their scratch per call. Blocks of a megabyte or more come
 * from the system as fresh pages, and touching them costs a page fault each,
 * so freed blocks are kept in a small cache and handed to the next call that
 * fits. The cache is bounded (FC_SCRATCH_CACHE_BYTES) and guarded by a spin
 * lock: kernels may run concurrently from several Python threads. Each block
 * carries its size in a header one alignment unit long. */


#define FC_SCRATCH_SLOTS 32

#if defined(__SANITIZE_ADDRESS__)
#define FC_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FC_UNDER_ASAN 1
#endif
#endif

#ifdef FC_UNDER_ASAN
/* AddressSanitizer checks the blocks the system allocator hands out: a cached
 * block larger than a later request, or reused after its release, would hide
 * an overflow or a use after release. Under it nothing is cached. */
#define FC_SCRATCH_CACHE_BYTES ((size_t)0)
#else
#define FC_SCRATCH_CACHE_BYTES ((size_t)256 << 20)
#endif

static struct {
    char *block; /* start of the allocation (header included), or NULL */
    size_t bytes;
} scratch_cache[FC_SCRATCH_SLOTS];
static size_t scratch_cached_bytes;
static atomic_flag scratch_lock = ATOMIC_FLAG_INIT;

static void cache_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&scratch_lock, memory_order_acquire))
        ;
}

static void cache_unlock(void) { atomic_flag_clear_explicit(&scratch_lock, memory_order_release); }

/* Blocks of at least this many bytes ask for transparent huge pages (as
 * NumPy does for its arrays): a kernel streaming through tens of MB then
 * misses the TLB 512 times less often. */
#define FC_HUGE_PAGE_BYTES ((size_t)4 << 20)

static char *system_alloc(size_t bytes)
{
    void *p = NULL;
#ifdef _WIN32
    p = _aligned_malloc(bytes, FC_ALIGN);
#else
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= FC_HUGE_PAGE_BYTES) {
        /* Aligned to a huge page, so that every whole 2 MiB of it can be one. */
        if (posix_memalign(&p, (size_t)2 << 20, bytes) != 0)
            return NULL;
        madvise(p, bytes, MADV_HUGEPAGE); /* a hint only */
        return p;
    }
#endif
    if (posix_memalign(&p, FC_ALIGN, bytes) != 0)
        p = NULL;
#endif
    return p;
}

static void system_free(char *p)
{
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
}

void *fc_aligned_alloc(size_t bytes)
{
    const size_t total = bytes + FC_ALIGN;
    char *block = NULL;
    cache_lock();
    int best = -1;
    /* The smallest cached block that fits, if at most twice the size: a
     * small request does not take a large block a later one will want. */
    for (int i = 0; i < FC_SCRATCH_SLOTS; ++i)
        if (scratch_cache[i].block && scratch_cache[i].bytes >= total
            && scratch_cache[i].bytes / 2 <= total
            && (best < 0 || scratch_cache[i].bytes < scratch_cache[best].bytes))
            best = i;
    if (best >= 0) {
        block = scratch_cache[best].block;
        scratch_cached_bytes -= scratch_cache[best].bytes;
        scratch_cache[best].block = NULL;
    }
    cache_unlock();
    if (!block) {
        block = system_alloc(total);
        if (!block)
            return NULL;
        *(size_t *)block = total;
    }
    return block + FC_ALIGN;
}

void fc_aligned_free(void *p)
{
    if (!p)
        return;
    char *block = (char *)p - FC_ALIGN;
    const size_t bytes = *(size_t *)block;
    cache_lock();
    int slot = -1;
    for (int i = 0; i < FC_SCRATCH_SLOTS && slot < 0; ++i)
        if (!scratch_cache[i].block)
            slot = i;
    if (slot < 0) { /* full: evict the smallest block if this one is larger */
        for (int i = 0; i < FC_SCRATCH_SLOTS; ++i)
            if (slot < 0 || scratch_cache[i].bytes < scratch_cache[slot].bytes)
                slot = i;
        if (scratch_cache[slot].bytes >= bytes)
            slot = -1;
    }
    /* A block of more than a quarter of the budget (the bandwidth probe's
     * 128 MiB arrays) is not kept: it would crowd out the working set of
     * outputs and scratch a training step reuses. */
    if (bytes > FC_SCRATCH_CACHE_BYTES / 4)
        slot = -1;
    char *evicted = NULL;
    if (slot >= 0 && scratch_cached_bytes - (scratch_cache[slot].block ? scratch_cache[slot].bytes : 0)
                             + bytes <= FC_SCRATCH_CACHE_BYTES) {
        evicted = scratch_cache[slot].block;
        if (evicted)
            scratch_cached_bytes -= scratch_cache[slot].bytes;
        scratch_cache[slot].block = block;
        scratch_cache[slot].bytes = bytes;
        scratch_cached_bytes += bytes;
        block = NULL;
    }
    cache_unlock();
    system_free(evicted);
    system_free(block);
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

/* A spin-wait's step: x86's pause frees the core's resources for a moment. */
static inline void cpu_relax(void)
{
#ifdef FC_X86
    _mm_pause();
#endif
}

void fc_team_leave(fc_team *team)
{
#ifdef _OPENMP
    const int n_threads = omp_get_num_threads();
    if (n_threads < 2)
        return;
    const int left = atomic_fetch_add_explicit(&team->left, 1, memory_order_acq_rel) + 1;
    if (omp_get_thread_num() != 0)
        return;
    const double until = omp_get_wtime() + FC_TEAM_WAIT_US * 1e-6;
    if (left < n_threads)
        while (atomic_load_explicit(&team->left, memory_order_acquire) < n_threads) {
            if (omp_get_wtime() > until)
                return; /* sleep at the barrier, as without this */
            cpu_relax();
        }
    /* The last to leave is a few instructions from the barrier: let it get
     * there first. */
    const double grace = omp_get_wtime() + FC_TEAM_GRACE_US * 1e-6;
    while (omp_get_wtime() < grace)
        cpu_relax();
#else
    (void)team;
#endif
}

int fc_team_arrive(fc_team *team)
{
#ifdef _OPENMP
    const int n_threads = omp_get_num_threads();
    return atomic_fetch_add_explicit(&team->arrived, 1, memory_order_acq_rel) == n_threads - 1;
#else
    (void)team;
    return 1;
#endif
}

void fc_store_fence(void)
{
#ifdef FC_X86
    _mm_sfence();
#endif
}

void *fc_buffer_alloc(size_t bytes) { return fc_aligned_alloc(bytes); }

void fc_buffer_free(void *p) { fc_aligned_free(p); }
