"""tools/bench_calls.py costs the model calls an `argen bench` row recorded with the profile the
bench predicted from, and gets the bench's own predicted time per image.

Run from the repository root after `cargo build --release -p argen-cli`:

    python3 -m unittest discover -s tools/tests -v

The bench runs on the tiny test model (it has a drafter) in a temporary copy of the model
directory, so that the bench calibrates its own profile; `ARGEN_BIN` names the binary
(default `target/release/argen`).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_calls as B  # noqa: E402

TINY = os.path.join(ROOT, "fixtures", "model", "tiny")
ARGEN = os.environ.get("ARGEN_BIN", os.path.join(ROOT, "target", "release", "argen"))


class CostCurve(unittest.TestCase):
    def test_interpolates_and_extends(self):
        c = [[1, 100], [2, 150], [4, 250]]
        self.assertEqual(B.cost(c, 1), 100)
        self.assertEqual(B.cost(c, 3), 200)
        self.assertEqual(B.cost(c, 8), 450)  # the last segment, extended
        self.assertEqual(B.cost([[2, 80]], 4), 160)  # one point: proportional


@unittest.skipUnless(os.path.exists(ARGEN), f"{ARGEN} not built")
class AgainstTheBench(unittest.TestCase):
    def test_errors_equal_the_benchs_own(self):
        with tempfile.TemporaryDirectory() as tmp:
            model = os.path.join(tmp, "model")
            shutil.copytree(TINY, model)
            path = os.path.join(model, "cost-profile.json")
            if os.path.exists(path):
                os.remove(path)
            out = os.path.join(tmp, "bench.json")
            subprocess.run(
                [ARGEN, "bench", "--model", model, "--quick", "--prompts", "1", "--seeds", "1",
                 "--methods", "sd,sjd", "--threads", "1", "--json", out],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                bench = json.load(f)
        _, rows = B.row_errors(bench)
        checked = 0
        for row in bench["rows"]:
            want = (row.get("predicted") or {}).get("ms_per_image")
            if want is None or row["name"] == "vanilla":
                continue
            # The bench costs its row histogram in whole nanoseconds, the script the recorded
            # calls in floating point: the same calls, the same profile.
            got = rows[row["name"]][3]
            self.assertAlmostEqual(got / want, 1.0, delta=1e-4, msg=row["name"])
            checked += 1
        self.assertGreaterEqual(checked, 3)
        # Cutting the profile to its first and last points changes the costs of the rows
        # that use the points in between.
        profile = bench["cost_profile"]["profile"]
        ends = [profile["profile"]["target"][0][0], profile["profile"]["target"][-1][0]]
        _, cut = B.row_errors(bench, B.restrict(profile, ends))
        self.assertTrue(any(abs(cut[n][1] - rows[n][1]) > 1e-6 for n in rows))


if __name__ == "__main__":
    unittest.main()
