"""argen.ray (examples/python/ray_generate.py): the same bytes with 1 and 2 workers, resumable."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import argen
from argen.ray import done_jobs, load_jobs, png_bytes

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures" / "models" / "shapesworld"
SCRIPT = REPO / "examples" / "python" / "ray_generate.py"
PROMPTS = "a red circle left of a blue square\n# comment\n\ntwo green triangles\n"


def run(out: pathlib.Path, prompts: pathlib.Path, workers: int) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(MODEL), "--prompts", str(prompts),
         "--out", str(out), "--method", "sd", "--option", "criterion=coupled", "--seeds", "2",
         "--workers", str(workers), "--threads", "1", "--num-cpus", "2",
         "--object-store-mb", "128"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def report(out: pathlib.Path) -> dict:
    lines = (out / "report.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


def test_jobs_of_a_prompt_file(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text(PROMPTS + "class:3\n")
    jobs = load_jobs(str(p), seeds=2, first_seed=5)
    assert [j["id"] for j in jobs] == [
        "p00000-s5", "p00000-s6", "p00001-s5", "p00001-s6", "p00002-s5", "p00002-s6"]
    assert jobs[-1]["line"] == "class:3"


def test_one_and_two_workers_give_identical_bytes_and_runs_resume(tmp_path):
    pytest.importorskip("ray")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    one, two = tmp_path / "one", tmp_path / "two"
    run(one, prompts, workers=1)
    log = run(two, prompts, workers=2)
    assert "4 to generate with 2 worker(s)" in log and "[4/4]" in log
    r1, r2 = report(one), report(two)
    assert sorted(r1) == sorted(r2) == ["p00000-s0", "p00000-s1", "p00001-s0", "p00001-s1"]
    model = argen.Model(MODEL, threads=1)
    for job, rec in r1.items():
        a = (one / rec["file"]).read_bytes()
        assert a == (two / r2[job]["file"]).read_bytes(), job
        assert rec["png_sha256"] == r2[job]["png_sha256"]
        # ... and equal to the image argen.Model (hence `argen generate`) makes.
        g = model.generate(prompt=rec["prompt"], method="sd", seed=rec["seed"],
                           criterion="coupled")
        assert png_bytes(g.image) == a, job
    assert r1["p00000-s0"]["png_sha256"] != r1["p00000-s1"]["png_sha256"]

    # Resuming: nothing to do; then a lost image and a torn report line are redone.
    mtime = (one / r1["p00000-s0"]["file"]).stat().st_mtime_ns
    log = run(one, prompts, workers=1)
    assert "0 to generate" in log
    assert (one / r1["p00000-s0"]["file"]).stat().st_mtime_ns == mtime
    (one / r1["p00001-s1"]["file"]).unlink()
    with open(one / "report.jsonl", "a") as f:
        f.write('{"id": "p00001-s0", "fi')  # an interrupted write
    before = (one / r1["p00001-s0"]["file"]).read_bytes()
    log = run(one, prompts, workers=1)
    assert "3 already done, 1 to generate" in log
    assert (one / r1["p00001-s1"]["file"]).read_bytes() == (two / r2["p00001-s1"]["file"]).read_bytes()
    assert (one / r1["p00001-s0"]["file"]).read_bytes() == before
    assert done_jobs(str(one)) == set(r1)  # the torn line did not swallow the new record
