/* Tests of the C API from C, meant to run under AddressSanitizer and UndefinedBehaviorSanitizer:
 *   - the RNG and the sampling pipeline reproduce the core's known answers in
 *     fixtures/rng_v1.txt (path given as argv[1]);
 *   - f16 and bf16 rows of exactly representable values give the f32 weights bit for bit;
 *   - bad input (NULL pointers, wrong lengths, unknown dtype and enum codes, misaligned data,
 *     wrong struct sizes, freed handles) gets the right status and a last-error message.
 *
 * Build and run (from the repository root, after `cargo build --release -p argen-ffi`):
 *   cc -std=c11 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
 *      -Iinclude examples/c/test_argen.c target/release/libargen_ffi.a -lpthread -ldl -lm \
 *      -o test_argen && ./test_argen fixtures/rng_v1.txt
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include "argen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (cond) {                                                           \
            passed++;                                                         \
        } else {                                                              \
            failed++;                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, " (last error: %s)\n", argen_last_error());       \
        }                                                                     \
    } while (0)

/* Expects `st == want` and, on failure codes, a last-error text containing `text`. */
static void expect_status(argen_status st, argen_status want, const char *text, int line) {
    const char *err = argen_last_error();
    if (st == want && (want == ARGEN_OK ? err[0] == '\0' : strstr(err, text) != NULL)) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAIL line %d: got %s, want %s; last error \"%s\" should mention \"%s\"\n",
                line, argen_status_name(st), argen_status_name(want), err, text);
    }
}
#define STATUS(call, want, text) expect_status((call), (want), (text), __LINE__)

/* ---- fixtures/rng_v1.txt -------------------------------------------------------------- */

#define MAX_V 64
#define MAX_ROWS 8

typedef struct {
    char name[32];
    float values[MAX_V];
    size_t vocab;
} named_row;

static named_row rows[MAX_ROWS];
static size_t n_rows = 0;

static const named_row *find_row(const char *name) {
    for (size_t i = 0; i < n_rows; i++)
        if (strcmp(rows[i].name, name) == 0) return &rows[i];
    return NULL;
}

/* Processed rows by name, for the sample lines. */
typedef struct {
    char name[48];
    argen_process_job job;
    const named_row *cond, *uncond;
} named_job;

static named_job jobs[MAX_ROWS];
static size_t n_jobs = 0;

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static const char *field(char **saveptr, const char *prefix) {
    char *tok = strtok_r(NULL, " ", saveptr);
    if (tok == NULL || strncmp(tok, prefix, strlen(prefix)) != 0) return NULL;
    return tok + strlen(prefix);
}

/* Runs `job` on the logits of `nj` into row 0 of `sampler`. */
static argen_status run_job(argen_sampler *sampler, const named_job *nj) {
    float buf[2 * MAX_V];
    size_t v = nj->cond->vocab;
    memcpy(buf, nj->cond->values, v * sizeof(float));
    if (nj->uncond) memcpy(buf + v, nj->uncond->values, v * sizeof(float));
    return argen_sampler_process(sampler, buf, ARGEN_DTYPE_F32, (nj->uncond ? 2 : 1) * v,
                                 &nj->job, 1);
}

static void check_key_line(char *line) {
    char *save = NULL;
    strtok_r(line, " ", &save); /* "key" */
    argen_key key;
    key.seed = strtoull(strtok_r(NULL, " ", &save), NULL, 10);
    key.stream = (uint32_t)strtoul(strtok_r(NULL, " ", &save), NULL, 10);
    key.purpose = (uint32_t)strtoul(strtok_r(NULL, " ", &save), NULL, 10);
    key.position = (uint32_t)strtoul(strtok_r(NULL, " ", &save), NULL, 10);
    key.token = (uint32_t)strtoul(strtok_r(NULL, " ", &save), NULL, 10);
    strtok_r(NULL, " ", &save); /* "words" */
    uint64_t words[4];
    STATUS(argen_rng_words(&key, words, 4), ARGEN_OK, "");
    for (int i = 0; i < 4; i++) {
        uint64_t want = strtoull(strtok_r(NULL, " ", &save), NULL, 16);
        EXPECT(words[i] == want, "word %d of seed %" PRIu64 ": %" PRIx64 " != %" PRIx64, i,
               key.seed, words[i], want);
    }
    strtok_r(NULL, " ", &save); /* "below" */
    char *tok;
    while ((tok = strtok_r(NULL, " ", &save)) != NULL && strcmp(tok, "unit") != 0) {
        char *colon = strchr(tok, ':');
        *colon = '\0';
        errno = 0;
        uint64_t n = strtoull(tok, NULL, 10);
        if (errno == ERANGE) continue; /* 128-bit bound: covered by the Rust tests */
        uint64_t want = strtoull(colon + 1, NULL, 10), got = 0;
        STATUS(argen_rng_below(&key, n, &got), ARGEN_OK, "");
        EXPECT(got == want, "below(%" PRIu64 ") = %" PRIu64 ", want %" PRIu64, n, got, want);
    }
    uint64_t unit_bits = strtoull(strtok_r(NULL, " ", &save), NULL, 16);
    double u = 0;
    STATUS(argen_rng_unit(&key, &u), ARGEN_OK, "");
    uint64_t got_bits;
    memcpy(&got_bits, &u, sizeof u);
    EXPECT(got_bits == unit_bits, "unit bits %" PRIx64 " != %" PRIx64, got_bits, unit_bits);
}

