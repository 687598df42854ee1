/* Error paths of the high-level C API (argen_engine_*, argen_generate, argen_generation_*),
 * meant to run under AddressSanitizer and UndefinedBehaviorSanitizer:
 *
 *   test_engine MODEL_DIR      (the bundled ShapesWorld model, a text-conditional model)
 *
 * Every bad input gets its status and a last-error line naming the problem, outputs stay
 * untouched, freed handles are refused, and a good request still works afterwards.
 */
#include "argen.h"

#include <stdio.h>
#include <string.h>

static int passed = 0, failed = 0;

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
#define EXPECT(cond)                                                  \
    do {                                                              \
        if (cond) {                                                   \
            passed++;                                                 \
        } else {                                                      \
            failed++;                                                 \
            fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond);   \
        }                                                             \
    } while (0)

static argen_generate_request request(const char *prompt, const char *method) {
    argen_generate_request r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.prompt = prompt;
    r.class_id = -1;
    r.method = method;
    r.seed = 3;
    return r;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    argen_engine *engine = NULL;
    argen_engine_config cfg = {sizeof cfg, argv[1], 1};

    /* Opening. */
    STATUS(argen_engine_open(NULL, &engine), ARGEN_ERR_NULL_POINTER, "config");
    STATUS(argen_engine_open(&cfg, NULL), ARGEN_ERR_NULL_POINTER, "out_engine");
    argen_engine_config small = cfg;
    small.struct_size = sizeof small - 1;
    STATUS(argen_engine_open(&small, &engine), ARGEN_ERR_STRUCT_SIZE, "struct_size");
    argen_engine_config nodir = {sizeof nodir, NULL, 1};
    STATUS(argen_engine_open(&nodir, &engine), ARGEN_ERR_NULL_POINTER, "model_dir");
    argen_engine_config missing = {sizeof missing, "/nonexistent/argen-model", 1};
    STATUS(argen_engine_open(&missing, &engine), ARGEN_ERR_MODEL, "does not exist");
    argen_engine_config toomany = {sizeof toomany, argv[1], 1u << 20};
    STATUS(argen_engine_open(&toomany, &engine), ARGEN_ERR_INVALID_ARGUMENT, "threads");
    EXPECT(engine == NULL);
    STATUS(argen_engine_open(&cfg, &engine), ARGEN_OK, "");
    EXPECT(engine != NULL);

    size_t tokens = 0, width = 0, height = 0;
    STATUS(argen_engine_shape(engine, &tokens, &width, NULL), ARGEN_ERR_NULL_POINTER, "out_height");
    STATUS(argen_engine_shape(engine, &tokens, &width, &height), ARGEN_OK, "");
    EXPECT(tokens > 0 && width > 0 && width == height);

    /* Bad requests: each refused, *out untouched. */
    argen_generation *g = NULL;
    argen_generate_request r = request("a red circle", "vanilla");
    STATUS(argen_generate(NULL, &r, &g), ARGEN_ERR_NULL_POINTER, "engine");
    STATUS(argen_generate(engine, NULL, &g), ARGEN_ERR_NULL_POINTER, "request");
    STATUS(argen_generate(engine, &r, NULL), ARGEN_ERR_NULL_POINTER, "out_generation");
    argen_generate_request bad = r;
    bad.struct_size = 8;
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_STRUCT_SIZE, "struct_size");
    bad = request(NULL, "vanilla");
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "prompt");
    bad = request("a red circle", "vanilla");
    bad.class_id = 3;
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "not both");
    bad = request(NULL, "vanilla");
    bad.class_id = 3;
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "class-conditional");
    bad.class_id = -7;
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "class_id");
    bad = request("a purple elephant", "vanilla");
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "elephant");
    bad = request("a red \xff circle", "vanilla");
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "UTF-8");
    bad = request("a red circle", "warp");
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "unknown method");
    bad = request("a red circle", "sd");
    bad.options_json = "{\"gamma\": ";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "method options");
    bad.options_json = "{\"gama\": 4}";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "gama");
    bad.options_json = "{\"temperature\": -1}";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "temperature");
    bad = request("a red circle", "vanilla");
    bad.options_json = "{\"inner\": \"sd\"}";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "inner");
    bad = request("a red circle", "sd");
    bad.config_json = "{}";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "not both");
    bad = request("a red circle", NULL);
    bad.config_json = "{\"base\": 1}";
    STATUS(argen_generate(engine, &bad, &g), ARGEN_ERR_INVALID_ARGUMENT, "decoder configuration");
    EXPECT(g == NULL);

    /* A good request, then its accessors. */
    r = request("a red circle", "vanilla");
    STATUS(argen_generate(engine, &r, &g), ARGEN_OK, "");
    const uint32_t *toks = NULL;
    const uint8_t *rgb = NULL;
    const char *stats = NULL;
    size_t n = 0, w = 0, h = 0;
    STATUS(argen_generation_tokens(g, &toks, NULL), ARGEN_ERR_NULL_POINTER, "out_len");
    STATUS(argen_generation_tokens(g, &toks, &n), ARGEN_OK, "");
    EXPECT(n == tokens && toks != NULL);
    STATUS(argen_generation_image(g, &rgb, &w, &h), ARGEN_OK, "");
    EXPECT(w == width && h == height && rgb != NULL);
    unsigned sum = 0;
    for (size_t i = 0; i < w * h * 3; i++) sum += rgb[i]; /* ASan: the whole buffer is readable */
    EXPECT(sum > 0);
    STATUS(argen_generation_stats_json(g, &stats), ARGEN_OK, "");
    EXPECT(stats != NULL && strstr(stats, "\"tokens_per_target_forward\"") != NULL);

    /* Handles of the wrong kind, freed handles, double frees. */
    STATUS(argen_generation_tokens((const argen_generation *)engine, &toks, &n),
           ARGEN_ERR_INVALID_HANDLE, "argen_generation");
    STATUS(argen_generate((argen_engine *)g, &r, &g), ARGEN_ERR_INVALID_HANDLE, "argen_engine");
    STATUS(argen_generation_free(g), ARGEN_OK, "");
    STATUS(argen_generation_free(g), ARGEN_ERR_INVALID_HANDLE, "already freed");
    STATUS(argen_generation_image(g, &rgb, &w, &h), ARGEN_ERR_INVALID_HANDLE, "generation");
    STATUS(argen_generation_free(NULL), ARGEN_OK, "");

    /* The engine still works after every error; then it is freed. */
    argen_generation *g2 = NULL;
    r.seed = 4;
    STATUS(argen_generate(engine, &r, &g2), ARGEN_OK, "");
    STATUS(argen_engine_free(engine), ARGEN_OK, "");
    STATUS(argen_generation_tokens(g2, &toks, &n), ARGEN_OK, ""); /* outlives its engine */
    EXPECT(n == tokens);
    STATUS(argen_generation_free(g2), ARGEN_OK, "");
    STATUS(argen_engine_free(engine), ARGEN_ERR_INVALID_HANDLE, "argen_engine");
    STATUS(argen_generate(engine, &r, &g), ARGEN_ERR_INVALID_HANDLE, "argen_engine");

    printf("test_engine: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
