/* Internal definitions shared by the kernels: block sizes, the micro-kernel
 * interface, the GEMM driver's operand description, and small helpers.
 * Nothing here is part of the public interface (fastconv.h). */
#ifndef FC_INTERNAL_H
#define FC_INTERNAL_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "fastconv.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* An OpenMP directive, or nothing without OpenMP: FC_OMP(omp for nowait). */
#ifdef _OPENMP
#define FC_OMP(directive) _Pragma(#directive)
#else
#define FC_OMP(directive)
#endif

/* ---- block sizes (BLIS naming) ------------------------------------------
 * MR x NR: the register tile of the micro-kernel.
 * KC: depth of one packed block; an MR x KC sliver of A and a KC x NR sliver
 *     of B should sit in L1 while the micro-kernel runs. The values below are
 *     for a 32 KiB L1; fc_gemm_kc scales them to the running CPU's.
 * MC: rows of A packed at once; MC x KC floats should sit in L2 (1-2 MiB).
 * NC: columns of B packed at once; KC x NC floats are shared by all threads
 *     and should sit in L3.
 * The largest MR and NR bound the stack tiles used for edges. */
#define FC_MR_MAX 8
#define FC_NR_MAX 64

#define FC_PORTABLE_MR 4
#define FC_PORTABLE_NR 16
#define FC_PORTABLE_MC 128
#define FC_PORTABLE_KC 256
#define FC_PORTABLE_NC 4096

#define FC_AVX2_MR 6
#define FC_AVX2_NR 16
#define FC_AVX2_MC 144
#define FC_AVX2_KC 256
#define FC_AVX2_NC 4080

#define FC_AVX512_MR 6
#define FC_AVX512_NR 64
#define FC_AVX512_MC 144
#define FC_AVX512_KC 128
#define FC_AVX512_NC 4096
/* AVX-512's set for products at most 32 columns wide: half the tile; and
 * its own narrow set, for at most 16: one vector. */
#define FC_AVX512_NARROW_NR 32
#define FC_AVX512_SINGLE_NR 16

/* A GEMM on several threads packs all of B's depth at once when K x NC
 * floats are at most FC_GEMM_WHOLE_B_FLOATS (512 KiB, half an L2), or at most
 * FC_GEMM_WHOLE_B_MAX_FLOATS (16 MiB) with few row blocks: see fc_gemm_run.
 * Past that the packed copy goes out to memory and is read back (128 x 4096
 * @ 4096 x 4096, 64 MiB packed whole: 24.8 ms, in depth blocks 16.4, NumPy
 * 15.3; at 8 MiB, 128 x 4096 @ 4096 x 512, packing whole is still faster:
 * 2.1 against 2.8-3.0 ms in blocks). */
#define FC_GEMM_WHOLE_B_FLOATS ((ptrdiff_t)1 << 17)
#define FC_GEMM_WHOLE_B_MAX_FLOATS ((ptrdiff_t)1 << 22)
/* A product of one row block, at most FC_GEMM_SPLIT_MAX_PANELS panels wide,
 * is split along its depth into chunks of at least FC_GEMM_SPLIT_DEPTH, at
 * most FC_GEMM_SPLIT_MAX_CHUNKS of them (gemm_run_split in gemm.c). */
#define FC_GEMM_SPLIT_DEPTH 2048
#define FC_GEMM_SPLIT_MAX_CHUNKS 8
#define FC_GEMM_SPLIT_MAX_PANELS 4
/* A plain GEMM's A whose rows are a multiple of 4 KiB apart is read in place
 * (despite the L1 aliasing) when B has at most this many panels: each sliver
 * is read that often, and copying it first cost more (the Keras example's
 * Dense layer, 128 x 9216 x 128: 1.50 -> 1.42 ms; 1024^3, with 32 panels of
 * the 32-wide tile, 3 % slower in place; 16 of the 64-wide tile now). */
#define FC_GEMM_ALIASED_A_MAX_PANELS 8
/* Products of at most this many rows with a row-major B (a Dense layer on one
 * image) skip the blocked GEMM: B is read once in place, each of its rows
 * times the rows' elements of A's column (fc_gemm_f32). Packing B first cost
 * three times the product for one row (9216 x 128: 0.37-0.42 ms, now 0.17,
 * NumPy 0.14); at 4 rows 0.33-0.46 against 0.27-0.29. The register-tiled
 * GEMM keeps more rows (untried on this path). */
#define FC_SMALL_M 4
/* Columns of such a product summed per pass over B (4 x 512 sums: 8 KiB). */
#define FC_SMALL_M_COLS 512
/* A GEMM on several threads whose B is past half an L2, with panels the
 * threads share evenly (or at least 8 each) and at most this many rows per
 * column of B, gives each thread whole panels of C: it packs its own part of B a depth block at a
 * time, which stays in its core's cache for every row block, with no
 * barriers between depth blocks; each thread reads all of A. 2 threads,
 * ops.matmul: 1024^3 5.8 -> 5.4-5.5 ms (NumPy 5.7-6.0), 256 x 2048 @ 2048 x
 * 2048 7.0 -> 5.7-5.8 (NumPy 5.9), 512 x 1024 @ 1024 x 4096 12.4 -> 11.2-11.4
 * (NumPy 11.6), 1568 x 2304 @ 2304 x 256 (8 rows a column) 5.3-5.5 -> 4.8-5.0,
 * 128 x 1024 @ 1024 x 512 0.52-0.54 -> 0.45; a convolution on 8 x 7 x 7 x
 * 512 -> 512 forward 5.6-5.8 -> 4.6-4.7, backward-input 5.8 -> 4.9. At 16 rows
 * a column, 8192 x 512 @ 512 x 512 took 12 % longer. */
#define FC_GEMM_PRIVATE_B_MAX_ROWS_PER_COLUMN 8
/* Products of at most this many rows read B's whole panels in place
 * (fc_gemm_plan.b_rows) rather than packing them: packing reads and writes
 * all of B once, which pays only when enough slivers of A then read each
 * panel from cache. Against packed B on 2 threads, each thread packing its
 * own part (FC_GEMM_PRIVATE_B_MAX_ROWS_PER_COLUMN): 16 x 4096 @ 4096 x 4096
 * 4.45-4.51 -> 2.57-2.61 ms, 8 x 9216 @ 9216 x 128 0.41 -> 0.32, one image
 * through a 512 -> 512 3x3 layer with stride 2 (16 pixels) 0.52-0.56 ->
 * 0.48; at 32 and 49 rows the same, and from 60 rows slower (64 x 4096 @
 * 4096 x 1024 1.93-1.95 -> 2.34-2.36 ms, one 14 x 14 x 512 -> 512 image
 * 2.49-2.56 -> 2.92-2.96). */
#define FC_GEMM_B_IN_PLACE_MAX_M 32
/* Outputs of at least fc_stream_min_floats() floats are written with
 * streaming stores where a GEMM writes them in one pass: each line a plain
 * store misses is first read, and the output would evict what the cache
 * holds. That bound is an eighth of the last-level cache (shared by 8 cores
 * of a Zen CCD, more of a Xeon, other tenants' among them) between 4 and 64
 * MiB. 2 threads, plain against streaming stores: on a 2-vCPU Zen 4 (32 MiB
 * L3, bound 4 MiB) S7's forward (25.7 MB out) 5.7-7.1 -> 4.2-4.4 ms, on 2
 * images (6.4 MB) 1.39-2.27 -> 1.13-1.20, on one (3.2 MB) the same; on the
 * 2-vCPU Xeon (480 MiB L3 reported, bound 64 MiB) plain stores were the
 * faster below 64 MiB: S7's forward 2.09-2.10 ms plain, 2.18-2.22 streamed. */
