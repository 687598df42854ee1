#!/usr/bin/env bash
# Builds the C library, then compiles and runs the C examples (the sampling host, the decoder
# host, also under the sanitizers) and the sanitizer test with the
# system C compiler (`CC`, default cc). Run from anywhere; used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
CC=${CC:-cc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --release -p argen-ffi
lib=target/release/libargen_ffi.a
libs=(-lpthread -ldl -lm)
flags=(-std=c11 -Wall -Wextra -Werror -Iinclude)
"$CC" "${flags[@]}" -O2 examples/c/sample_and_verify.c "$lib" "${libs[@]}" -o "$out/sample_and_verify"
"$out/sample_and_verify"
# The decoder host: every method through poll/handle equals the core's known answers.
"$CC" "${flags[@]}" -O2 examples/c/decoder_host.c "$lib" "${libs[@]}" -o "$out/decoder_host"
"$out/decoder_host" fixtures/ffi_decoder_v1.txt
"$CC" "${flags[@]}" -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  examples/c/decoder_host.c "$lib" "${libs[@]}" -o "$out/decoder_host_asan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$out/decoder_host_asan" fixtures/ffi_decoder_v1.txt
"$CC" "${flags[@]}" -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  examples/c/test_argen.c "$lib" "${libs[@]}" -o "$out/test_argen"
# The header is also valid C++ (extern "C" guards).
"${CXX:-c++}" -std=c++17 -Wall -Wextra -Werror -Iinclude -x c++ -fsyntax-only include/argen.h
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$out/test_argen" fixtures/rng_v1.txt
