"""Bad input gets a typed argen exception with argen's message and the C status code — never a
crash and never a silent copy."""

from __future__ import annotations

import numpy as np
import pytest

import argen

V = 16


@pytest.fixture
def sampler():
    return argen.Sampler(V, 2)


def logits(rows=1, dtype=np.float32):
    return np.linspace(-1, 1, rows * V, dtype=dtype).reshape(rows, V)


def test_exceptions_carry_code_and_status(sampler):
    with pytest.raises(argen.LengthError) as e:
        sampler.process(np.zeros((1, V + 1), dtype=np.float32), argen.ProcessJob(0))
    assert e.value.status == "ARGEN_ERR_LENGTH_MISMATCH"
    assert argen.status_name(e.value.code) == e.value.status
    assert "vocabulary" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, argen.ArgenError)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.uint8])
def test_wrong_dtype(sampler, dtype):
    with pytest.raises(argen.DtypeError, match="float32, float16 or bfloat16") as e:
        sampler.process(np.zeros((1, V), dtype=dtype), argen.ProcessJob(0))
    assert isinstance(e.value, TypeError)
    assert e.value.status == "ARGEN_ERR_BAD_DTYPE"


def test_non_contiguous(sampler):
    a = np.zeros((V, 2), dtype=np.float32).T
    with pytest.raises(argen.LayoutError, match="not C-contiguous"):
        sampler.process(a, argen.ProcessJob(0))
    with pytest.raises(argen.LayoutError):
        sampler.process(np.zeros(2 * V, dtype=np.float32)[::2], argen.ProcessJob(0))


def test_wrong_shapes(sampler):
    with pytest.raises(argen.LayoutError, match="1-D"):
        sampler.process(np.zeros((1, 1, V), dtype=np.float32), argen.ProcessJob(0))
    with pytest.raises(argen.LayoutError, match="1-D"):
        sampler.process(np.float32(1.0).reshape(()), argen.ProcessJob(0))
    with pytest.raises(argen.LengthError):
        sampler.process(np.zeros((0, V), dtype=np.float32), argen.ProcessJob(0))


@pytest.mark.parametrize("bad", [[0.0] * V, "logits", None, 3.5, {"a": 1}])
def test_wrong_python_types_for_logits(sampler, bad):
    with pytest.raises(argen.ArgenTypeError, match="NumPy array or a tensor") as e:
        sampler.process(bad, argen.ProcessJob(0))
    assert isinstance(e.value, TypeError)


def test_wrong_python_types_elsewhere(sampler):
    with pytest.raises(argen.ArgenTypeError, match="ProcessJob"):
        sampler.process(logits(), "job")
    with pytest.raises(argen.ArgenTypeError, match="ProcessJob"):
        sampler.process(logits(), [argen.ProcessJob(0), 1])
    sampler.process(logits(), argen.ProcessJob(0))
    with pytest.raises(argen.ArgenTypeError, match="Key"):
        sampler.sample([0], [42])
    with pytest.raises(argen.ArgenTypeError, match="criterion"):
        sampler.verify_tree([1], [argen.ROOT], "exact", seed=0, stream=0, position=0)
    with pytest.raises(argen.ArgenTypeError, match="tokens"):
        sampler.verify_tree("ab", [argen.ROOT], argen.Criterion.exact(), seed=0, stream=0, position=0)
    with pytest.raises(TypeError):
        argen.Key("seed", 0, 1, 0)


def test_row_and_job_ranges(sampler):
    with pytest.raises(argen.InvalidArgumentError, match="logit row"):
        sampler.process(logits(), argen.ProcessJob(0, 1))
    with pytest.raises(argen.InvalidArgumentError, match="row 2"):
        sampler.process(logits(), argen.ProcessJob(2))
    with pytest.raises(argen.InvalidArgumentError, match="guidance"):
        argen.ProcessJob(0, uncond=1)
    with pytest.raises(argen.InvalidArgumentError, match="guidance"):
        argen.ProcessJob(0, cfg_w=1.0)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=V + 1), "top_k"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=0.0), "top_p"),
        (dict(min_p=-0.1), "min_p"),
    ],
)
def test_bad_sampling_parameters(sampler, kw, name):
    with pytest.raises(argen.InvalidArgumentError, match=name):
        sampler.process(logits(), argen.ProcessJob(0, **kw))