static void parse_logits_line(char *line) {
    char *save = NULL;
    strtok_r(line, " ", &save);
    named_row *r = &rows[n_rows++];
    snprintf(r->name, sizeof r->name, "%s", strtok_r(NULL, " ", &save));
    r->vocab = strtoul(strtok_r(NULL, " ", &save), NULL, 10);
    char *hex = strtok_r(NULL, " ", &save), *s2 = NULL;
    size_t i = 0;
    for (char *h = strtok_r(hex, ",", &s2); h && i < MAX_V; h = strtok_r(NULL, ",", &s2))
        r->values[i++] = bits_to_float((uint32_t)strtoul(h, NULL, 16));
}

static void check_process_line(argen_sampler *sampler, char *line) {
    char *save = NULL;
    strtok_r(line, " ", &save);
    named_job *nj = &jobs[n_jobs++];
    snprintf(nj->name, sizeof nj->name, "%s", strtok_r(NULL, " ", &save));
    nj->cond = find_row(field(&save, "cond="));
    const char *u = field(&save, "uncond=");
    nj->uncond = strcmp(u, "-") == 0 ? NULL : find_row(u);
    float scale = strtof(field(&save, "scale="), NULL);
    const char *t = field(&save, "T="), *k = field(&save, "top_k="), *p = field(&save, "top_p=");
    const char *m = field(&save, "min_p=");
    memset(&nj->job, 0, sizeof nj->job);
    nj->job.guidance.kind = nj->uncond ? ARGEN_GUIDANCE_TWO_WAY : ARGEN_GUIDANCE_PLAIN;
    nj->job.guidance.cond = 0;
    nj->job.guidance.uncond = 1;
    nj->job.guidance.scale = scale;
    nj->job.params.temperature = strtof(t, NULL);
    nj->job.params.top_k = strcmp(k, "-") == 0 ? 0 : (uint32_t)strtoul(k, NULL, 10);
    nj->job.params.top_p = strcmp(p, "-") == 0 ? 0.0f : strtof(p, NULL);
    nj->job.params.min_p = strcmp(m, "-") == 0 ? 0.0f : strtof(m, NULL);
    strtok_r(NULL, " ", &save); /* "->" */
    uint64_t total = strtoull(field(&save, "total="), NULL, 10);
    field(&save, "argmax=");
    field(&save, "support=");
    char *hex = (char *)field(&save, "weights="), *s2 = NULL;
    STATUS(run_job(sampler, nj), ARGEN_OK, "");
    uint64_t w[MAX_V], got_total = 0;
    size_t v = nj->cond->vocab;
    STATUS(argen_sampler_read_row(sampler, 0, w, v, &got_total), ARGEN_OK, "");
    EXPECT(got_total == total, "%s: total %" PRIu64 " != %" PRIu64, nj->name, got_total, total);
    size_t i = 0, bad = 0;
    for (char *h = strtok_r(hex, ",", &s2); h && i < v; h = strtok_r(NULL, ",", &s2), i++)
        bad += w[i] != strtoull(h, NULL, 16);
    EXPECT(i == v && bad == 0, "%s: %zu of %zu weights differ", nj->name, bad, i);
}

