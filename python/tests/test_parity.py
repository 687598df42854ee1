"""The binding equals argen's Rust core bit for bit: every expected value below was computed by
argen-core (fixtures/ffi_rows_v1.json, fixtures/rng_v1.txt), none is hard-coded here."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import argen
from conftest import as_numpy, as_torch, bits


def job_of(case: dict) -> argen.ProcessJob:
    p = case["params"]
    kw = dict(
        temperature=p["temperature"],
        top_k=p.get("top_k"),
        top_p=p.get("top_p"),
        min_p=p.get("min_p"),
    )
    g = case["guidance"]
    if g == "plain":
        return argen.ProcessJob(case["out"], case["cond"], **kw)
    if g == "two_way":
        return argen.ProcessJob(
            case["out"], case["cond"], uncond=case["uncond"], cfg_scale=case["scale"], **kw
        )
    return argen.ProcessJob(
        case["out"],
        case["cond"],
        uncond=case["uncond"],
        reformulated=case["reformulated"],
        cfg_w=case["scale"],
        **kw,
    )


def check_case(case: dict, logits, vocab: int) -> None:
    s = argen.Sampler(vocab, 2)
    s.process(logits, job_of(case))
    total, weights = s.weights(case["out"])
    assert total == case["total"], case["name"]
    assert weights == case["weights"], case["name"]
    n = len(case["samples"])
    keys = [argen.Key(case["seed"], case["stream"], argen.PURPOSE_SAMPLE, p) for p in range(n)]
    assert s.sample([case["out"]] * n, keys) == case["samples"], case["name"]
    top, probs = s.top_k(case["out"], len(case["top_k"]))
    assert top == case["top_k"]
    assert [struct.pack(">d", p).hex() for p in probs] == case["top_k_probs_bits"]


def numpy_cases(vectors):
    return [c for c in vectors["process"] if c["dtype"] in ("f32", "f16")]


def test_processing_and_sampling_numpy_f32_f16(vectors):
    cases = numpy_cases(vectors)
    assert len(cases) >= 6
    for case in cases:
        check_case(case, as_numpy(case["bits"], case["dtype"], case["rows"]), vectors["vocab"])


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_processing_and_sampling_torch(vectors, dtype, torch):
    cases = [c for c in vectors["process"] if c["dtype"] == dtype]
    assert cases
    for case in cases:
        check_case(case, as_torch(case["bits"], dtype, case["rows"]), vectors["vocab"])


def test_one_dimensional_row_equals_batch_row(vectors):
    case = next(c for c in vectors["process"] if c["guidance"] == "plain" and c["dtype"] == "f32")
    logits = as_numpy(case["bits"], "f32", case["rows"])
    a = argen.Sampler(vectors["vocab"], 1)
    a.process(logits[0], argen.ProcessJob(0, 0, **{"temperature": 0.8, "top_p": 0.7}))
    b = argen.Sampler(vectors["vocab"], 1)
    b.process(logits, argen.ProcessJob(0, 0, **{"temperature": 0.8, "top_p": 0.7}))
    assert a.weights(0) == b.weights(0)


def test_sample_rows_equals_the_sampler(vectors):
    case = next(c for c in vectors["process"] if c["guidance"] == "plain" and c["dtype"] == "f32")
    logits = as_numpy(case["bits"], "f32", case["rows"])
    keys = [argen.Key(5, r, argen.PURPOSE_SAMPLE, 9) for r in range(case["rows"])]
    got = argen.sample_rows(logits, keys, temperature=0.9, top_k=50)
    s = argen.Sampler(vectors["vocab"], case["rows"])
    s.process(logits, [argen.ProcessJob(r, r, temperature=0.9, top_k=50) for r in range(case["rows"])])
    assert got == s.sample(list(range(case["rows"])), keys)


def criterion_of(vectors: dict, spec: dict) -> argen.Criterion:
    kind = spec["kind"]
    if kind == "exact":
        return argen.Criterion.exact()
    if kind == "coupled":
        return argen.Criterion.coupled()
    if kind == "lantern":
        table = np.array(vectors["neighbours"], dtype=np.uint32).reshape(vectors["vocab"], -1)
        return argen.Criterion.lantern(table, spec["k"], spec["delta"], spec["lambda"])
    emb = bits(vectors["codebook_bits"], "f32").view(np.float32).reshape(vectors["vocab"], -1)
    return argen.Criterion.grouped(emb, spec["window"], spec["prob_tol"], spec["dist_tol"])


def test_tree_verification_every_criterion(vectors):
    vocab = vectors["vocab"]
    inputs = vectors["tree_inputs"]
    kinds = set()
    for case in vectors["trees"]:
        inp = inputs[case["input"]]
        slots = inp["slots"]
        logits = as_numpy(inp["bits"], "f32", 2 * slots)
        crit = criterion_of(vectors, case["criterion"])
        kinds.add(crit.name)
        for v in case["verdicts"]:
            s = argen.Sampler(vocab, 2 * slots)
            s.process(logits, [argen.ProcessJob(r, r) for r in range(2 * slots)])
            path, token = s.verify_tree(
                np.array(inp["tokens"], dtype=np.int64),
                inp["parents"],
                crit,
                seed=v["seed"],
                stream=case["stream"],
                position=case["position"],
                target_base=0,
                draft_base=slots if inp["sampled"] else None,
            )
            assert (path, token) == (v["path"], v["token"]), (case["name"], v["seed"])
    assert kinds == {"exact", "coupled", "lantern", "grouped"}


def test_neighbour_table(vectors):
    cb = bits(vectors["codebook_bits"], "f32").view(np.float32).reshape(vectors["vocab"], -1)
    table = argen.neighbour_table(cb, vectors["table_k"])
    assert [t for row in table for t in row] == vectors["neighbours"]


def test_rng_known_answers(rng_lines):
    checked = 0
    for line in rng_lines:
        if not line.startswith("key "):
            continue
        f = line.split(" ")
        key = argen.Key(*(int(x) for x in f[1:6]))
        assert [f"{w:#018x}" for w in key.words(4)] == f[7:11]
        below, unit = f.index("below"), f.index("unit")
        for pair in f[below + 1 : unit]:
            n, r = pair.split(":")
            assert key.below(int(n)) == int(r)
        assert struct.pack(">d", key.unit()).hex() == f[unit + 1][2:]
        checked += 1
    assert checked >= 5


def test_rng_key_layout():
    words = argen.Key.chacha_key(7)
    assert words[0] == 7 and words[1] == 0
    assert struct.pack("<3I", *words[2:5]) == b"argen-rng-v1"
    k = argen.Key(1, 2, 3, 4, 5)
    assert k.nonce == (3 << 32) | 2
    assert k.counter(6) == (4 << 32) | (5 << 8) | 6
    assert k.words(2048)[:3] == k.words(3)


def parse_fields(parts):
    return dict(p.split("=", 1) for p in parts if "=" in p)


def test_pipeline_known_answers(rng_lines):
    rows, jobs, checked = {}, {}, 0
    for line in rng_lines:
        f = line.split(" ")
        if f[0] == "logits":
            rows[f[1]] = np.array([int(h, 16) for h in f[3].split(",")], dtype=np.uint32).view(
                np.float32
            )
        elif f[0] == "process":
            kv = parse_fields(f[2:])
            opt = lambda k, t: None if kv[k] == "-" else t(kv[k])  # noqa: E731
            cond = rows[kv["cond"]]
            if kv["uncond"] == "-":
                logits = cond.reshape(1, -1)
                job = dict(row=0)
            else:
                logits = np.stack([cond, rows[kv["uncond"]]])
                job = dict(row=0, uncond=1, cfg_scale=float(kv["scale"]))
            job.update(
                temperature=float(kv["T"]),
                top_k=opt("top_k", int),
                top_p=opt("top_p", float),
                min_p=opt("min_p", float),
            )
            jobs[f[1]] = (logits, job)
            s = argen.Sampler(cond.size, 1)
            s.process(logits, argen.ProcessJob(0, **job))
            total, w = s.weights(0)
            assert total == int(kv["total"])
            assert w == [int(h, 16) for h in kv["weights"].split(",")]
            checked += 1
        elif f[0] == "sample":
            logits, job = jobs[f[1]]
            kv = parse_fields(f[2:])
            a, b = (int(x) for x in kv["positions"].split(".."))
            b += 1  # the range is inclusive
            s = argen.Sampler(logits.shape[1], 1)
            s.process(logits, argen.ProcessJob(0, **job))
            keys = [
                argen.Key(int(kv["seed"]), int(kv["stream"]), int(kv["purpose"]), p)
                for p in range(a, b)
            ]
            assert s.sample([0] * (b - a), keys) == [int(t) for t in kv["tokens"].split(",")]
            checked += 1
    assert checked >= 4


def test_greedy_and_fills():
    logits = np.array([[0.0, 3.0, 3.0, -np.inf]], dtype=np.float32)
    s = argen.Sampler(4, 2)
    s.process(logits, argen.ProcessJob(0, temperature=0.0))
    total, w = s.weights(0)
    assert w == [0, total, 0, 0]  # ties to the lowest id
    s.fill_uniform(1)
    assert s.weights(1) == (4 << 40, [1 << 40] * 4)
    s.fill_one_hot(1, 3)
    assert s.weights(1) == (1 << 40, [0, 0, 0, 1 << 40])
    assert s.sample(1, argen.Key(0, 0, 1, 0)) == 3
