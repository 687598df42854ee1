/* A complete host for argen's decoders in C: it runs its own (toy) model through the decoder
 * C API — argen_decoder_new from a JSON configuration, then poll / handle until done — for every
 * method (vanilla, speculative chain and tree with the exact, coupled, LANTERN and grouped
 * criteria, VVS, Jacobi, Best-of-N, GridAR), and checks that its tokens and forward counts equal
 * the core's known answers in fixtures/ffi_decoder_v1.txt (computed by argen-core with the same
 * toy model, crates/argen-ffi/tests/decoder.rs). Then it runs all of them at once through one
 * argen_mux (forwards merged across requests) and checks that each still gets its solo tokens.
 * It also exercises the error paths.
 *
 * The toy model: logits of the token after a context depend on the context's length and its last
 * token (a real host runs a transformer here). The KV cache is bookkeeping only: per sequence the
 * number of committed tokens, and the pending entries (token, parent) of the last run — exactly
 * the rules of the protocol (keep / commit / new_step / prefill resets).
 *
 * Build and run (from the repository root, after `cargo build --release -p argen-ffi`):
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/decoder_host.c \
 *      target/release/libargen_ffi.a -lpthread -ldl -lm -o decoder_host
 *   ./decoder_host fixtures/ffi_decoder_v1.txt
 */
#define _POSIX_C_SOURCE 200809L
#include "argen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V 32
#define DIM 3
#define MAX_SEQS 256
#define MAX_ENTRIES 1024

typedef struct {
    uint32_t token, parent;
} entry;

typedef struct {
    size_t target_len;          /* committed target entries (image tokens) */
    entry pending[MAX_ENTRIES]; /* the last target run's inputs */
    size_t n_pending;
    size_t drafter_len;         /* committed drafter entries */
    entry entries[MAX_ENTRIES]; /* this drafting step's entries */
    size_t n_entries;
} sequence;

static sequence seqs[MAX_SEQS];
static int failures = 0;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, " (last error: %s)\n", argen_last_error());          \
        }                                                                        \
    } while (0)

/* Number of entries on the chain from `parent` to the root. */
static size_t chain_len(const entry *nodes, uint32_t parent) {
    size_t n = 0;
    while (parent != ARGEN_ROOT) {
        n++;
        parent = nodes[parent].parent;
    }
    return n;
}

/* The toy model: one row of logits for a context of `len` tokens ending in `last`. */
static void toy_row(int drafter, uint32_t variant, size_t len, uint32_t last, float *out) {
    float centre = (float)((last * 7u + (uint32_t)len * 3u + variant * 5u) % V);
    float width = drafter ? 6.0f : 4.0f;
    for (int v = 0; v < V; v++) {
        float d = ((float)v - centre) / width;
        out[v] = -(d * d);
    }
}

/* Runs one group of a forward, appending its rows at `out`; returns the rows written. */
static size_t run_group(const argen_decoder_group *g, float *out) {
    if (g->seq >= MAX_SEQS) {
        fprintf(stderr, "sequence %u beyond this host's %d slots\n", g->seq, MAX_SEQS);
        exit(2);
    }
    sequence *s = &seqs[g->seq];
    size_t rows = 0;
    int drafter = g->kind == ARGEN_GROUP_DRAFT;
#define EMIT(len, last)                                                          \
    for (uint32_t var = 0; var < g->variants; var++, rows++)                     \
        toy_row(drafter, var, (len), (last), out + rows * V)
    if (g->kind == ARGEN_GROUP_PREFILL) {
        memset(s, 0, sizeof *s); /* reset target and drafter; commit the prefix */
        s->target_len = g->n_tokens;
        EMIT(g->n_tokens, g->n_tokens ? g->tokens[g->n_tokens - 1] : 0);
    } else if (g->kind == ARGEN_GROUP_TARGET) {
        s->target_len += g->n_keep; /* keep[] commits pending entries; the rest are dropped */
        s->n_pending = 0;
        for (size_t i = 0; i < g->n_inputs; i++) {
            const argen_decoder_input *in = &g->inputs[i];
            size_t len = s->target_len + chain_len(s->pending, in->parent) + 1;
            EMIT(len, in->token);
            s->pending[s->n_pending++] = (entry){in->token, in->parent};
        }
    } else if (g->kind == ARGEN_GROUP_DRAFT) {
        if (g->new_step) s->n_entries = 0;
        for (size_t i = 0; i < g->n_inputs; i++) {
            const argen_decoder_input *in = &g->inputs[i];
            if (i < g->commit) { /* catch-up: joins the drafter's committed prefix */
                s->drafter_len++;
                EMIT(s->drafter_len, in->token);
                s->entries[s->n_entries++] = (entry){in->token, ARGEN_ROOT};
            } else {
                size_t len = s->drafter_len + chain_len(s->entries, in->parent) + 1;
                EMIT(len, in->token);
                s->entries[s->n_entries++] = (entry){in->token, in->parent};
            }
        }
    } else {
        fprintf(stderr, "unknown group kind %u\n", g->kind);
        exit(2);
    }
#undef EMIT
    return rows;
}

