/* Vector vocabulary of the portable path: a "vector" of one float, so the
 * templates written for AVX2 and AVX-512 (conv2d_direct_simd.h) compile to
 * plain C that any compiler vectorises as it can. */
#ifndef FC_SIMD_SCALAR_H
#define FC_SIMD_SCALAR_H

#define VEC float
#define VW 1
#define V_ZERO() 0.0f
#define V_SET1(x) (x)
#define V_LOADU(p) (*(p))
#define V_STOREU(p, v) (*(p) = (v))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_ADD(a, b) ((a) + (b))
/* max(0, v) must return v when v is NaN, as maxps(0, v) does. */
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_SUM(v) (v)
#if defined(__GNUC__) || defined(__clang__)
#define V_PREFETCH(p) __builtin_prefetch(p)
#else
#define V_PREFETCH(p) ((void)(p))
#endif
#define V_SUMS8(v, out)                                                           \
    do {                                                                          \
        for (int q_ = 0; q_ < 8; ++q_)                                            \
            (out)[q_] = (v)[q_];                                                  \
    } while (0)

#endif /* FC_SIMD_SCALAR_H */