static void check_sample_line(argen_sampler *sampler, char *line) {
    char *save = NULL;
    strtok_r(line, " ", &save);
    const char *name = strtok_r(NULL, " ", &save);
    const named_job *nj = NULL;
    for (size_t i = 0; i < n_jobs; i++)
        if (strcmp(jobs[i].name, name) == 0) nj = &jobs[i];
    EXPECT(nj != NULL, "sample line names unknown job %s", name);
    if (!nj) return;
    uint64_t seed = strtoull(field(&save, "seed="), NULL, 10);
    uint32_t stream = (uint32_t)strtoul(field(&save, "stream="), NULL, 10);
    uint32_t purpose = (uint32_t)strtoul(field(&save, "purpose="), NULL, 10);
    char *range = (char *)field(&save, "positions=");
    uint32_t a = (uint32_t)strtoul(range, &range, 10);
    uint32_t b = (uint32_t)strtoul(range + 2, NULL, 10);
    char *toks = (char *)field(&save, "tokens="), *s2 = NULL;
    STATUS(run_job(sampler, nj), ARGEN_OK, "");
    argen_sample_job draws[64];
    uint32_t got[64];
    size_t n = b - a;
    for (uint32_t pos = a; pos < b; pos++) {
        argen_sample_job d = {{seed, stream, purpose, pos, 0}, 0};
        draws[pos - a] = d;
    }
    STATUS(argen_sampler_sample(sampler, draws, n, got, 64), ARGEN_OK, "");
    size_t i = 0, bad = 0;
    for (char *t = strtok_r(toks, ",", &s2); t && i < n; t = strtok_r(NULL, ",", &s2), i++)
        bad += got[i] != (uint32_t)strtoul(t, NULL, 10);
    EXPECT(i == n && bad == 0, "%s: %zu of %zu sampled tokens differ", name, bad, n);
}

static void known_answers(const char *path) {
    FILE *f = fopen(path, "r");
    EXPECT(f != NULL, "cannot open %s", path);
    if (!f) return;
    argen_sampler_config cfg = {sizeof cfg, MAX_V, 1};
    argen_sampler *sampler = NULL;
    STATUS(argen_sampler_new(&cfg, &sampler), ARGEN_OK, "");
    static char line[65536];
    int keys = 0, procs = 0, samples = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "key ", 4) == 0) {
            check_key_line(line);
            keys++;
        } else if (strncmp(line, "logits ", 7) == 0) {
            parse_logits_line(line);
        } else if (strncmp(line, "process ", 8) == 0) {
            check_process_line(sampler, line);
            procs++;
        } else if (strncmp(line, "sample ", 7) == 0) {
            check_sample_line(sampler, line);
            samples++;
        }
    }
    fclose(f);
    EXPECT(keys >= 5 && procs >= 2 && samples >= 2, "fixture too small: %d keys, %d process, %d sample",
           keys, procs, samples);
    STATUS(argen_sampler_free(sampler), ARGEN_OK, "");
}

/* ---- half-precision rows ---------------------------------------------------------------- */

/* f16 bits of a float that f16 represents exactly as a normal number. */
static uint16_t exact_f16(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    if ((b & 0x7fffffffu) == 0) return (uint16_t)(b >> 16);
    uint32_t sign = b >> 31, exp = (b >> 23) & 0xffu, man = b & 0x7fffffu;
    return (uint16_t)((sign << 15) | ((exp - 127u + 15u) << 10) | (man >> 13));
}