static float toy_score(const uint32_t *t, size_t n) {
    float x = 0.0f;
    for (size_t i = 0; i < n; i++) x += (float)(t[i] * 31u % 17u);
    return x;
}

static uint32_t toy_verdict(uint32_t seq, const uint32_t *t, size_t n) {
    uint32_t sum = seq;
    for (size_t i = 0; i < n; i++) sum += t[i];
    return sum % 3u != 0;
}

static float codebook[V * DIM], embedding[V * DIM];

#define MAX_CASES 32
typedef struct {
    char name[64];
    char json[4096];
    uint32_t want[1024];
    size_t n_want;
} known_case;
static known_case cases[MAX_CASES];
static size_t n_cases = 0;

static argen_decoder_resources resources(void) {
    argen_decoder_resources r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.vocab = V;
    r.neighbour_codebook = codebook; /* LANTERN's table is built from it */
    r.neighbour_codebook_dim = DIM;
    r.embedding = embedding;
    r.embedding_dim = DIM;
    r.codebook = codebook;
    r.codebook_dim = DIM;
    return r;
}

/* Runs `json` to the end; writes the result's tokens and the forward count. */
static int run(const char *json, uint32_t *tokens, size_t *n_tokens, uint32_t *forwards,
               argen_stats *stats) {
    argen_decoder_resources res = resources();
    argen_decoder *dec = NULL;
    if (argen_decoder_new(json, strlen(json), &res, &dec) != ARGEN_OK) return -1;
    argen_requirements req;
    if (argen_decoder_requirements(dec, &req) != ARGEN_OK) return -1;
    float *logits = malloc((size_t)req.logits_rows * V * sizeof *logits);
    if (!logits) return -1;
    memset(seqs, 0, sizeof seqs);
    *forwards = 0;
    argen_decoder_action a;
    argen_status st = ARGEN_OK;
    for (;;) {
        if ((st = argen_decoder_poll(dec, &a)) != ARGEN_OK || a.kind == ARGEN_ACTION_DONE) break;
        if (a.model != ARGEN_MODEL_NONE) {
            size_t rows = 0;
            for (size_t g = 0; g < a.n_groups; g++) rows += run_group(&a.groups[g], logits + rows * V);
            (*forwards)++;
            st = argen_decoder_handle_logits(dec, logits, ARGEN_DTYPE_F32, rows * V);
        } else if (a.kind == ARGEN_ACTION_CHECK) {
            st = argen_decoder_handle_verdict(dec, toy_verdict(a.seq, a.canvas, a.n_canvas));
        } else if (a.kind == ARGEN_ACTION_SCORE) {
            st = argen_decoder_handle_score(dec, toy_score(a.canvas, a.n_canvas));
        } else if (a.kind == ARGEN_ACTION_REFORMULATE) {
            st = argen_decoder_handle_reformulated(dec); /* a real host rewrites the prompt */
        } else {
            fprintf(stderr, "unknown action kind %u\n", a.kind);
            st = ARGEN_ERR_UNKNOWN;
        }
        if (st != ARGEN_OK) break;
    }
    uint32_t result, first, count;
    if (st == ARGEN_OK) st = argen_decoder_result_seq(dec, &result, &first, &count);
    if (st == ARGEN_OK) st = argen_decoder_tokens(dec, result, tokens, req.tokens, n_tokens);
    if (st == ARGEN_OK) st = argen_decoder_stats(dec, stats);
    free(logits);
    argen_decoder_free(dec);
    return st == ARGEN_OK ? 0 : -1;
}