#define FC_STREAM_BOUND_MIN_FLOATS ((ptrdiff_t)1 << 20)
#define FC_STREAM_BOUND_MAX_FLOATS ((ptrdiff_t)1 << 24)
ptrdiff_t fc_stream_min_floats(void);

/* Rows of the batch reduction of a weight gradient handled by one partial sum. */
#define FC_WGRAD_CHUNK_ROWS 1024
#define FC_WGRAD_MAX_CHUNKS 16
/* Bytes the weight-gradient partial sums may take before chunks are merged. */
#define FC_WGRAD_PARTIAL_BYTES ((ptrdiff_t)16 << 20)
/* Partial sums of at most this many bytes in all are added by the last
 * thread to finish its chunks, in the same parallel region; larger ones by
 * all the threads, in a region of their own (see finish_partials in
 * conv2d.c). */
#define FC_WGRAD_ONE_THREAD_SUM_BYTES ((ptrdiff_t)4 << 20)
/* A pointwise layer's backward takes dy in blocks of at most this many
 * bytes, each read from memory once for both gradients and kept in L2
 * between their products (see pointwise_backward in conv2d.c). */
#define FC_POINTWISE_BLOCK_BYTES ((ptrdiff_t)512 << 10)
/* Rows per chunk of a batch normalisation's sums over rows (batch_norm.c). */
#define FC_BATCH_NORM_CHUNK_ROWS 1024
/* Elements per work item when adding partial sums. */
#define FC_REDUCE_BLOCK 4096
/* Rows of dw per item of the threaded transpose of its partial sums. */
#define FC_TRANSPOSE_STRIP 64

/* Backward-input with at most this many input channels goes through col2im
 * (the phase GEMMs would use only c columns of the register tile), computing
 * the im2col gradient in blocks of at most this many floats per thread. */
#define FC_COL2IM_MAX_CHANNELS 8
#define FC_COL2IM_BLOCK_FLOATS 32768

/* Convolutions with at least this many input channels read their input in
 * place through row pointers (indirect GEMM) rather than packing im2col rows:
 * faster from 2 channels up (S8 forward -10 %); with one, each pointer serves
 * a single multiply-add per row. */
#define FC_INDIRECT_MIN_CHANNELS 2
/* Bytes of B's packed panel per depth block of an indirect GEMM (from L2):
 * 10 taps of 64 channels on the 64-wide AVX-512 tile, as many as 80 KiB held
 * for the 32-wide tile before it. S8's 9 taps in one block, not 5 + 4: its
 * forward and backward-input passes 1-1.5 % faster (six A/B runs), C written
 * once instead of accumulated. */
#define FC_INDIRECT_PANEL_BYTES (160 << 10)

/* Winograd F(2x2, 3x3) for stride-1 layers with at least this many
 * input channels and filters (below it the transforms outweigh the saved
 * multiplications), in blocks of tiles whose transformed inputs and outputs
 * take about FC_WINOGRAD_BLOCK_FLOATS (half an L2 of 1 MiB: with the U panels
 * and the input beside them, 1 MiB of V and M was 5-12 % slower on S2, S4,
 * S6), and FC_WINOGRAD_WGRAD_BLOCK_FLOATS for the weight gradient, whose
 * blocks of tiles are its GEMMs' depth (at most FC_WINOGRAD_WGRAD_MAX_TILES). */
#define FC_WINOGRAD_MIN_CHANNELS 16
/* Channels times filters up to which 3x3 and 5x5 layers take the 6x6-domain
 * Winograd (winograd_6x6.c) for their forward and backward-input passes: its
 * U panels, 36 c f floats, then take at most 9 MiB. Past FC_WINOGRAD_L2_FLOATS
 * (2 MiB, this Xeon's L2) U no longer stays in L2 beside the blocks of tiles,
 * and every block reads it again: then blocks of FC_WINOGRAD_LARGE_BLOCK_FLOATS,
 * V and M in L3 too (S5's 128 x 256 took 45 % longer than F(2x2, 3x3) with
 * the small blocks, 10 % with blocks 4x larger, and now 25-30 % less; 256 x
 * 256 on 8 x 8 images 37 % less). The weight gradient reads no U; its limit
 * keeps at least 3 partial sums of 36 c f floats within FC_WGRAD_PARTIAL_BYTES
 * (S5: 5.0 against 6.0 ms). */
/* What transforming the kernel costs a Winograd forward pass, in multiply-
 * adds per float of the transformed kernel (xi per channel-filter pair, xi
 * the positions of its domain): the pass reads w, writes U and reads it back
 * for the products, about as long as 80 multiply-adds take per float of U.
 * A method whose tiles save fewer multiply-adds per pair than that (xi
 * floats of U) is slower than the GEMM: an image of 14 x 14 x 256 -> 256,
 * 16 tiles of the 6x6 domain, took 2.06 ms against 1.05 by the GEMM. */
#define FC_WINOGRAD_KERNEL_COST 80
/* The same for F(2x2, 3x3), which serves layers of more channel-filter pairs
 * than the 6x6 domain, whose GEMMs give each thread its own part of B
 * (FC_GEMM_PRIVATE_B_MAX_ROWS_PER_COLUMN): against that GEMM, 8 x 7 x 7 x
 * 512 -> 512 (its tiles saving 1.16 times 80 a float) took 5.2-5.3 ms
 * forward and 5.8 backward-input by F(2x2, 3x3) against 4.5-4.6 and 4.9-5.3,
 * and 16 x 7 x 7 x 512 -> 512 (2.3 times) 8.9 and 9.2 against 8.7 and 9.1. */
#define FC_WINOGRAD_2X2_KERNEL_COST 160
/* A weight gradient's transformed products (16 or 36 floats per channel-
 * filter pair, summed over every tile) past 8 MB cost it more, per float,
 * than the GEMM's writing of dw: 512 -> 512 layers on 7 x 7 images took 23-37
 * % longer by F(3x3, 2x2) than by the GEMM at batch 8-32, and only blocks of
 * 8 x 8 images (no tile cut by the edge) at batch 32 or more paid (10 %).
 * Up to 256 x 256 the method paid on every batch measured (1-8 images of 7 x
 * 7 and 14 x 14: 27-33 % less time). */
#define FC_WINOGRAD_WGRAD_LARGE_FLOATS ((ptrdiff_t)1 << 21)
#define FC_WINOGRAD_WGRAD_KERNEL_COST 600
#define FC_WINOGRAD_6X6_MAX_CF (1 << 16)
/* The transformed kernel (U: 4 phases of 25 or 36 positions per channel-
 * filter pair) up to which stride-2 layers take winograd_strided.c, 8 MB:
 * 32 x 32 x 32 x 64 -> 256, 4x4, 6.4 MB of U, 12.0 -> 8.6 ms forward, 14.6
 * -> 8.4 weight gradient; 32 x 16 x 16 x 128 -> 128, 5x5, 9.4 MB, lost 10 %
 * backward-input and gained nothing elsewhere; 16 x 16 x 16 x 256 -> 256,
 * 5x5, 37.7 MB, took 15.9 ms forward and 20 backward-input against 10.4
 * and 10.7 by the GEMM. */
#define FC_WINOGRAD_STRIDED_MAX_U_FLOATS ((ptrdiff_t)1 << 21)
#define FC_WINOGRAD_6X6_WGRAD_MAX_CF (1 << 15)
#define FC_WINOGRAD_BLOCK_FLOATS (1 << 17)
#define FC_WINOGRAD_L2_FLOATS (1 << 19) /* also the weight gradient's S: winograd.c */
#define FC_WINOGRAD_LARGE_BLOCK_FLOATS (1 << 20)
/* The transposed backward-input's blocks hold whole images: up to this many
 * floats of an image's transformed tiles (2 MiB), and its U stays in L2
 * (at most 2.25 MiB). */
