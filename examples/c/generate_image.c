/* The high-level C API: load an argen model directory and generate an image with any method.
 *
 *   generate_image MODEL_DIR PROMPT METHOD SEED OUT.ppm [TOKENS.txt]
 *
 * writes the image as a binary PPM, the tokens one per line (if asked), and prints the image
 * size, the statistics JSON and an FNV-1a checksum of the pixels. examples/c/run_engine.sh
 * runs it on the bundled ShapesWorld model and checks that its tokens equal
 * `argen generate --tokens` for the same prompt, method and seed.
 *
 * Build (from the repository root, after `cargo build --release -p argen-ffi`):
 *   cc -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/generate_image.c \
 *      target/release/libargen_ffi.a -lpthread -ldl -lm -o generate_image
 */
#include "argen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, argen_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, argen_status_name(st), argen_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL_DIR PROMPT METHOD SEED OUT.ppm [TOKENS.txt]\n", argv[0]);
        return 2;
    }
    argen_engine_config cfg = {sizeof cfg, argv[1], /* threads: all cores */ 0};
    argen_engine *engine = NULL;
    argen_status st = argen_engine_open(&cfg, &engine);
    if (st != ARGEN_OK) return fail("argen_engine_open", st);

    argen_generate_request req = {0};
    req.struct_size = sizeof req;
    req.prompt = argv[2];
    req.class_id = -1;
    req.method = argv[3];
    req.options_json = NULL; /* the `argen` command's defaults */
    req.seed = strtoull(argv[4], NULL, 10);
    argen_generation *g = NULL;
    st = argen_generate(engine, &req, &g);
    if (st != ARGEN_OK) {
        int rc = fail("argen_generate", st); /* before any other argen call replaces the error */
        argen_engine_free(engine);
        return rc;
    }

    const uint32_t *tokens = NULL;
    size_t n = 0, w = 0, h = 0;
    const uint8_t *rgb = NULL;
    const char *stats = NULL;
    if ((st = argen_generation_tokens(g, &tokens, &n)) != ARGEN_OK ||
        (st = argen_generation_image(g, &rgb, &w, &h)) != ARGEN_OK ||
        (st = argen_generation_stats_json(g, &stats)) != ARGEN_OK) {
        int rc = fail("argen_generation_*", st);
        argen_generation_free(g);
        argen_engine_free(engine);
        return rc;
    }

    int rc = 0;
    FILE *f = fopen(argv[5], "wb");
    if (!f || fprintf(f, "P6\n%zu %zu\n255\n", w, h) < 0 || fwrite(rgb, 3, w * h, f) != w * h) {
        perror(argv[5]);
        rc = 1;
    }
    if (f && fclose(f) != 0) rc = 1;
    if (argc > 6) {
        FILE *t = fopen(argv[6], "w");
        if (!t) {
            perror(argv[6]);
            rc = 1;
        } else {
            for (size_t i = 0; i < n; i++) fprintf(t, "%" PRIu32 "\n", tokens[i]);
            if (fclose(t) != 0) rc = 1;
        }
    }
    uint64_t hash = 1469598103934665603ull; /* FNV-1a over the pixels */
    for (size_t i = 0; i < w * h * 3; i++) hash = (hash ^ rgb[i]) * 1099511628211ull;
    printf("%zu tokens, %zux%zu px, pixels fnv1a %016" PRIx64 "\nstats %s\n", n, w, h, hash, stats);

    argen_generation_free(g);
    argen_engine_free(engine);
    return rc;
}