static void half_rows_match_f32(void) {
    enum { V = 40 };
    float f[2 * V];
    uint16_t h[2 * V], bf[2 * V];
    for (int i = 0; i < 2 * V; i++) {
        f[i] = (float)((i * 37) % 64 - 32) / 4.0f; /* exact in f16 and bf16 */
        uint32_t b;
        memcpy(&b, &f[i], sizeof b);
        bf[i] = (uint16_t)(b >> 16);
        h[i] = exact_f16(f[i]);
    }
    argen_sampler_config cfg = {sizeof cfg, V, 3};
    argen_sampler *s = NULL;
    STATUS(argen_sampler_new(&cfg, &s), ARGEN_OK, "");
    argen_process_job job = {{ARGEN_GUIDANCE_TWO_WAY, 0, 1, 0, 2.5f}, {0.8f, 10, 0.95f, 0.0f}, 0};
    STATUS(argen_sampler_process(s, f, ARGEN_DTYPE_F32, 2 * V, &job, 1), ARGEN_OK, "");
    job.out = 1;
    STATUS(argen_sampler_process(s, h, ARGEN_DTYPE_F16, 2 * V, &job, 1), ARGEN_OK, "");
    job.out = 2;
    STATUS(argen_sampler_process(s, bf, ARGEN_DTYPE_BF16, 2 * V, &job, 1), ARGEN_OK, "");
    uint64_t w[3][V], t[3];
    for (uint32_t r = 0; r < 3; r++)
        STATUS(argen_sampler_read_row(s, r, w[r], V, &t[r]), ARGEN_OK, "");
    EXPECT(t[0] == t[1] && memcmp(w[0], w[1], sizeof w[0]) == 0, "f16 weights differ from f32");
    EXPECT(t[0] == t[2] && memcmp(w[0], w[2], sizeof w[0]) == 0, "bf16 weights differ from f32");
    STATUS(argen_sampler_free(s), ARGEN_OK, "");
}

/* ---- bad input ---------------------------------------------------------------------------- */