#define FC_WINOGRAD_TRANSPOSED_MAX_IMAGE_FLOATS (1 << 19)
#define FC_WINOGRAD_TRANSPOSED_MAX_CF (1 << 14)
#define FC_WINOGRAD_WGRAD_BLOCK_FLOATS (1 << 18)
#define FC_WINOGRAD_WGRAD_MAX_TILES 256

/* Work (multiply-adds, or elements touched) each thread of a call must have
 * before another is woken for it, by kind of kernel: a call runs on one
 * thread below two grains, on k threads from k grains. Waking a sleeping
 * thread (OMP_WAIT_POLICY=PASSIVE) costs 40-60 us on the 2-vCPU VMs these
 * were measured on, more for kernels that meet at barriers, so each grain is
 * half the work at which two threads first beat one there: elementwise and
 * pooling passes 0.3-0.45M elements (about 80 us on one thread), the direct
 * convolution 3-6M multiply-adds, the GEMMs 12-40M, Winograd 50-60M (its
 * stages meet at barriers). The thread count never changes a result, so these
 * are free to tune; fc_parallel_threshold_select scales them all. */
#define FC_GRAIN_ELEMENTS ((double)(3 << 16))
#define FC_GRAIN_DIRECT ((double)(1 << 21))
#define FC_GRAIN_GEMM ((double)(1 << 23))
#define FC_GRAIN_WINOGRAD ((double)(1 << 25))

#define FC_ALIGN 64
#define FC_ALIGN_FLOATS (FC_ALIGN / (ptrdiff_t)sizeof(float))

/* Loops the compiler vectorises (pooling, Winograd transforms, some im2col
 * packing, the elementwise kernels): on x86 with GCC such a function is also
 * compiled for AVX2 and AVX-512, and the loader picks the version for the
 * running CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FC_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FC_VECTOR_CLONES
#endif

/* ---- micro-kernel ------------------------------------------------------- */

/* What the micro-kernel does with its MR x NR result. */
typedef struct {
    int mr, nr;          /* valid rows and columns of this tile */
    int accumulate;      /* 1: C += AB; 0: C = AB (+ bias) */
    const float *bias;   /* NULL, or the NR bias values of this tile's columns */
    int relu;            /* apply max(0, .) after everything else */
    int stream;          /* full tiles of 64-byte aligned rows may bypass the cache */
    ptrdiff_t b_ld;      /* 0: B is a packed panel; else B's rows are b_ld floats apart */
    /* NULL, or bytes [prefetch, prefetch_end) that the caller reads next,
     * fetched while the tile computes (see fc_prefetch_queue). */
    const char *prefetch, *prefetch_end;
    /* Kernels over taps (fc_ukernel_taps_fn): NULL, or the next sliver's
     * row pointers, laid out as the tile's, whose rows the kernel fetches
     * while it computes: a strided layer's input pixels, which the
     * hardware's prefetchers miss (S8's forward 7 % faster on a Zen 4). */
    const float *const *next_rows;
} fc_tile_epilogue;

/* C tile (rows crow[0..mr), columns 0..nr) op= A sliver x B sliver.
 * A is MR rows by kc: element (i, p) at a[i * rs_a + p * cs_a]; callers pass
 * either (rs_a = lda, cs_a = 1), rows of a row-major block, or
 * (rs_a = 1, cs_a = MR), an interleaved panel, or (rs_a = 1, cs_a = ld), the
 * transpose of a row-major block. B is a packed panel, element (p, j) at
 * b[p * NR + j], or for the kernel set's *_b_rows kernels NR columns of a
 * row-major matrix read in place, element (p, j) at b[p * ep->b_ld + j].
 * All MR rows of A are read (rows past mr hold finite filler) but only valid
 * rows and columns of C are touched. */
typedef void (*fc_ukernel_fn)(ptrdiff_t kc, const float *a, ptrdiff_t rs_a,
                              ptrdiff_t cs_a, const float *b,
                              float *const *crow, const fc_tile_epilogue *ep);

/* C tile op= sum over t < taps of (A_t sliver x the next kc rows of B), where
 * row i of A_t is the kc contiguous floats at a[t * MR + i]: the A operand is
 * read in place through a table of row pointers (indirect GEMM), as a
 * convolution's input pixels are, tap after tap. Rows past mr must still
 * point at kc readable floats. */
typedef void (*fc_ukernel_taps_fn)(ptrdiff_t taps, ptrdiff_t kc, const float *const *a,
                                   const float *b, float *const *crow,
                                   const fc_tile_epilogue *ep);

typedef struct fc_kernel_set_ {
    const char *name;
    int mr, nr;
    ptrdiff_t mc, kc, nc;
    fc_ukernel_fn ukernel;
    fc_ukernel_taps_fn ukernel_taps;
    /* The same two with B's rows read in place (ep->b_ld; whole panels
     * only): the ones above take B packed, whatever ep->b_ld says. */
    fc_ukernel_fn ukernel_b_rows;
    fc_ukernel_taps_fn ukernel_taps_b_rows;
    /* Peak-throughput probe: iters rounds of independent register FMAs,
     * peak_flops_per_iter flops each; returns a value that depends on them. */
    float (*peak_loop)(ptrdiff_t iters);
    int peak_flops_per_iter;
    /* NULL, or the set for products at most its nr columns wide, whose
     * panels would fill at most half of this set's tile. */
    const struct fc_kernel_set_ *(*narrow)(void);
} fc_kernel_set;

/* The set chosen by fc_simd_select (or the best available). */
const fc_kernel_set *fc_kernels(void);

/* The set of fc_kernels() for a product n columns wide: the narrowest of
 * its chain of narrow sets that n fits. Whatever packs B panels and whatever
 * multiplies them use the set this returns for the same n. */
static inline const fc_kernel_set *fc_kernels_for(ptrdiff_t n)
{
    const fc_kernel_set *ks = fc_kernels();
    while (ks->narrow && n <= ks->narrow()->nr)
        ks = ks->narrow();
    return ks;
}

/* The nominal depth block of set ks on this CPU: ks->kc scaled with the
 * level-1 data cache (up to 64 KiB), so that B's KC x NR sliver fills half of
 * it. A deeper sliver means fewer passes over C and restarts of the
 * micro-kernel; more than half of L1 and A's and C's lines evict it. With
 * 48 KiB (Zen 5, Sapphire Rapids): 1.5x. On a Xeon, 1024^3 on 2 threads
 * 6.2 -> 6.05 ms against twice ks->kc (the convolution GEMMs unchanged).
 * AVX-512 on a Zen 4 (one 512-bit FMA a cycle, B's sliver fed from L2 in
 * time): 4x, 512. One thread: 4096 x 512 @ 512 x 512 22.2-23.2 -> 18.9-19.1
 * ms, 16384 x 512 @ 512 x 32 7.5-8.5 -> 5.0, 1024^3 21.6-22.5 -> 19.9; 2
 * threads: 25088 x 256 @ 256 x 64 (S7's backward-input) 4.14-4.17 ->
 * 3.79-3.83; the convolutions' own GEMMs within noise. */
ptrdiff_t fc_gemm_kc(const fc_kernel_set *ks);

const fc_kernel_set *fc_kernels_portable(void);
#ifdef FC_HAVE_AVX2
const fc_kernel_set *fc_kernels_avx2(void);
#endif
#ifdef FC_HAVE_AVX512
const fc_kernel_set *fc_kernels_avx512(void);
const fc_kernel_set *fc_kernels_avx512_narrow(void);
const fc_kernel_set *fc_kernels_avx512_single(void);
#endif

/* Applies the epilogue to an MR_MAX x NR_MAX accumulator tile held in memory
 * (row stride FC_NR_MAX): the shared path for edge tiles. */
void fc_tile_store(const float *acc, float *const *crow, const fc_tile_epilogue *ep);

