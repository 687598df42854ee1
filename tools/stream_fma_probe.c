/* How fast one core streams packed f32 weights while it runs a multi-row tile's FMAs, in a
 * minimal loop: what the AVX-512 GEMM's single-pass calls of 3-8 rows could reach at best
 * (docs/runtime-performance.md, session 14).
 *
 * The loop walks a 256 MiB buffer of f32 weights (in huge pages where the kernel allows) as the
 * packed layout does: per 8-column step one 128-byte pair of lines (4 tile columns x 8), and
 * for each of R input rows two FMAs into two zmm accumulators, the input block either
 * broadcast to both halves (as avx512::tile) or, for pairs of rows, loaded from an interleaved
 * copy against the line and its halves swapped (as avx512::tile_paired). Every step prefetches
 * (prefetcht0) the pair of lines `pf` bytes ahead. The inputs are read as the real kernel reads
 * them: each "tile" of K columns sweeps all R * K input floats, so that R * K * 4 bytes of
 * inputs compete with the weight stream for the L1. Only the inputs' footprint (K) changes
 * between the rows of the output; the number of loads and FMAs per step does not.
 *
 * Build and run on an AVX-512 machine:
 *     gcc -O3 -funroll-loops tools/stream_fma_probe.c -o /tmp/stream_fma_probe
 *     /tmp/stream_fma_probe
 * It prints weight GB/s, the best of 3 passes, per input layout, row count R, K and distance.
 * Compare with the read-bandwidth probes of `cargo bench -p argen-cpu --bench decode`.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES (256UL << 20)
#define KMAX 2048

static float xin[8 * KMAX] __attribute__((aligned(64)));

static double now(void) {
    struct timespec s;
    clock_gettime(CLOCK_MONOTONIC, &s);
    return s.tv_sec + s.tv_nsec * 1e-9;
}

/* One pass over the weights with R rows; `paired`: inputs interleaved by pairs of rows. */
#define PASS(R)                                                                                \
    __attribute__((target("avx512f,fma"), noinline)) static float pass##R(                    \
        const float *w, size_t n, long pf, int paired, long k) {                               \
        __m512 a[R][2];                                                                        \
        for (int r = 0; r < R; r++) {                                                          \
            a[r][0] = _mm512_set1_ps(r);                                                       \
            a[r][1] = _mm512_set1_ps(r + 0.5f);                                                \
        }                                                                                      \
        const long steps = k / 8;                                                              \
        long s = 0;                                                                            \
        for (size_t i = 0; i < n; i += 32) {                                                   \
            _mm_prefetch((const char *)(w + i) + pf, _MM_HINT_T0);                             \
            _mm_prefetch((const char *)(w + i) + pf + 64, _MM_HINT_T0);                        \
            const __m512 w0 = _mm512_loadu_ps(w + i), w1 = _mm512_loadu_ps(w + i + 16);        \
            if (!paired) {                                                                     \
                for (int r = 0; r < R; r++) {                                                  \
                    const __m512 xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(                 \
                        _mm256_castps_pd(_mm256_loadu_ps(xin + r * k + s * 8))));              \
                    a[r][0] = _mm512_fmadd_ps(xv, w0, a[r][0]);                                \
                    a[r][1] = _mm512_fmadd_ps(xv, w1, a[r][1]);                                \
                }                                                                              \
            } else {                                                                           \
                const __m512 s0 = _mm512_shuffle_f32x4(w0, w0, 0x4e);                          \
                const __m512 s1 = _mm512_shuffle_f32x4(w1, w1, 0x4e);                          \
                for (int p = 0; p < R / 2; p++) {                                              \
                    const __m512 xv = _mm512_loadu_ps(xin + p * 2 * k + s * 16);               \
                    a[2 * p][0] = _mm512_fmadd_ps(xv, w0, a[2 * p][0]);                        \
                    a[2 * p][1] = _mm512_fmadd_ps(xv, w1, a[2 * p][1]);                        \
                    a[2 * p + 1][0] = _mm512_fmadd_ps(xv, s0, a[2 * p + 1][0]);                \
                    a[2 * p + 1][1] = _mm512_fmadd_ps(xv, s1, a[2 * p + 1][1]);                \
                }                                                                              \
            }                                                                                  \
            if (++s == steps) s = 0;                                                           \
        }                                                                                      \
        __m512 t = _mm512_setzero_ps();                                                        \
        for (int r = 0; r < R; r++) t = _mm512_add_ps(t, _mm512_add_ps(a[r][0], a[r][1]));    \
        return _mm512_reduce_add_ps(t);                                                        \
    }
PASS(2)
PASS(4)
PASS(8)

int main(void) {
    float *w = mmap(0, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) return 1;
    madvise(w, BYTES, MADV_HUGEPAGE);
    const size_t n = BYTES / 4;
    for (size_t i = 0; i < n; i++) w[i] = (i % 97) * 1e-3f;
    for (int i = 0; i < 8 * KMAX; i++) xin[i] = i * 1e-4f;
    const long ks[] = {64, 256, 384, 768, 2048};
    const long pfs[] = {2048, 4096, 8192, 16384};
    float sink = 0;
    for (int paired = 0; paired < 2; paired++)
        for (int rows = 2; rows <= 8; rows *= 2)
            for (int ki = 0; ki < 5; ki++) {
                const long k = ks[ki];
                printf("%-9s R=%d K=%-4ld (inputs %3ld KiB):", paired ? "paired" : "broadcast",
                       rows, k, rows * k * 4 / 1024);
                for (int pi = 0; pi < 4; pi++) {
                    double best = 1e9;
                    for (int rep = 0; rep < 3; rep++) {
                        const double t = now();
                        sink += rows == 2   ? pass2(w, n, pfs[pi], paired, k)
                                : rows == 4 ? pass4(w, n, pfs[pi], paired, k)
                                            : pass8(w, n, pfs[pi], paired, k);
                        const double d = now() - t;
                        if (d < best) best = d;
                    }
                    printf("  %2ld KiB ahead %5.1f GB/s", pfs[pi] / 1024, BYTES / best / 1e9);
                }
                printf("\n");
            }
    return sink == 1234.5f;
}