/* Each fixture line: name \t json \t tokens \t target forwards \t draft forwards \t host forwards. */
static void known_answers(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *save = NULL;
        char *name = strtok_r(line, "\t", &save);
        char *json = strtok_r(NULL, "\t", &save);
        char *toks = strtok_r(NULL, "\t", &save);
        char *tf = strtok_r(NULL, "\t", &save);
        char *df = strtok_r(NULL, "\t", &save);
        char *hf = strtok_r(NULL, "\t\n", &save);
        if (!hf) {
            fprintf(stderr, "malformed fixture line\n");
            exit(2);
        }
        uint32_t want[1024];
        size_t n_want = 0;
        for (char *p = strtok_r(toks, " ", &save); p && n_want < 1024; p = strtok_r(NULL, " ", &save))
            want[n_want++] = (uint32_t)strtoul(p, NULL, 10);
        if (n_cases < MAX_CASES && strlen(json) < sizeof cases[0].json && strlen(name) < 64) {
            known_case *c = &cases[n_cases++];
            strcpy(c->name, name);
            strcpy(c->json, json);
            memcpy(c->want, want, n_want * sizeof *want);
            c->n_want = n_want;
        }
        uint32_t got[1024], forwards = 0;
        size_t n_got = 0;
        argen_stats stats;
        int rc = run(json, got, &n_got, &forwards, &stats);
        CHECK(rc == 0, "%s: run failed", name);
        if (rc != 0) continue;
        CHECK(n_got == n_want && memcmp(got, want, n_got * sizeof *got) == 0, "%s: tokens differ",
              name);
        CHECK(stats.target_forwards == strtoul(tf, NULL, 10), "%s: target forwards", name);
        CHECK(stats.draft_forwards == strtoul(df, NULL, 10), "%s: draft forwards", name);
        CHECK(forwards == strtoul(hf, NULL, 10), "%s: host forwards", name);
        printf("%-18s %zu tokens, %u target + %u draft forwards, TPF %.2f, MAL %.2f\n", name,
               n_got, stats.target_forwards, stats.draft_forwards, stats.tokens_per_forward,
               stats.mean_accepted_length);
        n++;
    }
    fclose(f);
    CHECK(n >= 10, "only %d configurations in the fixture", n);
}

/* Every known case at once through one argen_mux, case i on sequences 16 i ..: merged forwards,
 * and each member's tokens equal its solo run's (the fixture). */
static void mux_all(void) {
    int before = failures;
    static char jsons[MAX_CASES][4200];
    size_t dist_rows = 0, max_rows = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const char *at = strstr(cases[i].json, "\"seq\": 0");
        if (!at) {
            fprintf(stderr, "%s: no \"seq\": 0 in the configuration\n", cases[i].name);
            exit(2);
        }
        snprintf(jsons[i], sizeof jsons[i], "%.*s\"seq\": %zu%s", (int)(at - cases[i].json),
                 cases[i].json, 16 * i, at + strlen("\"seq\": 0"));
        argen_requirements req;
        CHECK(argen_decoder_config_requirements(jsons[i], strlen(jsons[i]), &req) == ARGEN_OK,
              "requirements");
        dist_rows += req.dist_rows;
        max_rows += req.logits_rows;
    }
    argen_mux *mux = NULL;
    CHECK(argen_mux_new(V, dist_rows, &mux) == ARGEN_OK, "mux");
    argen_decoder_resources res = resources();
    for (size_t i = 0; i < n_cases; i++)
        CHECK(argen_mux_add(mux, jsons[i], strlen(jsons[i]), &res) == ARGEN_OK, "add %s",
              cases[i].name);
    float *logits = malloc(max_rows * V * sizeof *logits);
    if (!logits) exit(2);
    memset(seqs, 0, sizeof seqs);
    uint32_t forwards = 0;
    argen_decoder_action a;
    for (;;) {
        argen_status st = argen_mux_poll(mux, &a);
        if (st != ARGEN_OK || a.kind == ARGEN_ACTION_DONE) break;
        if (a.model != ARGEN_MODEL_NONE) {
            size_t rows = 0;
            for (size_t g = 0; g < a.n_groups; g++) rows += run_group(&a.groups[g], logits + rows * V);
            forwards++;
            st = argen_mux_handle_logits(mux, logits, ARGEN_DTYPE_F32, rows * V);
        } else if (a.kind == ARGEN_ACTION_CHECK) {
            /* the toy judge sees the sequence relative to its request's base, as in the solo run */
            st = argen_mux_handle_verdict(mux, toy_verdict(a.seq % 16, a.canvas, a.n_canvas));
        } else if (a.kind == ARGEN_ACTION_SCORE) {
            st = argen_mux_handle_score(mux, toy_score(a.canvas, a.n_canvas));
        } else {
            st = argen_mux_handle_reformulated(mux);
        }
        CHECK(st == ARGEN_OK, "mux answer");
        if (st != ARGEN_OK) break;
    }
    for (size_t i = 0; i < n_cases; i++) {
        uint32_t result = 0, done = 0, got[1024];
        size_t n = 0;
        argen_stats stats;
        CHECK(argen_mux_member(mux, (uint32_t)(16 * i), &result, &done, &stats) == ARGEN_OK &&
                  done == 1, "%s: member", cases[i].name);
        CHECK(argen_mux_tokens(mux, result, got, 1024, &n) == ARGEN_OK && n == cases[i].n_want &&
                  memcmp(got, cases[i].want, n * sizeof *got) == 0,
              "%s: multiplexed tokens differ from the solo run", cases[i].name);
    }
    size_t released = 0;
    CHECK(argen_mux_release_done(mux, &released) == ARGEN_OK && released == n_cases, "release");
    if (failures == before)
        printf("mux: %zu requests in %u merged forwards, each equal to its solo run\n", n_cases,
               forwards);
    free(logits);
    CHECK(argen_mux_free(mux) == ARGEN_OK, "mux free");
    CHECK(argen_mux_free(mux) == ARGEN_ERR_INVALID_HANDLE, "mux double free");
}

