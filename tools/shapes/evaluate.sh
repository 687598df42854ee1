#!/usr/bin/env bash
# Issue 5 acceptance numbers for a ShapesWorld model directory, through the Rust CLI:
#   * vanilla generation with CFG on N held-out prompts (test split of `shapes-export`), each judged
#     by `argen score --json`: overall alignment, per-category verdict rate over the prompts that
#     exercise the category (the `tags` of scenes.jsonl), mean soft score, valid-scene rate
#     (the judge finds 1-3 objects, the world's range);
#   * speculative decoding with the EAGLE drafter under Exact acceptance (`--method sd
#     --criterion exact`) on the same prompts and seeds: mean accepted length, tokens per target
#     forward (and its alignment, which must match vanilla's statistically: Exact is lossless).
#
# Usage: tools/shapes/evaluate.sh [MODEL_DIR] [N] [OUT_DIR]
#   MODEL_DIR  default fixtures/models/shapesworld      N  default 200
#   OUT_DIR    default a temp dir (images, per-prompt JSON, summary.json)
# Env: ARGEN (argen binary; default: build target/release/argen), CFG (default 4),
#      METHODS (default "vanilla sd"), EXTRA_SD_ARGS (e.g. "--draft chain --gamma 4").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODEL="${1:-$ROOT/fixtures/models/shapesworld}"
N="${2:-200}"
OUT="${3:-$(mktemp -d /tmp/shapes-eval-XXXXXX)}"
CFG="${CFG:-4}"
METHODS="${METHODS:-vanilla sd}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ -z "${ARGEN:-}" ]]; then
  (cd "$ROOT" && cargo build --quiet --release -p argen-cli -p argen-shapes --bin argen --bin shapes-export)
  ARGEN="$TARGET/release/argen"
fi
EXPORT="${EXPORT:-$TARGET/release/shapes-export}"
[[ -x "$EXPORT" ]] || (cd "$ROOT" && cargo build --quiet --release -p argen-shapes --bin shapes-export)
mkdir -p "$OUT"
"$EXPORT" --out "$OUT/test" --count "$N" --split test >/dev/null
echo "model $MODEL, $N test prompts, cfg $CFG, out $OUT"

for m in $METHODS; do
  mkdir -p "$OUT/$m"
  extra=()
  if [[ "$m" == sd ]]; then extra=(--method sd --criterion exact ${EXTRA_SD_ARGS:-}); fi
  start=$(date +%s)
  i=0
  while IFS= read -r prompt; do
    "$ARGEN" generate --model "$MODEL" --prompt "$prompt" --seed "$i" --cfg "$CFG" "${extra[@]}" \
      --out "$OUT/$m/$i.png" --stats "$OUT/$m/$i.stats.json" >/dev/null
    "$ARGEN" score --json --prompt "$prompt" "$OUT/$m/$i.png" >"$OUT/$m/$i.score.json"
    i=$((i + 1))
    if (( i % 20 == 0 )); then echo "$m: $i/$N ($(( $(date +%s) - start ))s)"; fi
  done <"$OUT/test/prompts.txt"
  echo "$(( $(date +%s) - start ))" >"$OUT/$m/wall_s"
done

python3 - "$OUT" "$N" "$METHODS" <<'EOF'
import json, os, sys
out, n, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
scenes = [json.loads(l) for l in open(os.path.join(out, "test", "scenes.jsonl"))]
summary = {"prompts": n}
for m in methods:
    sc = [json.load(open(os.path.join(out, m, f"{i}.score.json"))) for i in range(n)]
    st = [json.load(open(os.path.join(out, m, f"{i}.stats.json"))) for i in range(n)]
    cats = {}
    for s, r in zip(scenes, sc):
        for t in s["tags"]:
            c = cats.setdefault(t, [0, 0])
            c[0] += bool(r.get(t, False)); c[1] += 1
    res = {
        "aligned": sum(r["aligned"] for r in sc) / n,
        "soft": sum(r["soft"] for r in sc) / n,
        "valid_scene_rate": sum(1 <= r["objects"] <= 3 for r in sc) / n,
        "per_category": {k: {"rate": v[0] / v[1], "prompts": v[1]} for k, v in sorted(cats.items())},
        "tokens_per_target_forward": sum(s["tokens_per_target_forward"] for s in st) / n,
        "mean_accepted_length": sum(s["mean_accepted_length"] for s in st) / n,
        "wall_s": int(open(os.path.join(out, m, "wall_s")).read()),
    }
    summary[m] = res
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
print(json.dumps(summary, indent=1))
EOF
echo "summary: $OUT/summary.json"
