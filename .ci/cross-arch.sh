#!/usr/bin/env bash
# Cross-architecture bit identity (issue 15, design §5): builds the argen-core and argen-cpu test
# suites and the argen CLI for aarch64-unknown-linux-gnu (Jetson's CPU), runs the suites under
# qemu-user, then makes the same generations on x86-64 and under qemu — every method on the
# class-conditional tiny model with 1 and 2 threads, and two generations of the text-conditional
# ShapesWorld model — and requires the token files and PNGs to be identical byte for byte.
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
  "$@" $margs --out "$out/$tag.png" --tokens "$out/$tag.json" >/dev/null 2>"$out/$tag.err" \
    || { echo "cross-arch: $tag failed:"; cat "$out/$tag.err"; return 1; }
}
run_all() { # $1 = output dir, rest = the argen command
  local out=$1; shift
  for m in "${METHODS[@]}"; do
    for th in 1 2; do
      gen "$out" "c2i-${m%%|*}-t$th" "${m#*|} --threads $th" "$@" generate "${C2I_ARGS[@]}"
    done
  done
  for r in "${T2I_RUNS[@]}"; do
    gen "$out" "t2i-${r%%|*}" "${r#*|}" "$@" generate "${T2I_ARGS[@]}"
  done
}
run_all "$work/x86" "$X86"
t3=$(date +%s)
run_all "$work/arm" "${ARM[@]}"
t4=$(date +%s)
echo "cross-arch: generations x86-64 $((t3 - t2)) s, aarch64 under qemu $((t4 - t3)) s"

n=0; bad=0
for f in "$work"/x86/*.png "$work"/x86/*.json; do
  b=$(basename "$f")
  n=$((n + 1))
  if ! cmp -s "$f" "$work/arm/$b"; then
    echo "cross-arch: $b differs between x86-64 and aarch64"
    bad=$((bad + 1))
  fi
done
echo "cross-arch: $n files compared, $bad differ"
[ "$bad" -eq 0 ]
