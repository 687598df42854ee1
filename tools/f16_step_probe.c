/* One step of the AVX-512 GEMM's 4-row tile, in registers only: what the half-precision
 * widening costs next to the FMAs and the input broadcasts (docs/runtime-performance.md,
 * session 10).
 *
 * A step of the 4-row tile (crates/argen-cpu/src/gemm/avx512.rs) widens one 64-byte line of
 * weights into two zmm registers (rows 0-1 and 2-3 of the tile: two columns each), fetches
 * each input row's 8 floats broadcast to both halves of a zmm, and runs 8 FMAs into 8
 * independent accumulators. This loop does the same with the weights and inputs in L1, so
 * that only the execution pipes bind:
 *
 *   widening: none | f16 (two 256-bit loads, two vcvtph2ps) | bf16 interleaved (shift, mask) |
 *             bf16 row-major (zero-extend and shift, twice)
 *   inputs:   broadcast (vbroadcastf64x4 of 8 floats, as avx512::tile) |
 *             pre-duplicated (each 8-float block stored twice: a plain zmm load) |
 *             paired (rows 0-1 and 2-3 interleaved by 8-float blocks: one plain zmm load
 *             per pair of rows, against the widened pairs and their halves swapped, as
 *             avx512::tile_paired since session 11)
 *
 * Build and run on an AVX-512 machine:
 *     gcc -O2 tools/f16_step_probe.c -o /tmp/f16_step_probe && /tmp/f16_step_probe
 * It prints ns per step (8 FMAs); the FMA-only figure is the peak (1 zmm FMA per cycle on
 * Zen 4). The accumulators start from different values so that the compiler cannot merge them.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define STEPS 25000000L

static uint16_t halves[32] __attribute__((aligned(64)));
static float inputs[4 * 64] __attribute__((aligned(64)));
static float dup_inputs[4 * 128] __attribute__((aligned(64)));
static float pair_inputs[2 * 128] __attribute__((aligned(64)));

static double now(void) {
    struct timespec s;
    clock_gettime(CLOCK_MONOTONIC, &s);
    return s.tv_sec + s.tv_nsec * 1e-9;
}

enum { NONE, F16, BF16_PACKED, BF16_ROW_MAJOR };
enum { BROADCAST, DUPLICATED, PAIRED };

/* Always inlined into one function per (widening, inputs) pair below, so that each loop is
 * compiled for its constants alone. */
__attribute__((target("avx512f,avx512bw,f16c,fma"), always_inline)) static inline double
step_loop(const int widen, const int in, float *out) {
    __m512 a0 = _mm512_set1_ps(1.000f), a1 = _mm512_set1_ps(1.001f);
    __m512 a2 = _mm512_set1_ps(1.002f), a3 = _mm512_set1_ps(1.003f);
    __m512 a4 = _mm512_set1_ps(1.004f), a5 = _mm512_set1_ps(1.005f);
    __m512 a6 = _mm512_set1_ps(1.006f), a7 = _mm512_set1_ps(1.007f);
    const __m512 w = _mm512_set1_ps(0.999999f);
    double t = now();
    for (long i = 0; i < STEPS; i++) {
        __m512i v = _mm512_load_si512((const void *)halves);
        __asm__ volatile("" : "+v"(v)); /* a fresh line every step */
        __m512 w0 = w, w1 = w;
        if (widen == F16) {
            /* As the kernel (`halves::<true>`): two 256-bit loads, no lane extraction. */
            __m256i h0 = _mm256_load_si256((const void *)halves);
            __m256i h1 = _mm256_load_si256((const void *)(halves + 16));
            __asm__ volatile("" : "+v"(h0), "+v"(h1));
            w0 = _mm512_cvtph_ps(h0);
            w1 = _mm512_cvtph_ps(h1);
        } else if (widen == BF16_PACKED) {
            w0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            w1 = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(-0x10000)));
        } else if (widen == BF16_ROW_MAJOR) {
            w0 = _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
            w1 = _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
        }
        __m512 x0, x1, x2, x3;
        if (in == PAIRED) {
            /* Accumulators: a0/a1 = pair 0 x (w0, w1), a2/a3 = pair 0 x swapped, a4-a7 pair 1. */
            const float *p = pair_inputs + (i & 7) * 16;
            const __m512 p0 = _mm512_load_ps(p), p1 = _mm512_load_ps(p + 128);
            const __m512 s0 = _mm512_shuffle_f32x4(w0, w0, 0x4e);
            const __m512 s1 = _mm512_shuffle_f32x4(w1, w1, 0x4e);
            a0 = _mm512_fmadd_ps(p0, w0, a0);
            a1 = _mm512_fmadd_ps(p0, w1, a1);
            a2 = _mm512_fmadd_ps(p0, s0, a2);
            a3 = _mm512_fmadd_ps(p0, s1, a3);
            a4 = _mm512_fmadd_ps(p1, w0, a4);
            a5 = _mm512_fmadd_ps(p1, w1, a5);
            a6 = _mm512_fmadd_ps(p1, s0, a6);
            a7 = _mm512_fmadd_ps(p1, s1, a7);
            continue;
        }
        if (in == DUPLICATED) {
            const float *p = dup_inputs + (i & 7) * 16;
            x0 = _mm512_load_ps(p);
            x1 = _mm512_load_ps(p + 128);
            x2 = _mm512_load_ps(p + 256);
            x3 = _mm512_load_ps(p + 384);
        } else {
            const float *p = inputs + (i & 7) * 8;
#define BCAST(q) _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(q))))
            x0 = BCAST(p);
            x1 = BCAST(p + 64);
            x2 = BCAST(p + 128);
            x3 = BCAST(p + 192);
        }
        a0 = _mm512_fmadd_ps(x0, w0, a0);
        a1 = _mm512_fmadd_ps(x0, w1, a1);
        a2 = _mm512_fmadd_ps(x1, w0, a2);
        a3 = _mm512_fmadd_ps(x1, w1, a3);
        a4 = _mm512_fmadd_ps(x2, w0, a4);
        a5 = _mm512_fmadd_ps(x2, w1, a5);
        a6 = _mm512_fmadd_ps(x3, w0, a6);
        a7 = _mm512_fmadd_ps(x3, w1, a7);
    }
    t = now() - t;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    _mm512_storeu_ps(out, s);
    return t / STEPS * 1e9;
}

