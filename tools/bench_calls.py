#!/usr/bin/env python3
"""Where the cost model's predictions miss: each `argen bench` row's model calls, measured
against the profile the bench predicted from.

`argen bench --json FILE` records, per row, the mean time of every kind of model call by row
count (`measured_actions`: `[kind, rows, count, mean nanoseconds]`) and the cost profile of its
predictions (`cost_profile.profile`). The table's prediction error of a row's speed-up is
(measured vanilla / measured row) / (predicted vanilla / predicted row) - 1 over the same calls;
this script recomputes it over the calls alone (the bench's own error times whole images,
which also hold the host's work between calls) and lists the calls that carry at least `--share` of a row's time,
each with its measured and profiled cost, so a miss can be traced to the calls that cause it
(a profile point measured in another state of the machine, a row count the curve interpolates
badly, a call that follows calls of another size).

`--points R1,R2,...` recomputes every error with the profile cut to those row counts (the
same measurements, fewer points), which shows what measuring a row count instead of
interpolating it is worth.

Usage:
    argen bench --quick --interleave --json run.json > run.md
    python3 tools/bench_calls.py run.json [--share 0.05] [--points 1,2,4,8,16,32,64,128]
"""

import argparse
import json
import sys


def cost(curve, rows):
    """The profile's cost of `rows` rows: linear between points, extended from the last two
    (`argen_core::cost`, here in floating point)."""
    if len(curve) == 1:
        return curve[0][1] * rows / curve[0][0]
    if rows <= curve[0][0]:
        (r0, t0), (r1, t1) = curve[0], curve[1]
    elif rows >= curve[-1][0]:
        (r0, t0), (r1, t1) = curve[-2], curve[-1]
    else:
        for (r0, t0), (r1, t1) in zip(curve, curve[1:]):
            if r0 <= rows <= r1:
                break
    return t0 + (t1 - t0) * (rows - r0) / (r1 - r0)


def predicted(profile, call):
    kind, rows = call[0], call[1]
    if kind == "prefill":
        return profile["prefill"]
    if kind == "target":
        return cost(profile["profile"]["target"], rows)
    if kind == "draft":
        return cost(profile["profile"]["drafter"], rows)
    return None


def totals(profile, row):
    calls = [c for c in row["measured_actions"] if c[0] in ("prefill", "target", "draft")]
    measured = sum(c[2] * c[3] for c in calls)
    pred = sum(c[2] * predicted(profile, c) for c in calls)
    return measured, pred, calls


def restrict(profile, points):
    """`profile` with its curves cut to the row counts in `points`."""
    keep = set(points)
    out = dict(profile)
    out["profile"] = {
        k: [p for p in v if p[0] in keep] for k, v in profile["profile"].items() if v
    }
    return out


def row_errors(bench, profile=None):
    """`(vanilla's calls against the profile, {row name: Row})` for every row of the
    `argen bench` JSON `bench` with model calls, vanilla excluded; `profile` defaults to the
    one the bench predicted from. A `Row` is `(error, calls, detail, predicted_ms)`: the
    prediction error of the row's speed-up over the calls alone (the bench's own error times
    whole images, which also holds the host's work between calls), the row's calls against
    the profile, `[(call, share of the row's call time, profiled ns)]`, and the profile's ms
    per image for the row's calls (the bench's `predicted.ms_per_image` for the same profile)."""
    profile = profile or bench["cost_profile"]["profile"]
    rows = bench["rows"]
    vanilla = next((r for r in rows if r["name"] == "vanilla"), None)
    if vanilla is None:
        raise ValueError("the bench has no vanilla row")
    vm, vp, _ = totals(profile, vanilla)
    out = {}
    for row in rows:
        m, p, calls = totals(profile, row)
        if m == 0 or row is vanilla:
            continue
        detail = [(c, c[2] * c[3] / m, predicted(profile, c)) for c in calls]
        ms = p / 1e6 / max(row["images"], 1)
        out[row["name"]] = ((vm / m) / (vp / p) - 1, m / p - 1, detail, ms)
    return (vm / vp - 1), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json")
    ap.add_argument("--share", type=float, default=0.05)
    ap.add_argument("--points", default=None)
    a = ap.parse_args()
    with open(a.json) as f:
        d = json.load(f)
    profile = d["cost_profile"]["profile"]
    if a.points:
        profile = restrict(profile, [int(x) for x in a.points.split(",")])
    try:
        vanilla, rows = row_errors(d, profile)
    except ValueError as e:
        sys.exit(f"{a.json}: {e}")
    print(f"vanilla: calls {vanilla:+.1%} against the profile")
    bench_err = {r["name"]: (r.get("predicted") or {}).get("error") for r in d["rows"]}
    for name, (err, calls, detail, _) in rows.items():
        own = bench_err.get(name)
        own = f"; the bench's error over whole images {own:+.1%}" if own is not None else ""
        print(f"{name}: error over the calls {err:+.1%}{own} (calls {calls:+.1%} against the profile)")
        for c, share, q in detail:
            if share >= a.share:
                print(
                    f"    {c[0]:7s} {c[1]:4d} rows  x{c[2]:<6d} {share:4.0%} of the time  "
                    f"{c[3] / 1e3:9.1f} us measured  {q / 1e3:9.1f} us profiled  {c[3] / q - 1:+.0%}"
                )


if __name__ == "__main__":
    main()
