#!/usr/bin/env bash
# Cross-architecture bit identity (issue 15, design §5): builds the argen-core and argen-cpu test
# suites and the argen CLI for aarch64-unknown-linux-gnu (Jetson's CPU), runs the suites under
# qemu-user, then records generations on x86-64 (`argen generate --trace`) — every method on the
# class-conditional tiny model with 1 and 2 threads, and two generations of the text-conditional
# ShapesWorld model — and replays every one of them on aarch64 (`argen replay`, which compares
# every decision, the stats and the tokens) and decodes its tokens there (`argen decode`): every
# replay must say "identical" and every PNG must equal the x86-64 one byte for byte.
#
# Cost, measured on the shared 2-core dev box (AMD EPYC Zen 4): build 3 min (aarch64 release of
# the core and cpu suites and the CLI, load average ~10), the suites under qemu 5.5 min (load
# ~10), the 22 generations 2 min (x86-64 2 s, aarch64 under qemu 122 s, load ~5; about 8 min at
# load ~10) — roughly 10 to 15 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
if ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
rustup target add "$TARGET" >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"

t0=$(date +%s)
cargo build --release -p argen-cli
cargo build --release -p argen-cli --target "$TARGET"
if [ -z "${ARGEN_CROSS_GENERATIONS_ONLY:-}" ]; then
  cargo test --release --target "$TARGET" -p argen-core -p argen-cpu --no-run
fi
t1=$(date +%s)
echo "cross-arch: build $((t1 - t0)) s"

# The core and cpu suites, executed on (emulated) aarch64 (ARGEN_CROSS_GENERATIONS_ONLY=1 skips
# them while iterating on the comparison below).
if [ -z "${ARGEN_CROSS_GENERATIONS_ONLY:-}" ]; then
  cargo test --release --target "$TARGET" -p argen-core -p argen-cpu
fi
t2=$(date +%s)
echo "cross-arch: aarch64 test suites under qemu $((t2 - t1)) s"

X86=target/release/argen
ARM=(qemu-aarch64 -L /usr/aarch64-linux-gnu "target/$TARGET/release/argen")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/x86" "$work/arm"

# Every method on the class-conditional tiny model, 1 and 2 threads: vanilla; sd (exact and
# coupled; tree and chain drafts); lantern; gsd; vvs (uniform and dynamic); sjd (copy-left);
# bon; gridar.
METHODS=(
  "vanilla|--method vanilla"
  "sd-tree-exact|--method sd --criterion exact --draft tree"
  "sd-chain-coupled|--method sd --criterion coupled --draft chain"
  "lantern|--method lantern"
  "gsd|--method gsd"
  "vvs-uniform|--method vvs --vvs-schedule uniform"
  "vvs-dynamic|--method vvs --vvs-schedule dynamic"
  "sjd-copyleft|--method sjd --jacobi-init copy-left"
  "bon|--method bon --n 2"
  "gridar|--method gridar --n 2"
)
# The text-conditional ShapesWorld model (caption projection with GELU — the path whose bits
# differed between x86-64 and aarch64 before detmath) is ~100x slower under qemu than natively
# (its VQ decoder alone takes ~20 s emulated), so it runs two generations that cover its model
# path: vanilla on 1 thread and VVS (small tree) on 2 threads.
SMALL_TREE="--tree-total 12 --tree-depth 3 --tree-top-k 4"
T2I_RUNS=(
  "vanilla-t1|--method vanilla --threads 1"
  "vvs-uniform-t2|--method vvs --vvs-schedule uniform $SMALL_TREE --threads 2"
)
T2I_ARGS=(--prompt "a red circle left of a blue square, the red circle on the top left" --seed 1)
C2I_ARGS=(--model fixtures/model/tiny --class 3 --seed 2)
gen() { # $1 = output dir, $2 = tag, $3 = method args (split on spaces), rest = argen + model args
  local out=$1 tag=$2 margs=$3; shift 3
  # shellcheck disable=SC2086
  "$@" $margs --out "$out/$tag.png" --tokens "$out/$tag.json" --trace "$out/$tag.argrun" \
    >/dev/null 2>"$out/$tag.err" \
    || { echo "cross-arch: $tag failed:"; cat "$out/$tag.err"; return 1; }
}
for m in "${METHODS[@]}"; do
  for th in 1 2; do
    gen "$work/x86" "c2i-${m%%|*}-t$th" "${m#*|} --threads $th" "$X86" generate "${C2I_ARGS[@]}"
  done
done
for r in "${T2I_RUNS[@]}"; do
  gen "$work/x86" "t2i-${r%%|*}" "${r#*|}" "$X86" generate "${T2I_ARGS[@]}"
done
t3=$(date +%s)

# On aarch64: replay each recorded run (the model directories are the same paths) and decode
# its x86-64 tokens to pixels.
n=0; bad=0
for f in "$work"/x86/*.argrun; do
  tag=$(basename "$f" .argrun)
  n=$((n + 1))
  model=fixtures/model/tiny
  case $tag in t2i-*) model=fixtures/models/shapesworld ;; esac
  if ! out=$("${ARM[@]}" replay "$f" --quiet 2>&1) || [ "${out%% *}" != identical ]; then
    echo "cross-arch: $tag does not replay identically on aarch64: $out"
    bad=$((bad + 1))
    continue
  fi
  "${ARM[@]}" decode --model "$model" --tokens "$work/x86/$tag.json" --out "$work/arm/$tag.png" \
    >/dev/null 2>"$work/arm/$tag.err" \
    || { echo "cross-arch: decoding $tag failed:"; cat "$work/arm/$tag.err"; bad=$((bad + 1)); continue; }
  if ! cmp -s "$work/x86/$tag.png" "$work/arm/$tag.png"; then
    echo "cross-arch: $tag: the PNG differs between x86-64 and aarch64"
    bad=$((bad + 1))
  fi
done
t4=$(date +%s)
echo "cross-arch: records on x86-64 $((t3 - t2)) s, replays and decodes under qemu $((t4 - t3)) s"
echo "cross-arch: $n x86-64 runs replayed on aarch64, $bad not identical"
[ "$bad" -eq 0 ]