/* ---- the GEMM driver --------------------------------------------------- */

/* Where row m of C lives: m is split as (img, a, b) over a grid of
 * ga x gb rows per image, and row = base + img*s_img + a*s_a + b*s_b.
 * A plain matrix is ga = 1, gb = m, s_b = ldc. Columns are contiguous. */
typedef struct {
    float *base;
    ptrdiff_t ga, gb;
    ptrdiff_t s_img, s_a, s_b;
} fc_row_map;

/* Pointers to rows [m0, m0 + count) of C, divisions only for the first. */
static inline void fc_row_ptrs(const fc_row_map *map, ptrdiff_t m0, ptrdiff_t count, float **out)
{
    const ptrdiff_t per_img = map->ga * map->gb;
    ptrdiff_t img = m0 / per_img, r = m0 - img * per_img;
    ptrdiff_t a = r / map->gb, b = r - a * map->gb;
    for (ptrdiff_t i = 0; i < count; ++i) {
        out[i] = map->base + img * map->s_img + a * map->s_a + b * map->s_b;
        if (++b == map->gb) {
            b = 0;
            if (++a == map->ga) {
                a = 0;
                ++img;
            }
        }
    }
}

/* Memory that a caller reads after a product, fetched into cache while
 * the product computes: each tile takes the next kc / 2 lines of the
 * ranges, in order, and its micro-kernel fetches two of them every four
 * steps of k, where the FMAs hide the memory's latency (a pointwise
 * layer's next block of rows, which otherwise waited on memory between two
 * products: S7's weight gradient on a 2-vCPU Zen 4 14 % faster). The
 * product advances next[] as it goes; what it does not reach (a tile's
 * steps past its unrolled groups, tiles past the ranges' size) is left to
 * the caller's own reads. */
typedef struct {
    const char *next[2], *end[2];
} fc_prefetch_queue;

/* Packs rows [i0, i0+mc) and depth [p0, p0+kc) of A into dst.
 * Row-major layout: row i at dst + i*kc. Interleaved layout: panels of mr
 * rows, element (i, p) at dst[(i/mr)*mr*kc + p*mr + i%mr], rows past mc zero. */
typedef void (*fc_pack_a_fn)(const void *ctx, ptrdiff_t i0, ptrdiff_t mc,
                             ptrdiff_t p0, ptrdiff_t kc, int mr, float *dst);

/* Packs depth [p0, p0+kc) and columns [j0, j0+nr_valid) of B as one panel:
 * element (p, j) at dst[p*nr + j], columns past nr_valid zero. */
typedef void (*fc_pack_b_fn)(const void *ctx, ptrdiff_t p0, ptrdiff_t kc,
                             ptrdiff_t j0, ptrdiff_t nr_valid, int nr, float *dst);

/* Row pointers of A for an indirect GEMM: for rows [i0, i0+mc) and taps
 * [t0, t0+taps), the row of sliver s (rows i0 + s*mr ...), tap t0 + u and
 * sliver row r goes to dst[(s*taps + u)*mr + r]. Rows past mc must point at
 * readable floats too. */
typedef void (*fc_rows_a_fn)(const void *ctx, ptrdiff_t i0, ptrdiff_t mc, ptrdiff_t t0,
                             ptrdiff_t taps, int mr, const float **dst);

typedef struct {
    ptrdiff_t m, n, k;
    fc_pack_a_fn pack_a;
    const void *a_ctx;
    int a_interleaved;   /* layout pack_a writes */
    fc_pack_b_fn pack_b;
    const void *b_ctx;
    fc_row_map c;
    const float *bias;   /* NULL or n values */
    int relu;
    /* With pack_a NULL, A is read in place: element (i, p) at
     * a_base[i*a_rs + p*a_cs], with a_cs == 1 or a_rs == 1 (the shapes the
     * micro-kernels take). Only full slivers are read in place; a last,
     * partial sliver is copied so no row past m is ever touched. */
    const float *a_base;
    ptrdiff_t a_rs, a_cs;
    int stream;          /* C's tiles written in one pass may bypass the cache */
    /* With rows_a set (and pack_a NULL), A is read in place through row
     * pointers: its depth is made of taps of a_tap_depth contiguous floats,
     * and rows_a(a_ctx, ...) gives each row's pointer for each tap. */
    fc_rows_a_fn rows_a;
    ptrdiff_t a_tap_depth;
    /* C += A B (no bias): one product's depth walked in several calls
     * (fc_gemm_run_serial). */
    int accumulate;
    /* NULL, or B as a row-major matrix, element (p, j) at b_rows[p * b_ld +
     * j] (what pack_b packs): its panels of NR columns all inside n are then
     * read in place, never packed. Packing B reads and writes all of it
     * once, which pays only when many slivers of A read each panel: see
     * FC_GEMM_B_IN_PLACE_MAX_M. */
    const float *b_rows;
    ptrdiff_t b_ld;
    /* NULL, or memory to fetch while the product computes (serial products
     * only: fc_gemm_run_serial advances it). */
    fc_prefetch_queue *prefetch;
} fc_gemm_plan;

/* Runs C = A B (+ bias) (ReLU) with the current kernel set. Each C tile is
 * computed by one thread in a fixed order, so results do not depend on
 * n_threads. */
int fc_gemm_run(const fc_gemm_plan *plan, int n_threads);

/* A product on the calling thread alone, in the caller's memory, for a
 * driver that interleaves products block by block (a pointwise layer's
 * backward: each block of dy, read once from memory, serves both gradients).
 * B is packed by fc_gemm_pack_b (fc_gemm_packed_b_floats floats) and may
 * serve several products of the same n and k; the workspace
 * (fc_gemm_serial_ws_floats floats, which serve any plan of the same m and n
 * and at most that k) is zeroed before its first use. Each C tile sums the
 * depth blocks in the order fc_gemm_run does. The plan reads A in place or
 * packs it (no rows_a), and its n is at most fc_gemm_serial_max_n(). */
ptrdiff_t fc_gemm_packed_b_floats(const fc_gemm_plan *plan);
ptrdiff_t fc_gemm_serial_ws_floats(const fc_gemm_plan *plan);
void fc_gemm_pack_b(const fc_gemm_plan *plan, float *b_packed);
void fc_gemm_run_serial(const fc_gemm_plan *plan, const float *b_packed, float *ws);
/* The widest product fc_gemm_run_serial takes. */
ptrdiff_t fc_gemm_serial_max_n(void);
/* The deepest depth block of a product n columns wide: a product of a
 * multiple of it in depth is cut into blocks of exactly that. */
ptrdiff_t fc_gemm_max_kc(ptrdiff_t n);

/* Runs count independent GEMMs (writing disjoint parts of C), as fc_gemm_run
 * would one after another, but on one team with one barrier when each is one
 * stage of one column block: every B packed first, then all their row
 * blocks. For the phases of a strided backward-input pass. */
#define FC_GEMM_MAX_BATCH 16
int fc_gemm_run_batch(const fc_gemm_plan *plans, int count, int n_threads);

/* B operand: rows grouped in taps of rows_per_tap rows each; row
 * (t, r) starts at base + tap_off[t] + r*ld; columns contiguous. A plain
 * row-major matrix is one tap with tap_off = {0}. */
typedef struct {
    const float *base;
    ptrdiff_t ld, rows_per_tap;
    const ptrdiff_t *tap_off;
} fc_tapped_matrix;

/* A row-major matrix: element (i, p) at a[i * lda + p]. */
typedef struct {
    const float *a;
    ptrdiff_t lda;
} fc_plain_matrix;

/* pack_b of the transpose of a row-major n x k matrix (ctx an
 * fc_plain_matrix): element (p, j) of op(B) is a[j * lda + p]. */
