/* A C host that brings its own (tiny) model and lets argen decide the tokens.
 *
 * The "model" is a bigram table: the logits of the next token are row `prev` of a fixed
 * VOCAB x VOCAB table, plus an unconditional row for classifier-free guidance. The host
 *   1. generates 12 tokens: CFG (two-way, scale 3) + temperature 0.9 + top-k 8, keyed draws
 *      (seed 2024, stream 0, purpose SAMPLE, position = token index) — the draws argen's own
 *      vanilla decoder would make;
 *   2. drafts a small tree of continuations (greedy children of the last token) and verifies it
 *      with the exact criterion and with the coupled one;
 *   3. derives the same first token once more from the RNG primitives, to show the sampling
 *      contract is reproducible from the outside.
 *
 * Build (from the repository root, after `cargo build --release -p argen-ffi`):
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/sample_and_verify.c \
 *      target/release/libargen_ffi.a -lpthread -ldl -lm -o sample_and_verify
 */
#include "argen.h"

#include <stdio.h>
#include <stdlib.h>

#define VOCAB 32
#define STEPS 12

/* Prints argen's error and exits when a call fails. */
static void check(argen_status st, const char *what) {
    if (st != ARGEN_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, argen_last_error(), argen_status_name(st));
        exit(1);
    }
}

/* The host's model: conditional logits of the token after `prev`, and unconditional logits. */
static void model(uint32_t prev, float cond[VOCAB], float uncond[VOCAB]) {
    for (uint32_t t = 0; t < VOCAB; t++) {
        uint32_t h = (prev * 2654435761u) ^ (t * 40503u);
        cond[t] = (float)(h % 1000u) / 250.0f - 2.0f;
        uncond[t] = (float)((h >> 10) % 1000u) / 500.0f - 1.0f;
    }
    cond[(prev * 7u + 3u) % VOCAB] += 6.0f; /* a favourite successor */
}

int main(void) {
    printf("argen %s, ABI %u\n", argen_version(), argen_abi_version());

    argen_sampler_config cfg = {sizeof(argen_sampler_config), VOCAB, 8};
    argen_sampler *sampler = NULL;
    check(argen_sampler_new(&cfg, &sampler), "argen_sampler_new");

    /* 1. Generation with CFG. Logit rows: 0 = conditional, 1 = unconditional. */
    float logits[2 * VOCAB];
    uint32_t tokens[STEPS];
    uint32_t prev = 0;
    argen_process_job job = {
        .guidance = {ARGEN_GUIDANCE_TWO_WAY, 0, 1, 0, 3.0f},
        .params = {.temperature = 0.9f, .top_k = 8, .top_p = 0.0f, .min_p = 0.0f},
        .out = 0,
    };
    for (uint32_t pos = 0; pos < STEPS; pos++) {
        model(prev, logits, logits + VOCAB);
        check(argen_sampler_process(sampler, logits, ARGEN_DTYPE_F32, 2 * VOCAB, &job, 1),
              "argen_sampler_process");
        argen_sample_job draw = {{2024, 0, ARGEN_PURPOSE_SAMPLE, pos, 0}, 0};
        check(argen_sampler_sample(sampler, &draw, 1, &tokens[pos], 1), "argen_sampler_sample");
        prev = tokens[pos];
    }
    printf("tokens:");
    for (int i = 0; i < STEPS; i++) printf(" %u", tokens[i]);
    printf("\n");

    /* 2. A draft tree after the last token: two greedy root children, the first with one child.
     *    Target rows per slot (0 = root, 1..3 = nodes) come from the model without guidance. */
    uint32_t tree_tokens[3], parents[3] = {ARGEN_ROOT, ARGEN_ROOT, 0};
    uint32_t top[2];
    double probs[2];
    argen_process_job plain = {{ARGEN_GUIDANCE_PLAIN, 0, 0, 0, 0.0f}, {1.0f, 0, 0.0f, 0.0f}, 0};
    model(prev, logits, logits + VOCAB);
    check(argen_sampler_process(sampler, logits, ARGEN_DTYPE_F32, VOCAB, &plain, 1), "process");
    check(argen_sampler_top_k(sampler, 0, top, probs, 2), "argen_sampler_top_k");
    tree_tokens[0] = top[0];
    tree_tokens[1] = top[1];
    model(top[0], logits, logits + VOCAB);
    plain.out = 1;
    check(argen_sampler_process(sampler, logits, ARGEN_DTYPE_F32, VOCAB, &plain, 1), "process");
    check(argen_sampler_top_k(sampler, 1, top, probs, 1), "argen_sampler_top_k");
    tree_tokens[2] = top[0];
    printf("draft tree: %u, %u (siblings), %u (child of %u)\n", tree_tokens[0], tree_tokens[1],
           tree_tokens[2], tree_tokens[0]);

    const uint32_t kinds[2] = {ARGEN_CRITERION_EXACT, ARGEN_CRITERION_COUPLED};
    const char *names[2] = {"exact", "coupled"};
    for (int c = 0; c < 2; c++) {
        argen_criterion_config ccfg = {0};
        ccfg.struct_size = sizeof ccfg;
        ccfg.kind = kinds[c];
        argen_criterion *criterion = NULL;
        check(argen_criterion_new(&ccfg, &criterion), "argen_criterion_new");
        /* Slot rows: 0 root (after `prev`), 1 node 0, 2 node 1, 3 node 2. */
        uint32_t slot_prev[4] = {prev, tree_tokens[0], tree_tokens[1], tree_tokens[2]};
        for (uint32_t s = 0; s < 4; s++) {
            model(slot_prev[s], logits, logits + VOCAB);
            plain.out = s;
            check(argen_sampler_process(sampler, logits, ARGEN_DTYPE_F32, VOCAB, &plain, 1),
                  "process");
        }
        argen_tree_job tj = {tree_tokens, parents, 3, 0, ARGEN_NO_DRAFT, 2024, 0, STEPS};
        uint32_t path[3];
        argen_tree_verdict verdict;
        check(argen_sampler_verify_tree(sampler, &tj, criterion, path, 3, &verdict),
              "argen_sampler_verify_tree");
        printf("%s: accepted %zu node(s)", names[c], verdict.accepted);
        for (size_t i = 0; i < verdict.accepted; i++) printf(" [node %u]", path[i]);
        printf(", then token %u\n", verdict.token);
        check(argen_criterion_free(criterion), "argen_criterion_free");
    }

    /* 3. The first draw from the primitives: processed weights + one uniform integer below the
     *    total + inverse CDF in token order equals argen_sampler_sample's token. */
    model(0, logits, logits + VOCAB);
    job.out = 0;
    check(argen_sampler_process(sampler, logits, ARGEN_DTYPE_F32, 2 * VOCAB, &job, 1), "process");
    uint64_t weights[VOCAB], total = 0, r = 0;
    check(argen_sampler_read_row(sampler, 0, weights, VOCAB, &total), "argen_sampler_read_row");
    argen_key key = {2024, 0, ARGEN_PURPOSE_SAMPLE, 0, 0};
    check(argen_rng_below(&key, total, &r), "argen_rng_below");
    uint32_t t = 0;
    for (uint64_t acc = 0; t < VOCAB; t++) {
        acc += weights[t];
        if (r < acc) break;
    }
    printf("first token from the primitives: %u (%s)\n", t, t == tokens[0] ? "matches" : "DIFFERS");

    check(argen_sampler_free(sampler), "argen_sampler_free");
    return t == tokens[0] ? 0 : 1;
}