/* Bad input gets a status and a message, never a crash. */
static void error_paths(void) {
    const char *json =
        "{\"base\": {\"seed\": 1, \"stream\": 0, \"seq\": 0, \"tokens\": 16, \"width\": 4, "
        "\"sampler\": {}, \"guidance\": {\"two_way\": {\"scale\": 2.0}}}, \"method\": \"vanilla\"}";
    argen_decoder_resources res = resources();
    argen_decoder *dec = NULL;
    CHECK(argen_decoder_new("{", 1, &res, &dec) == ARGEN_ERR_INVALID_ARGUMENT, "bad json");
    CHECK(strstr(argen_last_error(), "DecoderConfig") != NULL, "message names DecoderConfig");
    CHECK(argen_decoder_new(NULL, 0, &res, &dec) == ARGEN_ERR_NULL_POINTER, "NULL json");
    res.struct_size = 4;
    CHECK(argen_decoder_new(json, strlen(json), &res, &dec) == ARGEN_ERR_STRUCT_SIZE, "size");
    res = resources();
    CHECK(argen_decoder_new(json, strlen(json), &res, &dec) == ARGEN_OK, "new");
    argen_decoder_action a;
    CHECK(argen_decoder_poll(dec, &a) == ARGEN_OK && a.kind == ARGEN_ACTION_PREFILL, "prefill");
    CHECK(argen_decoder_handle_score(dec, 1.0f) == ARGEN_ERR_PROTOCOL, "score out of order");
    CHECK(argen_decoder_handle_verdict(dec, 1) == ARGEN_ERR_PROTOCOL, "verdict out of order");
    float rows[3 * V];
    memset(rows, 0, sizeof rows);
    CHECK(argen_decoder_handle_logits(dec, rows, ARGEN_DTYPE_F32, 3 * V) ==
              ARGEN_ERR_LENGTH_MISMATCH, "three rows for two");
    CHECK(argen_decoder_handle_logits(dec, rows, 7, 2 * V) == ARGEN_ERR_BAD_DTYPE, "dtype");
    CHECK(argen_decoder_handle_logits(dec, (const char *)rows + 1, ARGEN_DTYPE_F32, 2 * V) ==
              ARGEN_ERR_BAD_LAYOUT, "misaligned");
    CHECK(argen_decoder_poll(dec, NULL) == ARGEN_ERR_NULL_POINTER, "NULL action");
    CHECK(argen_decoder_handle_logits(dec, rows, ARGEN_DTYPE_F32, 2 * V) == ARGEN_OK, "answer");
    uint32_t t[16];
    size_t n = 0;
    CHECK(argen_decoder_tokens(dec, 0, t, 0, &n) == ARGEN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(argen_decoder_tokens(dec, 0, t, 16, &n) == ARGEN_OK && n == 1, "one token");
    CHECK(argen_decoder_free(dec) == ARGEN_OK, "free");
    CHECK(argen_decoder_free(dec) == ARGEN_ERR_INVALID_HANDLE, "double free");
    CHECK(argen_decoder_poll(dec, &a) == ARGEN_ERR_INVALID_HANDLE, "use after free");
    CHECK(argen_decoder_free(NULL) == ARGEN_OK, "free NULL");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s fixtures/ffi_decoder_v1.txt\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < V * DIM; i++) { /* the tables of crates/argen-ffi/tests/decoder.rs */
        codebook[i] = (float)(i * 37 % 101) / 50.0f - 1.0f;
        embedding[i] = (float)(i * 53 % 97) / 40.0f - 1.2f;
    }
    known_answers(argv[1]);
    mux_all();
    error_paths();
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("decoder host: all configurations equal the core\n");
    return 0;
}