void fc_pack_b_transposed(const void *ctx, ptrdiff_t p0, ptrdiff_t kc, ptrdiff_t j0,
                          ptrdiff_t nr_valid, int nr, float *dst);

/* dst (cols x rows, rows ld_dst apart) = the transpose of src (rows x
 * cols, rows ld_src apart). */
void fc_transpose_f32(ptrdiff_t rows, ptrdiff_t cols, const float *src, ptrdiff_t ld_src,
                      float *dst, ptrdiff_t ld_dst);

void fc_pack_b_tapped(const void *ctx, ptrdiff_t p0, ptrdiff_t kc,
                      ptrdiff_t j0, ptrdiff_t nr_valid, int nr, float *dst);
/* pack_b of a tapped matrix (ctx an fc_tapped_matrix) whose taps are stored
 * transposed: element (t * rows_per_tap + r, j) is base[tap_off[t] + j * ld
 * + r]. */
void fc_pack_b_tapped_transposed(const void *ctx, ptrdiff_t p0, ptrdiff_t kc, ptrdiff_t j0,
                                 ptrdiff_t nr_valid, int nr, float *dst);

/* ---- dilated convolution on the image's phases (conv2d_dilated.c) ------ */

/* 1 when d (stride 1, dilated) runs as one undilated convolution of its
 * phase images: padding at the top and left, sizes in and out multiples of
 * the dilations, and a Winograd method for the phase images' layer. */
int fc_conv2d_dilated_applies(const fc_conv2d_desc *d);
/* fc_conv2d_forward_f32 of such a layer. */
int fc_conv2d_dilated_forward_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                  const float *b, float *y, int n_threads);
/* Its gradients: dx and dw (with db) as fc_conv2d_backward_f32 takes them
 * (d->relu: x is a ReLU's output and dx goes through it), or dx alone (dw
 * NULL, x unread, no ReLU) or dw and db alone (dx NULL, w unread). */
int fc_conv2d_dilated_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                   const float *w, float *dx, float *dw, float *db,
                                   int n_threads);

/* ---- Winograd convolution (winograd.c) --------------------------------- */

/* 1 when d is a stride-1, undilated convolution with a kernel of at least
 * 3x3 (cut into 3x3 pieces) and enough channels to be worth the transform. */
int fc_winograd_applies(const fc_conv2d_desc *d);

/* The method of d's forward pass (or of the rotated forward pass that gives
 * a backward-input pass): a Winograd method where one applies and the
 * multiply-adds it saves pay for transforming the kernel (see
 * FC_WINOGRAD_KERNEL_COST), else the GEMM or direct kernels. */
enum { FC_FORWARD_NO_WINOGRAD, FC_FORWARD_WINOGRAD_2X2, FC_FORWARD_WINOGRAD_6X6 };
int fc_winograd_forward_method(const fc_conv2d_desc *d);
/* 1 when the Winograd weight gradient of d (for which fc_winograd_applies,
 * or fc_winograd_strided_applies) pays against the GEMM's: always while its transformed products take at
 * most FC_WINOGRAD_WGRAD_LARGE_FLOATS, past that as fc_winograd_forward_method
 * weighs a forward pass, at FC_WINOGRAD_WGRAD_KERNEL_COST. */
int fc_winograd_backward_weight_pays(const fc_conv2d_desc *d);
/* What every Winograd pass below returns (instead of FC_OK) when it meets
 * an infinity or NaN: in a weight (found by the weight transform, before
 * anything is written) or in its results (found as they are written, or in
 * dw). The transforms spread each value over whole tiles, so an infinity
 * makes NaN over whole output tiles where the direct sums give infinities,
 * or finite values past its reach. The caller takes another method, which
 * writes the whole output. */
#define FC_NONFINITE 1

/* 1 when none of count floats is an infinity or NaN (no early exit, so the
 * loop vectorises). */
static inline int fc_all_finite(const float *a, ptrdiff_t count)
{
    uint32_t bad = 0;
    for (ptrdiff_t i = 0; i < count; ++i) {
        uint32_t bits;
        memcpy(&bits, a + i, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u; /* the exponent all ones */
    }
    return !bad;
}
/* Whether a Winograd method of xi products per tile and channel-filter pair
 * (and xi floats of transformed kernel per pair), on tiles tiles, saves at
 * least cost multiply-adds (times fc_winograd_threshold_current's scale) per
 * float of its transformed kernel against the direct method's n ho wo kh kw.
 * With the scale at 0, always. */
int fc_winograd_pays(const fc_conv2d_desc *d, ptrdiff_t tiles, ptrdiff_t xi, double cost);
/* 1 when the stride-2 4x4 or 5x5 layer d runs its forward and backward-
 * input passes by winograd_strided.c: Winograd with 4x4 tiles on its input's
 * phase images, where that pays (fc_winograd_pays); its weight gradient too
 * where fc_winograd_backward_weight_pays. */
int fc_winograd_strided_applies(const fc_conv2d_desc *d);
/* y = conv(x, w) + b (ReLU) for such a layer; overwrites y, or returns
 * FC_NONFINITE. */
int fc_conv2d_winograd_strided_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                   const float *b, float *y, int n_threads);
/* Its weight gradient's pieces, for fc_conv2d_winograd_backward_weight_f32:
 * the domain's positions (25 or 36); V[xi][t][ph * c + ch] of tiles [t0, t0
 * + count), the forward pass's transformed phase patches (4x4 output tiles,
 * positions ld floats apart); the transformed 4x4 tiles of dy packed as B
 * panels (nr filters, kc tiles each; dy's sums added to db); and dw = G^T S
 * G (S[xi] of 4 c rows of f at s + xi * ld_s) for the channel-filter pairs
 * [cf0, cf1) of every tap. */
int fc_winograd_strided_positions(const fc_conv2d_desc *d);
void fc_winograd_strided_inputs(const fc_conv2d_desc *d, const float *x, ptrdiff_t tiles_h,
                                ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld,
                                const float *zeros, float *v);
void fc_winograd_strided_grads(const fc_conv2d_desc *d, const float *dy, ptrdiff_t tiles_h,
                               ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t kc,
                               int nr, ptrdiff_t ld, const float *zeros, float *zp, float *db);
void fc_winograd_strided_weights(const fc_conv2d_desc *d, const float *s, ptrdiff_t ld_s,
                                 float *dw, ptrdiff_t cf0, ptrdiff_t cf1);
/* dx of such a layer; with mask (NULL, or an array of dx's shape), dx is 0
 * where the mask is not positive. Overwrites dx, or returns FC_NONFINITE. */
int fc_conv2d_winograd_strided_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                                  const float *w, const float *mask, float *dx,
                                                  int n_threads);
/* y = conv(x, w) + b (ReLU) by Winograd F(2x2, 3x3); overwrites y. With
 * rotate, w is read as the rotated, transposed kernel of a backward-input
 * pass: d->c is then w's filter count and d->f its channel count. */
int fc_conv2d_winograd_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                           int rotate, const float *b, float *y, int n_threads);
/* How a one-piece Winograd forward pass (winograd_6x6.c, winograd_strided.c)
 * cuts its tiles into blocks: run tiles a block (a multiple of MR), so that
 * the blocks' V (depth floats a tile and position) and M (f) fill about half
 * an L2 beside U (xi positions of depth x f, in panels), or, with U past L2
 * (read again from L3 by every block), large blocks in a count that keeps
 * every thread busy; ld_v and ld_m floats between positions of V and M, and
 * per_thread floats of a thread's workspace: V, M, then extra floats. */
typedef struct {
    ptrdiff_t run, n_blocks, ld_v, ld_m, per_thread;
    int threads;
} fc_winograd_blocks;
fc_winograd_blocks fc_winograd_plan_blocks(ptrdiff_t tiles, int xi, ptrdiff_t depth, ptrdiff_t f,
                                           ptrdiff_t extra, int n_threads);