def test_bad_logit_values(sampler):
    a = logits()
    a[0, 3] = np.nan
    with pytest.raises(argen.LogitsError, match="logit 3"):
        sampler.process(a, argen.ProcessJob(0))
    with pytest.raises(argen.LogitsError, match="-inf"):
        sampler.process(np.full((1, V), -np.inf, dtype=np.float32), argen.ProcessJob(0))
    big = np.full((2, V), 3e38, dtype=np.float32)
    big[1] = -3e38
    with pytest.raises(argen.LogitsError, match="overflow"):
        sampler.process(big, argen.ProcessJob(0, uncond=1, cfg_scale=10.0))


def test_unprocessed_row_and_bad_keys(sampler):
    with pytest.raises(argen.DistributionError, match="zero"):
        sampler.sample(1, argen.Key(0, 0, 1, 0))
    with pytest.raises(argen.InvalidArgumentError, match="token"):
        argen.Key(0, 0, 1, 0, argen.MAX_KEY_TOKEN)
    with pytest.raises(argen.InvalidArgumentError):
        argen.Key(0, 0, 1, 0).words(argen.WORDS_PER_KEY + 1)
    with pytest.raises(argen.InvalidArgumentError):
        argen.Key(0, 0, 1, 0).below(0)
    with pytest.raises(argen.LengthError, match="keys"):
        sampler.sample([0, 1], [argen.Key(0, 0, 1, 0)])


def test_bad_trees(sampler):
    sampler.process(logits(2), [argen.ProcessJob(0, 0), argen.ProcessJob(1, 1)])
    exact = argen.Criterion.exact()
    kw = dict(seed=0, stream=0, position=0)
    with pytest.raises(argen.InvalidArgumentError, match="parent"):
        sampler.verify_tree([1, 2], [argen.ROOT, 1], exact, **kw)
    with pytest.raises(argen.LengthError):
        sampler.verify_tree([1, 2], [argen.ROOT], exact, **kw)
    with pytest.raises(argen.InvalidArgumentError, match="token id 16"):
        sampler.verify_tree([V], [argen.ROOT], exact, **kw)
    with pytest.raises(argen.InvalidArgumentError, match="0..2"):
        sampler.verify_tree(np.array([-1]), [argen.ROOT], exact, **kw)
    with pytest.raises(argen.InvalidArgumentError, match="exceed"):
        sampler.verify_tree([1, 2], [argen.ROOT, 0], exact, **kw)  # 3 slots, 2 rows


def test_bad_criteria():
    with pytest.raises(argen.InvalidArgumentError, match="neighbour"):
        argen.Criterion.lantern(np.zeros((4, 2), dtype=np.uint32), 1, 0.1)
    table = np.array([[1], [0]], dtype=np.int32)
    with pytest.raises(argen.InvalidArgumentError, match="lantern_k"):
        argen.Criterion.lantern(table, 2, 0.1)
    with pytest.raises(argen.InvalidArgumentError, match="delta"):
        argen.Criterion.lantern(table, 1, 1.5)
    with pytest.raises(argen.DtypeError):
        argen.Criterion.grouped(np.zeros((4, 2), dtype=np.float64))
    with pytest.raises(argen.InvalidArgumentError, match="window"):
        argen.Criterion.grouped(np.zeros((4, 2), dtype=np.float32), window=0)
    assert argen.Criterion.lantern([[1], [0]], 1, 0.1).vocab == 2


def test_criterion_vocabulary_must_match_the_sampler():
    s = argen.Sampler(4, 3)
    s.process(np.zeros((3, 4), dtype=np.float32), [argen.ProcessJob(r, r) for r in range(3)])
    crit = argen.Criterion.lantern([[1], [0]], 1, 0.1)
    with pytest.raises(argen.LengthError, match="criterion"):
        s.verify_tree([1], [argen.ROOT], crit, seed=0, stream=0, position=0)


def test_sampler_sizes():
    with pytest.raises(argen.InvalidArgumentError, match="vocab"):
        argen.Sampler(0, 1)
    with pytest.raises(argen.InvalidArgumentError, match="rows"):
        argen.Sampler(4, 0)
    with pytest.raises(argen.CapacityError, match="limit"):
        argen.Sampler(1 << 20, 1 << 12)


def test_sample_argument_shapes(sampler):
    sampler.process(logits(), argen.ProcessJob(0))
    key = argen.Key(0, 0, 1, 0)
    assert isinstance(sampler.sample(0, key), int)
    assert sampler.sample([0, 0], [key, key]) == [sampler.sample(0, key)] * 2
    with pytest.raises(argen.ArgenTypeError, match="one argen.Key"):
        sampler.sample(0, [key])
    with pytest.raises(argen.ArgenTypeError, match="sequence of ints"):
        sampler.sample("0", key)