static void bad_input(void) {
    enum { V = 16 };
    float logits[2 * V];
    for (int i = 0; i < 2 * V; i++) logits[i] = (float)(i % 5);
    argen_sampler_config cfg = {sizeof cfg, V, 2};
    argen_sampler *s = NULL;
    STATUS(argen_sampler_new(&cfg, &s), ARGEN_OK, "");
    argen_process_job job = {{ARGEN_GUIDANCE_PLAIN, 0, 0, 0, 0.0f}, {1.0f, 0, 0.0f, 0.0f}, 0};

    STATUS(argen_sampler_new(NULL, &s), ARGEN_ERR_NULL_POINTER, "config");
    STATUS(argen_sampler_new(&cfg, NULL), ARGEN_ERR_NULL_POINTER, "out_sampler");
    argen_sampler_config small = {sizeof(size_t), V, 2};
    argen_sampler *other = NULL;
    STATUS(argen_sampler_new(&small, &other), ARGEN_ERR_STRUCT_SIZE, "struct_size");
    argen_sampler_config zero = {sizeof zero, 0, 2};
    STATUS(argen_sampler_new(&zero, &other), ARGEN_ERR_INVALID_ARGUMENT, "vocab");

    STATUS(argen_sampler_process(NULL, logits, ARGEN_DTYPE_F32, V, &job, 1),
           ARGEN_ERR_NULL_POINTER, "sampler");
    STATUS(argen_sampler_process(s, NULL, ARGEN_DTYPE_F32, V, &job, 1), ARGEN_ERR_NULL_POINTER,
           "logits");
    STATUS(argen_sampler_process(s, logits, 3, V, &job, 1), ARGEN_ERR_BAD_DTYPE, "dtype code 3");
    STATUS(argen_sampler_process(s, logits, 0xffffffffu, V, &job, 1), ARGEN_ERR_BAD_DTYPE,
           "dtype");
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V - 1, &job, 1),
           ARGEN_ERR_LENGTH_MISMATCH, "multiple");
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, NULL, 1), ARGEN_ERR_NULL_POINTER,
           "jobs");
    STATUS(argen_sampler_process(s, (const char *)logits + 2, ARGEN_DTYPE_F32, V, &job, 1),
           ARGEN_ERR_BAD_LAYOUT, "aligned");
    argen_process_job bad = job;
    bad.guidance.kind = 3;
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &bad, 1),
           ARGEN_ERR_INVALID_ARGUMENT, "guidance kind");
    bad = job;
    bad.guidance.cond = 1; /* only one row passed */
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &bad, 1),
           ARGEN_ERR_INVALID_ARGUMENT, "logit row");
    bad = job;
    bad.params.temperature = -1.0f;
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &bad, 1),
           ARGEN_ERR_INVALID_ARGUMENT, "temperature");
    bad = job;
    bad.params.top_k = V + 1;
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &bad, 1),
           ARGEN_ERR_INVALID_ARGUMENT, "top_k");

    uint32_t tok[2];
    argen_sample_job draw = {{1, 0, ARGEN_PURPOSE_SAMPLE, 0, 0}, 1};
    STATUS(argen_sampler_sample(s, &draw, 1, tok, 2), ARGEN_ERR_ZERO_MASS, "zero");
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &job, 1), ARGEN_OK, "");
    draw.row = 0;
    STATUS(argen_sampler_sample(s, &draw, 1, tok, 0), ARGEN_ERR_BUFFER_TOO_SMALL, "room");
    STATUS(argen_sampler_sample(s, &draw, 1, NULL, 1), ARGEN_ERR_NULL_POINTER, "out_tokens");
    draw.row = 5;
    STATUS(argen_sampler_sample(s, &draw, 1, tok, 2), ARGEN_ERR_INVALID_ARGUMENT, "row 5");
    uint64_t w[V], total;
    STATUS(argen_sampler_read_row(s, 0, w, V + 1, &total), ARGEN_ERR_LENGTH_MISMATCH, "vocabulary");
    STATUS(argen_sampler_fill(s, 0, 9, 0), ARGEN_ERR_INVALID_ARGUMENT, "fill kind");

    argen_criterion_config cc;
    memset(&cc, 0, sizeof cc);
    cc.struct_size = sizeof cc;
    cc.kind = ARGEN_CRITERION_LANTERN;
    argen_criterion *crit = NULL;
    STATUS(argen_criterion_new(&cc, &crit), ARGEN_ERR_NEIGHBOUR_TABLE, "positive");
    cc.kind = 42;
    STATUS(argen_criterion_new(&cc, &crit), ARGEN_ERR_INVALID_ARGUMENT, "criterion kind 42");
    cc.kind = ARGEN_CRITERION_EXACT;
    STATUS(argen_criterion_new(&cc, &crit), ARGEN_OK, "");
    uint32_t tt[2] = {1, V}, pp[2] = {ARGEN_ROOT, 0}, path[2];
    argen_tree_verdict verdict;
    argen_tree_job tj = {tt, pp, 2, 0, ARGEN_NO_DRAFT, 0, 0, 0};
    STATUS(argen_sampler_verify_tree(s, &tj, crit, path, 2, &verdict),
           ARGEN_ERR_TOKEN_OUT_OF_RANGE, "token id 16");
    tj.parents = NULL;
    STATUS(argen_sampler_verify_tree(s, &tj, crit, path, 2, &verdict), ARGEN_ERR_NULL_POINTER,
           "job.parents");
    STATUS(argen_criterion_free(crit), ARGEN_OK, "");
    tj.parents = pp;
    tt[1] = 2;
    STATUS(argen_sampler_verify_tree(s, &tj, crit, path, 2, &verdict), ARGEN_ERR_INVALID_HANDLE,
           "argen_criterion");
    STATUS(argen_criterion_free(crit), ARGEN_ERR_INVALID_HANDLE, "already freed");

    argen_key key = {0, 0, 1, 0, ARGEN_MAX_KEY_TOKEN};
    uint64_t word;
    STATUS(argen_rng_words(&key, &word, 1), ARGEN_ERR_INVALID_ARGUMENT, "token");
    key.token = 0;
    STATUS(argen_rng_words(&key, NULL, 1), ARGEN_ERR_NULL_POINTER, "out_words");
    STATUS(argen_rng_words(&key, &word, ARGEN_WORDS_PER_KEY + 1), ARGEN_ERR_INVALID_ARGUMENT,
           "2048");

    STATUS(argen_sampler_free(s), ARGEN_OK, "");
    STATUS(argen_sampler_free(s), ARGEN_ERR_INVALID_HANDLE, "already freed");
    STATUS(argen_sampler_process(s, logits, ARGEN_DTYPE_F32, V, &job, 1),
           ARGEN_ERR_INVALID_HANDLE, "argen_sampler");
    STATUS(argen_sampler_free(NULL), ARGEN_OK, "");
    EXPECT(strcmp(argen_status_name(ARGEN_ERR_BAD_DTYPE), "ARGEN_ERR_BAD_DTYPE") == 0, "name");
    EXPECT(strcmp(argen_status_name(-5), "ARGEN_ERR_UNKNOWN") == 0, "unknown name");
    EXPECT(argen_dtype_size(ARGEN_DTYPE_F16) == 2 && argen_dtype_size(7) == 0, "dtype sizes");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s fixtures/rng_v1.txt\n", argv[0]);
        return 2;
    }
    EXPECT(argen_abi_version() == ARGEN_ABI_VERSION, "ABI version");
    known_answers(argv[1]);
    half_rows_match_f32();
    bad_input();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