/* M[xi] (count, f) = V[xi] (count, c) x U[xi] for xi < positions, one block
 * of tiles of a one-piece forward pass: V's rows (a tile's c floats each)
 * read in place, up to a whole last sliver of rows (kept finite); U packed
 * as B panels of the micro-kernel, c rows each, all panels of a position
 * together; V, M ld_v, ld_m floats between positions. */
void fc_winograd_products(int positions, const float *v, ptrdiff_t ld_v, ptrdiff_t c,
                          const float *up, ptrdiff_t f, ptrdiff_t count, float *m, ptrdiff_t ld_m);
/* 1 when d is a 3x3 or 5x5 layer for fc_winograd_applies, with at most max_cf
 * channel-filter pairs, that winograd_6x6.c serves better: F(4x4, 3x3) or
 * F(2x2, 5x5). */
int fc_winograd_6x6_applies(const fc_conv2d_desc *d, ptrdiff_t max_cf);
/* As fc_conv2d_winograd_f32, on the 6x6 domain, for those layers; with mask
 * (NULL, or an array of y's shape), y is 0 where the mask is not positive. */
int fc_conv2d_winograd_6x6_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                               int rotate, const float *b, const float *mask, float *y,
                               int n_threads);
/* 1 when a max pooling p takes 2x2 windows, stride 2, unpadded: each window
 * within one of the forward pass's tiles. */
int fc_winograd_6x6_pools(const fc_pool2d_desc *p);
/* fc_conv2d_winograd_6x6_f32's forward pass and the max pooling p of its
 * output (fc_winograd_6x6_pools: else FC_ERR_UNSUPPORTED) in one pass, the
 * convolution's output never written: y (n, ho/2, wo/2, f) and argmax (or
 * NULL) as fc_max_pool2d_forward_argmax_f32 writes them from it, p's dropout
 * included, the same bits. FC_NONFINITE (y and argmax undefined) where the
 * unpooled pass returns it. */
int fc_conv2d_winograd_6x6_max_pool2d_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                          const float *x, const float *w, const float *b,
                                          float *y, uint8_t *argmax, int n_threads);
/* How fc_winograd_6x6_transform_weights reads w: a forward pass's kernel
 * (r, r, c, f), or the kernel (r, r, f, c) of a layer whose backward-input
 * pass this is, with channels and filters swapped (d->c is then w's filter
 * count), and rotated by 180 degrees for a forward pass of dy. */
enum { FC_WEIGHTS_FORWARD, FC_WEIGHTS_ROTATED, FC_WEIGHTS_TRANSPOSED };
/* U = G g G^T of every channel-filter pair, packed as the micro-kernel's B
 * panels (nr wide, d->c rows each), all panels of a position together.
 * Returns 0 when a weight is infinite or NaN (U is then of no use: see
 * FC_NONFINITE), else 1. */
int fc_winograd_6x6_transform_weights(const fc_conv2d_desc *d, const float *w, int view, int nr,
                                       float *up, int n_threads);
/* The 6x6 domain's pieces, for winograd_strided.c: G (6 x r, r = 3 or 5) in
 * double; out[xi * ld + ch] = (B^T d B)[xi] of the 6x6 patch of pixels
 * p[i * 6 + j] (c channels each); and one 4x4 tile's y = A^T m A + bias
 * (ReLU) from m[xi * ld_block + fo], its rows ld_row floats apart (nonzero
 * when an output is an infinity or NaN). */
void fc_winograd_6x6_kernel_matrix(int r, double G[6][5]);
void fc_winograd_6x6_patch(const float *const *p, ptrdiff_t c, ptrdiff_t ld, float *out);
int fc_winograd_6x6_output_tile4(const float *in, ptrdiff_t ld_block, ptrdiff_t f,
                                 const float *bias, int relu, float *out, ptrdiff_t ld_row);
/* 1 when the backward-input pass of the 3x3 layer d is best computed from
 * dy's tiles (winograd_6x6_transposed.c): fewer of them than of dx's, as in
 * an unpadded layer, and an image's tiles fit one block. */
int fc_winograd_6x6_transposed_applies(const fc_conv2d_desc *d);
/* dx of the layer d by the transpose of F(4x4, 3x3); with mask (NULL, or an
 * array of dx's shape), dx is 0 where the mask is not positive. */
int fc_conv2d_winograd_6x6_backward_input_f32(const fc_conv2d_desc *d, const float *dy,
                                              const float *w, const float *mask, float *dx,
                                              int n_threads);
/* 1 when the layer's backward-input runs the transposed F(4x4, 3x3) and its
 * weight gradient F(3x3, 4x4) from the same tiles of dy, with filters
 * filling one panel of the micro-kernel (16, 32 or 64 on AVX-512): then both
 * gradients come from one pass (fc_conv2d_winograd_6x6_backward_f32). */
int fc_winograd_6x6_fused_applies(const fc_conv2d_desc *d);
/* A layer's output gradient left as its max pooling's backward would
 * compute it (fc_max_pool2d_backward_argmax_f32's inputs), for a pooling by
 * 2x2 windows, stride 2, unpadded (fc_winograd_6x6_pools): read a 4x4 tile
 * at a time, never written. */
typedef struct {
    const fc_pool2d_desc *p;
    const uint8_t *argmax;
    const float *dy; /* the pooling's output gradient */
} fc_pooled_gradient;
/* dx (masked as above; or none, dx NULL), dw and db (unless NULL) of the
 * layer d in one pass over the tiles of dy (or, pooled not NULL and dy NULL,
 * of the gradient it leaves): each tile's A dY A^T serves both. The weight
 * gradient alone of such a layer comes from here too, so that its sums are
 * the same with or without dx. */
int fc_conv2d_winograd_6x6_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                        const fc_pooled_gradient *pooled, const float *w,
                                        const float *mask, float *dx, float *dw, float *db,
                                        int n_threads);
/* winograd_6x6.c's transforms for the weight-gradient driver: V[xi][t][ch]
 * of tiles [t0, t0 + count) (positions ld floats apart); Z = A dy A^T of
 * those tiles as the GEMMs' B panels (kc tiles deep, nr wide), adding their
 * dy to db (unless NULL), dy's tiles read from pooled instead where it is
 * not NULL (through `unpooled`, 16 f floats; 4x4 tiles only); dw from S[xi]
 * (c x f, ld_s floats apart) for the channel-filter pairs [cf0, cf1). */
void fc_winograd_6x6_inputs(const fc_conv2d_desc *d, const float *x, ptrdiff_t tiles_h,
                            ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t ld,
                            const float *zeros, float *v);
void fc_winograd_6x6_grads(const fc_conv2d_desc *d, const float *dy,
                           const fc_pooled_gradient *pooled, float *unpooled, ptrdiff_t tiles_h,
                           ptrdiff_t tiles_w, ptrdiff_t t0, ptrdiff_t count, ptrdiff_t kc, int nr,
                           ptrdiff_t ld, const float *zeros, float *zp, float *db);
void fc_winograd_6x6_weights(const fc_conv2d_desc *d, const float *s, ptrdiff_t ld_s, float *dw,
                             ptrdiff_t cf0, ptrdiff_t cf1);
/* S[xi] (depth x f, positions depth * f floats apart) = V[xi]^T Z[xi], or
 * += with accumulate, for xi < positions, over count tiles: V (count x depth
 * at v + xi * ld_v) read transposed in place, up to MR - 1 floats past a
 * partial last sliver; Z as the micro-kernel's B panels (kc tiles deep, each
 * NR of fc_kernels_for(f) wide, at zp + xi * ld_z). */