#define VARIANT(name, wi, in)                                                        \
    __attribute__((target("avx512f,avx512bw,f16c,fma"), noinline)) static double name( \
        float *out) {                                                                  \
        return step_loop(wi, in, out);                                                 \
    }
VARIANT(b_none, NONE, BROADCAST)
VARIANT(b_f16, F16, BROADCAST)
VARIANT(b_bf16p, BF16_PACKED, BROADCAST)
VARIANT(b_bf16r, BF16_ROW_MAJOR, BROADCAST)
VARIANT(d_none, NONE, DUPLICATED)
VARIANT(d_f16, F16, DUPLICATED)
VARIANT(d_bf16p, BF16_PACKED, DUPLICATED)
VARIANT(d_bf16r, BF16_ROW_MAJOR, DUPLICATED)
VARIANT(p_none, NONE, PAIRED)
VARIANT(p_f16, F16, PAIRED)
VARIANT(p_bf16p, BF16_PACKED, PAIRED)
VARIANT(p_bf16r, BF16_ROW_MAJOR, PAIRED)

static double run(int widen, int in, float *out) {
    static double (*const fns[3][4])(float *) = {{b_none, b_f16, b_bf16p, b_bf16r},
                                                 {d_none, d_f16, d_bf16p, d_bf16r},
                                                 {p_none, p_f16, p_bf16p, p_bf16r}};
    return fns[in][widen](out);
}

int main(void) {
    for (int i = 0; i < 32; i++) halves[i] = 0x3c00; /* 1.0 in f16; 1.0 + tiny in bf16 */
    for (int i = 0; i < 4 * 64; i++) inputs[i] = 1.0f + i * 1e-6f;
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < 8; b++)
            for (int e = 0; e < 16; e++)
                dup_inputs[r * 128 + b * 16 + e] = inputs[r * 64 + b * 8 + e % 8];
    for (int q = 0; q < 2; q++)
        for (int b = 0; b < 8; b++)
            for (int e = 0; e < 16; e++)
                pair_inputs[q * 128 + b * 16 + e] = inputs[(2 * q + e / 8) * 64 + b * 8 + e % 8];
    const char *widening[] = {"none", "f16 vcvtph2ps", "bf16 interleaved (shift, mask)",
                              "bf16 row-major (zero-extend, shift)"};
    const char *input[] = {"broadcast inputs", "pre-duplicated inputs", "paired inputs"};
    float out[16];
    for (int round = 0; round < 2; round++)
        for (int in = 0; in < 3; in++)
            for (int wi = 0; wi < 4; wi++)
            {
                double ns = run(wi, in, out);
                printf("%-22s %-36s %.3f ns per step (checksum %g)\n", input[in], widening[wi],
                       ns, out[0]);
            }
    return 0;
}
