/* argen portability header: one kernel source for NVRTC (CUDA C++) and OpenCL C 1.2+.
 *
 * Determinism rules every kernel follows (design §5):
 *  - no contraction: NVRTC compiles with --fmad=false, OpenCL with FP_CONTRACT OFF (below);
 *  - no device math library for anything that must match bit for bit (argen's own exp_f32);
 *  - no division whose rounding is not IEEE: reciprocals come from the host;
 *  - integer arithmetic for every sum of probability mass (exact in any order).
 * Work-groups are one-dimensional and ARGEN_LANES (256) wide unless a kernel says otherwise.
 */
#ifndef ARGEN_PORTABLE_H
#define ARGEN_PORTABLE_H

#define ARGEN_LANES 256

#ifdef __CUDACC_RTC__
/* ---------------------------------------------------------------- CUDA (NVRTC) */
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef double f64;
#define KERNEL extern "C" __global__ void __launch_bounds__(ARGEN_LANES)
#define GLOBAL
#define LOCAL_DECL __shared__
#define LOCAL
#define INLINE static __device__ __forceinline__
#define BARRIER() __syncthreads()
#define LANE() ((u32)threadIdx.x)
#define GROUP() ((u32)blockIdx.x)
#define AS_U32(f) __float_as_uint(f)
#define AS_F32(u) __uint_as_float(u)
#define FLOOR_F32(x) floorf(x)
#define SQRT_F32(x) __fsqrt_rn(x)
#define MUL_HI_U64(a, b) __umul64hi((a), (b))
#define CLZ_U64(x) ((u32)__clzll((long long)(x)))
#define ATOMIC_ADD_LOCAL_U32(p, v) atomicAdd((p), (v))
#define ATOMIC_ADD_LOCAL_U64(p, v) atomicAdd((p), (u64)(v))
#define ATOMIC_MIN_LOCAL_U32(p, v) atomicMin((p), (v))
#define ATOMIC_MIN_GLOBAL_U32(p, v) atomicMin((p), (v))
#else
/* ---------------------------------------------------------------- OpenCL C */
#pragma OPENCL FP_CONTRACT OFF
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
typedef uint u32;
typedef int i32;
typedef ulong u64;
typedef ushort u16;
typedef double f64;
#define KERNEL __kernel __attribute__((reqd_work_group_size(ARGEN_LANES, 1, 1))) void
#define GLOBAL __global
#define LOCAL_DECL __local
#define LOCAL __local
#define INLINE static inline
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#define LANE() ((u32)get_local_id(0))
#define GROUP() ((u32)get_group_id(0))
#define AS_U32(f) as_uint(f)
#define AS_F32(u) as_float(u)
#define FLOOR_F32(x) floor(x)
#define SQRT_F32(x) sqrt(x)
#define MUL_HI_U64(a, b) mul_hi((u64)(a), (u64)(b))
#define CLZ_U64(x) ((u32)clz((u64)(x)))
#define ATOMIC_ADD_LOCAL_U32(p, v) atomic_add((p), (v))
#define ATOMIC_ADD_LOCAL_U64(p, v) atom_add((p), (u64)(v))
#define ATOMIC_MIN_LOCAL_U32(p, v) atomic_min((p), (v))
#define ATOMIC_MIN_GLOBAL_U32(p, v) atomic_min((p), (v))
#endif

#define F32_NEG_INF AS_F32(0xff800000u)
#define F32_POS_INF AS_F32(0x7f800000u)

INLINE int is_nan_f32(float x) { return (AS_U32(x) & 0x7fffffffu) > 0x7f800000u; }
INLINE int is_finite_f32(float x) { return (AS_U32(x) & 0x7f800000u) != 0x7f800000u; }

/* ------------------------------------------------ unsigned 128-bit integers as two u64 */
typedef struct { u64 lo; u64 hi; } u128;

INLINE u128 u128_make(u64 hi, u64 lo) { u128 r; r.hi = hi; r.lo = lo; return r; }
INLINE u128 u128_from(u64 lo) { return u128_make(0, lo); }
INLINE u128 u128_mul64(u64 a, u64 b) { return u128_make(MUL_HI_U64(a, b), a * b); }
INLINE u128 u128_add(u128 a, u128 b) {
    u128 r; r.lo = a.lo + b.lo; r.hi = a.hi + b.hi + (r.lo < a.lo ? 1 : 0); return r;
}
INLINE u128 u128_sub(u128 a, u128 b) {
    u128 r; r.lo = a.lo - b.lo; r.hi = a.hi - b.hi - (a.lo < b.lo ? 1 : 0); return r;
}
INLINE int u128_lt(u128 a, u128 b) { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo); }
INLINE int u128_is_zero(u128 a) { return (a.hi | a.lo) == 0; }
INLINE u128 u128_shl(u128 a, u32 s) {
    if (s == 0) return a;
    if (s >= 128) return u128_make(0, 0);
    if (s >= 64) return u128_make(a.lo << (s - 64), 0);
    return u128_make((a.hi << s) | (a.lo >> (64 - s)), a.lo << s);
}
INLINE u128 u128_shr(u128 a, u32 s) {
    if (s == 0) return a;
    if (s >= 128) return u128_make(0, 0);
    if (s >= 64) return u128_make(0, a.hi >> (s - 64));
    return u128_make(a.hi >> s, (a.lo >> s) | (a.hi << (64 - s)));
}
/* Saturating a − b. */
INLINE u128 u128_sat_sub(u128 a, u128 b) { return u128_lt(a, b) ? u128_make(0, 0) : u128_sub(a, b); }
/* Bit length of a (0 for 0). */
INLINE u32 u128_bits(u128 a) {
    if (a.hi != 0) return 128 - CLZ_U64(a.hi);
    if (a.lo != 0) return 64 - CLZ_U64(a.lo);
    return 0;
}

/* ------------------------------------------------ exact conversions of half formats to f32 */
INLINE float bf16_to_f32(u16 h) { return AS_F32(((u32)h) << 16); }
INLINE float f16_to_f32(u16 h) {
    u32 sign = ((u32)h & 0x8000u) << 16;
    u32 exp = ((u32)h >> 10) & 0x1fu;
    u32 man = (u32)h & 0x3ffu;
    if (exp == 0x1fu) return AS_F32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return AS_F32(sign);
        /* subnormal: normalise */
        u32 e = 113; /* 127 - 15 + 1 */
        while ((man & 0x400u) == 0) { man <<= 1; e -= 1; }
        man &= 0x3ffu;
        return AS_F32(sign | (e << 23) | (man << 13));
    }
    return AS_F32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* Element formats of logit rows (argen_core::Dtype). */
#define DTYPE_F32 0u
#define DTYPE_F16 1u
#define DTYPE_BF16 2u

/* Element i of a raw row of dtype `dt`; the buffer is addressed in bytes. */
INLINE float load_logit(GLOBAL const u32 *raw, u32 dt, u64 i) {
    if (dt == DTYPE_F32) return AS_F32(raw[i]);
    u32 word = raw[i >> 1];
    u16 h = (u16)((i & 1) ? (word >> 16) : (word & 0xffffu));
    return dt == DTYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

#endif
