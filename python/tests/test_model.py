"""argen.Model: the high-level API equals the `argen` command, and its errors are typed."""

from __future__ import annotations

import json
import os
import pathlib
import struct
import subprocess
import zlib

import numpy as np
import pytest

import argen

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures" / "models" / "shapesworld"
PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def model():
    return argen.Model(MODEL, threads=1)


@pytest.fixture(scope="module")
def argen_bin():
    """The `argen` command of this checkout (built by `cargo build --release -p argen-cli`)."""
    path = pathlib.Path(os.environ.get("ARGEN_BIN", REPO / "target" / "release" / "argen"))
    if not path.is_file():
        pytest.skip(f"{path} not built (cargo build --release -p argen-cli)")
    return path


def read_png_rgb(path: pathlib.Path) -> np.ndarray:
    """Decodes an 8-bit RGB, non-interlaced PNG (what `argen generate` writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * 3
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        cur = np.frombuffer(line, dtype=np.uint8).astype(np.int32)
        rec = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = rec[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            rec[x] = (cur[x] + p) & 0xFF
        out[y], prev = rec, rec
    return out.astype(np.uint8).reshape(height, width, 3)


def cli(argen_bin, tmp_path, tag, *flags):
    out, toks = tmp_path / f"{tag}.png", tmp_path / f"{tag}.json"
    subprocess.run(
        [str(argen_bin), "generate", "--model", str(MODEL), "--quiet", "--threads", "1",
         "--out", str(out), "--tokens", str(toks), *flags],
        check=True, capture_output=True,
    )
    return np.array(json.loads(toks.read_text()), dtype=np.uint32), read_png_rgb(out)


@pytest.mark.parametrize(
    "method, options, flags",
    [
        ("vanilla", {}, []),
        ("sd", {}, []),
        ("sd", {"criterion": "coupled", "draft": "chain", "gamma": 3},
         ["--criterion", "coupled", "--draft", "chain", "--gamma", "3"]),
        ("lantern", {"delta": 0.3, "lantern_k": 50}, ["--delta", "0.3", "--lantern-k", "50"]),
        ("sjd", {"window": 8}, ["--window", "8"]),
        ("bon", {"n": 3, "inner": "sd"}, ["--n", "3", "--inner", "sd"]),
        ("gridar", {"n": 2, "top_k": 100}, ["--n", "2", "--top-k", "100"]),
    ],
)
def test_tokens_and_image_equal_the_cli(model, argen_bin, tmp_path, method, options, flags):
    g = model.generate(prompt=PROMPT, method=method, seed=11, **options)
    tokens, image = cli(argen_bin, tmp_path, method, "--prompt", PROMPT, "--method", method,
                        "--seed", "11", *flags)
    assert g.tokens.dtype == np.uint32 and g.tokens.shape == (model.tokens,)
    np.testing.assert_array_equal(g.tokens, tokens)
    assert g.image.dtype == np.uint8
    assert g.image.shape == (model.image_size, model.image_size, 3)
    np.testing.assert_array_equal(g.image, image)


def test_same_seed_same_image_on_any_thread_count(model):
    two = argen.Model(MODEL, threads=2)
    a = model.generate(prompt=PROMPT, method="sd", seed=5)
    b = two.generate(prompt=PROMPT, method="sd", seed=5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.image, b.image)
    c = model.generate(prompt=PROMPT, method="sd", seed=6)
    assert not np.array_equal(a.tokens, c.tokens)


def test_stats_record_the_run_and_config_round_trips(model):
    g = model.generate(prompt=PROMPT, method="sd", seed=2, criterion="coupled")
    s = g.stats
    assert s["seed"] == 2 and s["prompt"] == PROMPT and s["tokens"] == model.tokens
    assert s["image"] == {"width": model.image_size, "height": model.image_size}
    assert s["config"]["method"]["speculative"]["criterion"] == "coupled"
    assert s["tokens_per_target_forward"] > 1.0 and s["wall_seconds"] > 0
    assert isinstance(s["alignment"]["aligned"], bool)
    again = model.generate(prompt=PROMPT, config=s["config"], seed=2)
    np.testing.assert_array_equal(again.tokens, g.tokens)
    text = model.generate(prompt=PROMPT, config=json.dumps(s["config"]), seed=3)
    assert text.stats["seed"] == 3


def test_coupled_sd_reproduces_vanilla(model):
    v = model.generate(prompt=PROMPT, seed=9)
    c = model.generate(prompt=PROMPT, method="sd", seed=9, criterion="coupled")
    np.testing.assert_array_equal(v.tokens, c.tokens)


@pytest.mark.parametrize(
    "kwargs, exc, needle",
    [
        ({"method": "warp"}, argen.InvalidArgumentError, "unknown method"),
        ({"gama": 4}, argen.InvalidArgumentError, "gama"),
        ({"temperature": -1.0}, argen.InvalidArgumentError, "temperature"),
        ({"inner": "sd"}, argen.InvalidArgumentError, "inner"),
        ({"method": "gridar", "inner": "sjd"}, argen.InvalidArgumentError, "restart"),
        ({"class_id": 3}, argen.InvalidArgumentError, "not both"),
        ({"prompt": None}, argen.InvalidArgumentError, "prompt"),
        ({"prompt": "a purple elephant"}, argen.InvalidArgumentError, "elephant"),
        ({"prompt": 7}, argen.ArgenTypeError, "prompt"),
        ({"seed": -1}, argen.InvalidArgumentError, "seed"),
        ({"seed": 1.5}, argen.ArgenTypeError, "seed"),
        ({"method": 3}, argen.ArgenTypeError, "method"),
        ({"cfg": object()}, argen.ArgenTypeError, "JSON"),
        ({"cfg": float("nan")}, argen.ArgenTypeError, "JSON"),
        ({"config": 5}, argen.ArgenTypeError, "config"),
        ({"config": {"base": 1}}, argen.InvalidArgumentError, "decoder configuration"),
        ({"config": "{}", "gamma": 2}, argen.InvalidArgumentError, "not both"),
        ({"config": "{}", "method": "sd"}, argen.InvalidArgumentError, "not both"),
    ],
)
def test_bad_requests_raise_typed_errors(model, kwargs, exc, needle):
    args = {"prompt": PROMPT, **kwargs}
    if kwargs.get("prompt", "") is None:
        args["prompt"] = None
    with pytest.raises(exc) as info:
        model.generate(**args)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_error_classes_carry_the_c_status(model):
    with pytest.raises(ValueError) as info:  # InvalidArgumentError is a ValueError
        model.generate(class_id=3)
    assert info.value.status == "ARGEN_ERR_INVALID_ARGUMENT" and "class-conditional" in str(
        info.value
    )
    with pytest.raises(argen.ModelError) as info:
        argen.Model("/nonexistent/argen-model")
    assert isinstance(info.value, OSError)
    assert info.value.status == "ARGEN_ERR_MODEL" and "does not exist" in str(info.value)
    with pytest.raises(argen.InvalidArgumentError, match="threads"):
        argen.Model(MODEL, threads=100000)
    with pytest.raises(argen.ArgenTypeError):
        argen.Model(MODEL, threads="2")
    with pytest.raises(argen.ArgenTypeError):
        argen.Model(42)


def test_missing_drafter_is_a_model_error(tmp_path):
    for f in ("gpt.json", "gpt.safetensors", "vq.json", "vq.safetensors"):
        (tmp_path / f).symlink_to(MODEL / f)
    m = argen.Model(tmp_path, threads=1)
    assert m.generate(prompt=PROMPT, seed=1).tokens.shape == (m.tokens,)
    with pytest.raises(argen.ModelError, match="drafter"):
        m.generate(prompt=PROMPT, method="sd", seed=1)
    # The model stays usable after the error.
    assert m.generate(prompt=PROMPT, seed=1).tokens.shape == (m.tokens,)
