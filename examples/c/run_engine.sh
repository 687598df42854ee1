#!/usr/bin/env bash
# The high-level C API: builds the C library and the argen command, compiles the image example
# and the error-path test with the system C compiler (-Wall -Wextra -Werror), checks that the
# example's tokens equal `argen generate --tokens` (same prompt, method, seed), and runs the
# error-path test under AddressSanitizer and UndefinedBehaviorSanitizer. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."
CC=${CC:-cc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build --release -p argen-ffi -p argen-cli
lib=target/release/libargen_ffi.a
libs=(-lpthread -ldl -lm)
flags=(-std=c11 -Wall -Wextra -Werror -Iinclude)
model=fixtures/models/shapesworld
prompt="a red circle left of a blue square"
"$CC" "${flags[@]}" -O2 examples/c/generate_image.c "$lib" "${libs[@]}" -o "$out/generate_image"
for method in vanilla sd; do
  "$out/generate_image" "$model" "$prompt" "$method" 7 "$out/$method.ppm" "$out/$method.txt"
  target/release/argen generate --model "$model" --prompt "$prompt" --method "$method" --seed 7 \
    --quiet --out "$out/$method.png" --tokens "$out/$method.json" >/dev/null
  python3 -c 'import json,sys; print("\n".join(map(str, json.load(open(sys.argv[1])))))' \
    "$out/$method.json" >"$out/$method.cli.txt"
  cmp "$out/$method.txt" "$out/$method.cli.txt"
  echo "C API and argen generate give the same $method tokens"
done
"$CC" "${flags[@]}" -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  examples/c/test_engine.c "$lib" "${libs[@]}" -o "$out/test_engine"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$out/test_engine" "$model"