void fc_winograd_weight_products(int positions, const float *v, ptrdiff_t ld_v, ptrdiff_t depth,
                                 const float *zp, ptrdiff_t ld_z, ptrdiff_t kc, ptrdiff_t f,
                                 ptrdiff_t count, int accumulate, float *s);
/* Adds the partial sums of chunks 1.. (count floats each, stride apart) into
 * chunk 0's, in chunk order: an OpenMP loop over blocks of them, to be called
 * by every thread of a parallel region (it ends with the loop's barrier). */
void fc_winograd_add_chunks(float *partials, ptrdiff_t count, ptrdiff_t chunks, ptrdiff_t stride);
/* dw by Winograd F(3x3, 2x2), and db (the column sums of dy) unless NULL;
 * overwrites both. */
int fc_conv2d_winograd_backward_weight_f32(const fc_conv2d_desc *d, const float *x,
                                           const float *dy, float *dw, float *db, int n_threads);

/* ---- direct convolution for few input channels (conv2d_direct.c) -------- */

/* Layers with kh*kw*c at most this run the direct kernels: a GEMM that deep
 * spends more on packing and on writing C than on its multiply-adds. */
#define FC_DIRECT_MAX_K 32
/* So do the forward passes and weight gradients of layers of fewer input
 * channels than Winograd takes (FC_WINOGRAD_MIN_CHANNELS) up to
 * FC_DIRECT_FEW_CHANNELS_MAX_K: the GEMMs' taps are runs of that few
 * channels, too short for their tiles (LeNet-5's second convolution,
 * 128 x 14 x 14 x 6 -> 16, 5x5, alternating builds on 2 threads: forward
 * 0.70 -> 0.29 ms, backward 2.51 -> 1.74; 4-15 channels, 3x3 to 9x9: forward
 * up to 78 % less time, weight gradient 7-71 %, none slower beyond noise; a
 * 7x7, stride-2 layer on RGB images, forward 2.80 -> 1.14 ms, weight
 * gradient 5.18 -> 1.48). Their input gradient (and both gradients in one
 * pass) only for at most FC_DIRECT_FEW_CHANNELS channels at stride 1,
 * undilated (fc_direct_input_grad_applies): with strides the direct kernel,
 * which spreads dy with zeros, took up to 60 % more than the phases' GEMMs,
 * and with 10 channels and 16 filters 40 % more than col2im. */
#define FC_DIRECT_FEW_CHANNELS 8
#define FC_DIRECT_FEW_CHANNELS_MAX_K 512
/* The most taps times channels a direct layer has: the larger of the two. */
#define FC_DIRECT_K_CAPACITY FC_DIRECT_FEW_CHANNELS_MAX_K
/* Input pixels per group of the direct backward-input kernel: neighbours
 * reached through the same taps share each weight vector loaded, and their
 * 8 sums are reduced together (V_SUMS8 in the simd_*.h vocabularies). */
#define FC_DIRECT_GROUP 8
/* Runs of rows per thread of a direct backward-input pass, handed out
 * dynamically. */
#define FC_DIRECT_DX_RUNS_PER_THREAD 8

/* The row kernels of one SIMD path (conv2d_direct_simd.h). Filters are
 * handled in blocks of nb; a packed weight block is k rows of nb floats. */
typedef struct {
    int nb;
    /* For pixels o < count and filters j < nb_valid, overwrites
     * y[o*ldy + j] = bias[j] + sum_{t<k} patch[off[t] + o*step] * wp[t*nb + j],
     * then max(0, .) when relu. bias holds nb floats. */
    void (*forward_row)(const float *patch, ptrdiff_t step, const ptrdiff_t *off, ptrdiff_t k,
                        const float *wp, const float *bias, int relu, ptrdiff_t count,
                        float *y, ptrdiff_t ldy, int nb_valid);
    /* Accumulates acc[t*nb + j] += sum_{o<count} patch[off[t] + o*step] * dy[o*lddy + j]
     * for t < k, j < nb, and db[j] += sum_o dy[o*lddy + j] when db is not NULL;
     * with nb_valid <= nb / 2, only for j < nb / 2, and dy's floats past
     * those are not read. With pf (else NULL), count pixels pf_step bytes
     * apart from pf (the next dy row) are fetched into cache meanwhile, a
     * pixel per dy pixel read. */
    void (*weight_row)(const float *patch, ptrdiff_t step, const ptrdiff_t *off, ptrdiff_t k,
                       const float *dy, ptrdiff_t lddy, ptrdiff_t count, float *acc, float *db,
                       const char *pf, ptrdiff_t pf_step, int nb_valid);
    /* Overwrites dx[iw*c + ci] for iw < width, ci < c with the sum over taps
     * t < taps of the dot products of dy[t][iw*fp + j] and w[t][ci*fp + j]
     * over j < fp (fp a multiple of nb): dy[t] a zero-padded row of dy as tap
     * t sees it, readable FC_DIRECT_GROUP pixels past width. */
    void (*input_row)(const float *const *dy, const float *const *w, int taps, ptrdiff_t c,
                      ptrdiff_t fp, ptrdiff_t width, float *dx);
} fc_direct_kernel_set;

/* The set of the path chosen by fc_simd_select (or the best available). */
const fc_direct_kernel_set *fc_direct_kernels(void);
const fc_direct_kernel_set *fc_direct_kernels_portable(void);
#ifdef FC_HAVE_AVX2
const fc_direct_kernel_set *fc_direct_kernels_avx2(void);
#endif
#ifdef FC_HAVE_AVX512
const fc_direct_kernel_set *fc_direct_kernels_avx512(void);
#endif

/* Pooling's row kernels of one SIMD path (pool2d_simd.h), for whole windows
 * along a row and channels a multiple of vw. */
typedef struct {
    int vw;
    /* Each takes `windows` windows of kh x kw cells, the first's top-left
     * cell at x (rows w * c floats apart), the next sw pixels right of it
     * (the backward passes: side by side, sw = kw), and writes with
     * streaming stores when `stream` (its output then aligned to vw floats).
     * The windows' maxima (as pool2d.c's forward) at y, c floats each, and
     * where argmax is not NULL their cells (fastconv.h's argmax). */
    void (*max_forward)(const float *x, float *y, uint8_t *argmax, ptrdiff_t windows,
                        ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t w, ptrdiff_t c,
                        int stream);
    /* The windows' means (as pool2d.c's forward) at y. */
    void (*avg_forward)(const float *x, float *y, ptrdiff_t windows, ptrdiff_t kh,
                        ptrdiff_t kw, ptrdiff_t sw, ptrdiff_t w, ptrdiff_t c, int stream);
    /* The gradient from x of windows side by side, the output gradients at
     * g (c floats a window): each window's first cell holding its maximum
     * gets g (with relu, only a positive maximum passes it), its other cells
     * zero, as pool2d.c's search. Overwrites those dx cells. */
    void (*max_backward)(const float *x, const float *g, float *dx, ptrdiff_t windows,
                         ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t w, ptrdiff_t c, int relu,
                         int stream);
    /* The same from the forward's argmax (c bytes a window) instead of x. */
    void (*max_backward_argmax)(const uint8_t *argmax, const float *g, float *dx,
                                ptrdiff_t windows, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t w,
                                ptrdiff_t c, int relu, int stream);
} fc_pool_kernel_set;

/* The set of the path chosen by fc_simd_select, or NULL on the portable
 * path (pool2d.c's own loops, which compilers vectorise, take it all). */
const fc_pool_kernel_set *fc_pool_kernels(void);
#ifdef FC_HAVE_AVX2
const fc_pool_kernel_set *fc_pool_kernels_avx2(void);
#endif
#ifdef FC_HAVE_AVX512
const fc_pool_kernel_set *fc_pool_kernels_avx512(void);
#endif

