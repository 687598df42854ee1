#!/usr/bin/env bash
# Cross-architecture bit identity (issue 15, design §5): builds the argen-core and argen-cpu test
# suites and the argen CLI for aarch64-unknown-linux-gnu (Jetson's CPU), runs the suites under
# qemu-user, then makes the same generations on x86-64 and under qemu — every method, the
# text-conditional ShapesWorld model and the class-conditional tiny model, 1 and 2 threads —
# and requires the token files and PNGs to be identical byte for byte.
#
# Cost on the 2-core CI box: about 4 min to build (release, both targets), about 3 min to run
# the suites under qemu and about 3 min for the 36 generations (see the timing lines below).
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
cargo test --release --target "$TARGET" -p argen-core -p argen-cpu --no-run
t1=$(date +%s)
echo "cross-arch: build $((t1 - t0)) s"

# The core and cpu suites, executed on (emulated) aarch64.
cargo test --release --target "$TARGET" -p argen-core -p argen-cpu
t2=$(date +%s)
echo "cross-arch: aarch64 test suites under qemu $((t2 - t1)) s"

X86=target/release/argen
ARM=(qemu-aarch64 -L /usr/aarch64-linux-gnu "target/$TARGET/release/argen")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/x86" "$work/arm"

# Every method: vanilla; sd (exact, coupled; chain and tree drafts); lantern; gsd; vvs (uniform
# and dynamic); sjd (random and copy-left); bon; gridar.
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
model_args() { # the model, condition and seed of model $1
  case $1 in
    t2i) MODEL_ARGS=(--prompt "two red circles left of a blue square" --seed 1) ;;
    c2i) MODEL_ARGS=(--model fixtures/model/c2i_tiny --class 3 --seed 2) ;;
  esac
}
run_all() { # $1 = output dir, rest = the argen command
  local out=$1; shift
  for m in "${METHODS[@]}"; do
    local name=${m%%|*} margs=${m#*|}
    for model in t2i c2i; do
      model_args "$model"
      for th in 1 2; do
        local tag="$model-$name-t$th"
        # shellcheck disable=SC2086
        "$@" generate $margs "${MODEL_ARGS[@]}" --threads "$th" \
          --out "$out/$tag.png" --tokens "$out/$tag.json" >/dev/null 2>"$out/$tag.err" \
          || { echo "cross-arch: $tag failed:"; cat "$out/$tag.err"; return 1; }
      done
    done
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