/* 1 when d's forward pass and weight gradient run the direct kernels: at
 * most FC_DIRECT_MAX_K (and at least one) taps times channels, or up to
 * FC_DIRECT_FEW_CHANNELS_MAX_K with fewer than FC_WINOGRAD_MIN_CHANNELS. */
int fc_direct_applies(const fc_conv2d_desc *d);
/* 1 when its input gradient does too (and both gradients come from one
 * pass): past FC_DIRECT_MAX_K, only with at most FC_DIRECT_FEW_CHANNELS
 * channels at stride 1, undilated. */
int fc_direct_input_grad_applies(const fc_conv2d_desc *d);
/* The forward and backward passes; same contracts as fc_conv2d_forward_f32
 * and fc_conv2d_backward_f32, except that the backward pass also takes
 * dx == NULL (then w is unused) or dw == NULL (then x and db are unused). */
int fc_conv2d_direct_forward_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                 const float *b, float *y, int n_threads);
int fc_conv2d_direct_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                  const float *w, float *dx, float *dw, float *db, int n_threads);

/* The direct forward pass with max pooling after it (fc_conv2d_max_pool2d_
 * forward_f32's contract, p the pooling of y), for windows that do not
 * overlap vertically (p->sh >= p->kh): each thread computes the convolution
 * rows under one pooled row into its scratch and pools them there, so the
 * convolution's output is never written to memory. */
int fc_conv2d_direct_max_pool2d_forward_f32(const fc_conv2d_desc *d, const fc_pool2d_desc *p,
                                            const float *x, const float *w, const float *b,
                                            float *y, uint8_t *argmax, int n_threads);

/* Max pooling's output row oh of the image whose input starts at xi (d's h
 * rows of it), written as row `row` of y (and argmax, unless NULL) counted
 * over the batch: pool2d.c's row, for a caller that has the rows in its own
 * scratch (d then describes only those rows). */
void fc_max_pool2d_row(const fc_pool2d_desc *d, const float *xi, ptrdiff_t oh, ptrdiff_t row,
                       float *y, uint8_t *argmax);

/* ---- helpers ------------------------------------------------------------ */

/* Scratch aligned to FC_ALIGN bytes; freed blocks are cached for reuse by
 * later calls (bounded), so repeated calls do not fault in fresh pages. */
void *fc_aligned_alloc(size_t bytes);
void fc_aligned_free(void *p);

static inline ptrdiff_t fc_min(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
static inline ptrdiff_t fc_max(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t fc_ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }
static inline ptrdiff_t fc_round_up(ptrdiff_t a, ptrdiff_t b) { return fc_ceil_div(a, b) * b; }

/* Element e of chunks partial sums laid stride floats apart, added in chunk
 * order (the fixed order that keeps reductions independent of threads). */
static inline float fc_sum_chunks(const float *partials, ptrdiff_t e, ptrdiff_t chunks,
                                  ptrdiff_t stride)
{
    float s = partials[e];
    for (ptrdiff_t ci = 1; ci < chunks; ++ci)
        s += partials[ci * stride + e];
    return s;
}

/* Reads float bits as integers without breaking strict aliasing. */
typedef uint32_t fc_u32_alias __attribute__((may_alias));

/* A 32-bit integer hash with low bias ("lowbias32", C. Wellons): every
 * output bit depends on every input bit. */
static inline uint32_t fc_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Dropout's mask: 1 where element `index` of a dropout with this seed is
 * kept, else 0 (fc_dropout_f32; fastconv.reference.dropout's keep_mask). */
static inline float fc_dropout_keep(uint64_t index, uint64_t seed, uint32_t threshold)
{
    const uint32_t h = fc_mix32(fc_mix32((uint32_t)index ^ (uint32_t)seed)
                                ^ (uint32_t)(index >> 32) ^ (uint32_t)(seed >> 32));
    return (h >> 8) >= threshold ? 1.0f : 0.0f;
}

/* Floats from one position's plane to the next in a Winograd workspace,
 * for planes of `floats` (V, M, Z: 16 or 36 planes, written a vector at a
 * time by the transforms and read by the micro-kernel): whole cache lines,
 * so that no vector straddles two (the weight gradient's V planes, MR floats
 * longer than their tiles, had made every store of its input transform a
 * split one), and one line more, so that the planes start in different L1
 * sets (4 KiB apart they would all share one). S2-S6 weight gradients 10-18 %
 * faster, backward-input passes 3-6 %, forwards 1-6 %. */
static inline ptrdiff_t fc_position_stride(ptrdiff_t floats)
{
    return fc_round_up(floats, FC_ALIGN_FLOATS) + FC_ALIGN_FLOATS;
}

/* A convolution pass's multiply-adds, counted as the direct method does. */
static inline double fc_conv_macs(const fc_conv2d_desc *d)
{
    return (double)d->n * d->ho * d->wo * d->f * d->kh * d->kw * d->c;
}

/* Threads worth waking for `work` of a kernel of the given grain (above), at
 * most n_threads. */
int fc_threads_for(double work, double grain, int n_threads);

/* Floats between the scratch (or partial sums) of two threads or chunks
 * written at the same time: a whole 4 KiB page. Sharing no cache line is not
 * enough: a core's L2 prefetchers fetch lines ahead of the ones it reads
 * (Intel's streamer up to 20, within a page), taking them from the core that
 * is writing them; S1's forward patches, 336 bytes each and 384 apart, made
 * 2 threads no faster than 1 (0.23 ms against 0.14 a page apart). */
static inline ptrdiff_t fc_thread_stride(ptrdiff_t floats)
{
    return fc_round_up(floats, 4096 / (ptrdiff_t)sizeof(float));
}

static inline int fc_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The end of a parallel region for the thread that called it. Under
 * OMP_WAIT_POLICY=PASSIVE (fastconv's default) a thread that reaches the
 * region's closing barrier before the others sleeps in the kernel, and on a
 * virtual machine waking it takes 40-60 us. The other threads' sleep there
 * delays nobody, but the calling thread's delays the return to the caller.
 * So every thread's last act in a region is fc_team_leave(&team), team an
 * fc_team set to FC_TEAM_INIT before the region: the calling thread (0)
 * waits, pausing, until the others have left, then FC_TEAM_GRACE_US longer
 * so that they reach the barrier first. The wait is bounded by
 * FC_TEAM_WAIT_US: on a busy machine, where another thread of the team may
 * be descheduled, it then sleeps as before. S1's forward 0.276 -> 0.236 ms,
 * backward 0.475 -> 0.444; the fast model's training step 6.0-6.3 -> 5.9 ms,
 * and 9.0 -> 9.2 ms (noise-level) beside a process spinning on one of the
 * two cores. Bounded at 200 us, that step took 9% longer there. */
typedef struct {
    atomic_int left;    /* threads that have called fc_team_leave */
    atomic_int arrived; /* threads that have called fc_team_arrive */
} fc_team;

#define FC_TEAM_INIT {0, 0}
#define FC_TEAM_WAIT_US 60.0
#define FC_TEAM_GRACE_US 2.0
void fc_team_leave(fc_team *team);

/* 1 for the last thread of the region to call it (each calls it once), 0
 * for the others: that thread then finds every other thread's work before
 * the call done and visible, and can finish the region's work alone,
 * without a barrier or a second region (each a sleeping thread's wake-up). */
int fc_team_arrive(fc_team *team);

/* Orders streaming stores before what follows (x86 sfence; nothing elsewhere). */
void fc_store_fence(void);

/* Denormal inputs and results cost 20-50x on x86. Each kernel thread sets
 * flush-to-zero and denormals-are-zero on entry and restores the caller's
 * floating-point state on exit. */
typedef unsigned long long fc_fp_state;
fc_fp_state fc_fp_enter(void);
void fc_fp_leave(fc_fp_state saved);

#endif /* FC_INTERNAL_H */
