"""argen.Decoder: every method through poll/handle, driven by a toy model in Python, gives the
core's tokens and forward counts (fixtures/ffi_decoder_v1.txt, computed by argen-core with the
same toy model in crates/argen-ffi/tests/decoder.rs); requirements; zero-copy logits; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import argen
from conftest import FIXTURES

V = 32
DIM = 3
ROOT = argen.ROOT


def tables():
    i = np.arange(V * DIM)
    codebook = ((i * 37 % 101).astype(np.float32) / np.float32(50.0)) - np.float32(1.0)
    embedding = ((i * 53 % 97).astype(np.float32) / np.float32(40.0)) - np.float32(1.2)
    return codebook.reshape(V, DIM), embedding.reshape(V, DIM)


def toy_row(drafter: bool, variant: int, length: int, last: int) -> np.ndarray:
    centre = np.float32((last * 7 + length * 3 + variant * 5) % V)
    width = np.float32(6.0 if drafter else 4.0)
    d = (np.arange(V, dtype=np.float32) - centre) / width
    return -(d * d)


def chain_len(nodes, parent):
    n = 0
    while parent != ROOT:
        n += 1
        parent = nodes[parent][1]
    return n


class ToyHost:
    """KV bookkeeping by lengths and pending (token, parent) lists, as the C and Rust hosts."""

    def __init__(self):
        self.seqs = {}
        self.forwards = 0

    def seq(self, s):
        return self.seqs.setdefault(
            s, {"target": 0, "pending": [], "drafter": 0, "entries": []}
        )

    def forward(self, action: argen.Action) -> np.ndarray:
        self.forwards += 1
        rows = []
        for g in action.groups:
            s = self.seq(g.seq)
            ctxs = []
            if g.kind == "prefill":
                self.seqs[g.seq] = s = {
                    "target": len(g.tokens), "pending": [], "drafter": 0, "entries": []
                }
                ctxs.append((len(g.tokens), int(g.tokens[-1]) if len(g.tokens) else 0))
            elif g.kind == "target":
                s["target"] += len(g.keep)
                s["pending"] = []
                for inp in g.inputs:
                    t, p = int(inp["token"]), int(inp["parent"])
                    ctxs.append((s["target"] + chain_len(s["pending"], p) + 1, t))
                    s["pending"].append((t, p))
            else:
                assert g.kind == "draft"
                if g.new_step:
                    s["entries"] = []
                for k, inp in enumerate(g.inputs):
                    t, p = int(inp["token"]), int(inp["parent"])
                    if k < g.commit:
                        s["drafter"] += 1
                        ctxs.append((s["drafter"], t))
                        s["entries"].append((t, ROOT))
                    else:
                        ctxs.append((s["drafter"] + chain_len(s["entries"], p) + 1, t))
                        s["entries"].append((t, p))
            start = len(rows)
            assert g.first_row == start
            for length, last in ctxs:
                for v in range(g.variants):
                    rows.append(toy_row(g.kind == "draft", v, length, last))
            assert len(rows) - start == g.rows
        assert len(rows) == action.logits_rows
        return np.stack(rows)


def score(tokens):
    return float(sum(int(t) * 31 % 17 for t in tokens))


def verdict(seq, tokens):
    return (seq + int(np.sum(tokens, dtype=np.uint64))) % 3 != 0


def run(config, dtype=np.float32):
    codebook, embedding = tables()
    dec = argen.Decoder(
        config, V, neighbour_codebook=codebook, embedding=embedding, codebook=codebook
    )
    host = ToyHost()
    kinds = set()
    while True:
        a = dec.poll()
        kinds.add(a.kind)
        if a.kind == "done":
            break
        if a.is_forward:
            dec.handle_logits(host.forward(a).astype(dtype))
        elif a.kind == "check":
            dec.handle_verdict(verdict(a.seq, a.canvas))
        elif a.kind == "score":
            dec.handle_score(score(a.canvas))
        elif a.kind == "reformulate":
            dec.handle_reformulated()
        else:
            raise AssertionError(a.kind)
    return dec, host, kinds


def fixture():
    out = []
    for line in (FIXTURES / "ffi_decoder_v1.txt").read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        name, js, toks, tf, df, hf = line.split("\t")
        out.append((name, js, [int(t) for t in toks.split()], int(tf), int(df), int(hf)))
    return out


CASES = fixture()


def test_fixture_covers_every_method():
    names = {c[0] for c in CASES}
    for want in ["vanilla", "sd chain exact", "sd tree coupled", "sd tree lantern",
                 "sd tree grouped", "vvs dynamic", "jacobi", "best-of-3 sd", "gridar"]:
        assert want in names


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_method_equals_the_core(case):
    name, js, tokens, tf, df, hf = case
    dec, host, kinds = run(json.loads(js))
    assert dec.tokens().tolist() == tokens
    st = dec.stats()
    assert (st["target_forwards"], st["draft_forwards"], host.forwards) == (tf, df, hf)
    assert st["tokens"] >= len(tokens)
    if name == "gridar":
        assert {"check", "score", "reformulate", "batch"} <= kinds
    if name.startswith("sd") or name.startswith("vvs"):
        assert "draft" in kinds


def test_requirements_before_and_after_building():
    for name, js, *_ in CASES:
        cfg = json.loads(js)
        req = argen.config_requirements(cfg)
        codebook, embedding = tables()
        dec = argen.Decoder(cfg, V, neighbour_codebook=codebook, embedding=embedding,
                            codebook=codebook)
        assert dec.requirements() == req, name
        assert len(dec.sequences()) == req["sequences"]
    lantern = json.loads([c for c in CASES if c[0] == "sd tree lantern"][0][1])
    assert argen.config_requirements(lantern)["neighbours"] == (4, "normalised")


def test_neighbour_ids_equal_building_them_from_the_codebook():
    case = [c for c in CASES if c[0] == "sd tree lantern"][0]
    cfg = json.loads(case[1].replace('"normalised"', '"raw"'))
    codebook, _ = tables()
    ids = np.array(argen.neighbour_table(codebook, 4), dtype=np.uint32)  # raw L2 ranking
    given = argen.Decoder(cfg, V, neighbours=ids)
    built = argen.Decoder(cfg, V, neighbour_codebook=codebook)
    for dec in (given, built):
        host = ToyHost()
        while (a := dec.poll()).kind != "done":
            dec.handle_logits(host.forward(a))
    assert given.tokens().tolist() == built.tokens().tolist()
    assert given.stats() == built.stats()


def test_logits_are_read_in_place():
    cfg = json.loads(CASES[0][1])
    dec = argen.Decoder(cfg, V)
    host = ToyHost()
    rows = host.forward(dec.poll())
    dec.handle_logits(rows)
    assert dec.last_logits_address == rows.__array_interface__["data"][0]
    # a flat float16 view at an offset into a larger buffer is read in place too
    rows16 = host.forward(dec.poll()).astype(np.float16)
    buf = np.zeros(rows16.size + 8, dtype=np.float16)
    buf[8:] = rows16.ravel()
    dec.handle_logits(buf[8:])
    assert dec.last_logits_address == buf.ctypes.data + 16
    assert len(dec.tokens()) == 2


def test_half_precision_answers_run_to_the_end():
    cfg = json.loads(CASES[0][1])
    for dtype in (np.float16,):
        dec, _, _ = run(cfg, dtype)
        assert len(dec.tokens()) == 16


def test_torch_tensors_are_read_in_place():
    torch = pytest.importorskip("torch", reason="torch is not installed (or does not import)")
    cfg = json.loads(CASES[0][1])
    dec = argen.Decoder(cfg, V)
    t = torch.from_numpy(ToyHost().forward(dec.poll()))
    dec.handle_logits(t)
    assert dec.last_logits_address == t.data_ptr()


def test_action_arrays():
    case = [c for c in CASES if c[0] == "sd tree exact"][0]
    dec = argen.Decoder(json.loads(case[1]), V)
    host = ToyHost()
    seen_draft = False
    while (a := dec.poll()).kind != "done":
        for g in a.groups:
            assert g.tokens.dtype == np.uint32 and g.keep.dtype == np.uint32
            assert g.inputs.dtype == argen.decoder.INPUT_DTYPE
            assert not g.inputs.flags.writeable
            if g.kind == "draft":
                seen_draft = True
                assert set(g.inputs["feature_kind"]) <= {1, 2, 3, 4}
            if g.kind == "target":
                assert all(p == ROOT or p < i for i, p in enumerate(g.inputs["parent"]))
        dec.handle_logits(host.forward(a))
    assert seen_draft


def test_errors():
    cfg = json.loads(CASES[0][1])
    dec = argen.Decoder(cfg, V)
    a = dec.poll()
    assert a.kind == "prefill" and a.logits_rows == 2
    with pytest.raises(argen.ProtocolError, match="verdict"):
        dec.handle_verdict(True)
    with pytest.raises(argen.ProtocolError):
        dec.handle_score(1.0)
    with pytest.raises(argen.ProtocolError):
        dec.handle_reformulated()
    with pytest.raises(argen.InvalidArgumentError):
        dec.handle_score(float("nan"))
    with pytest.raises(argen.LengthError, match="2 logits rows"):
        dec.handle_logits(np.zeros((3, V), np.float32))
    with pytest.raises(argen.LengthError):
        dec.handle_logits(np.zeros((2, V + 1), np.float32))
    with pytest.raises(argen.DtypeError):
        dec.handle_logits(np.zeros((2, V), np.int32))
    with pytest.raises(argen.LayoutError):
        dec.handle_logits(np.zeros((V, 2), np.float32).T)
    with pytest.raises(argen.LogitsError):
        dec.handle_logits(np.full((2, V), np.nan, np.float32))
    with pytest.raises(argen.ArgenTypeError):
        dec.handle_logits("not an array")
    with pytest.raises(argen.ArgenTypeError):
        dec.handle_verdict("yes")
    b = dec.poll()  # nothing changed
    assert (b.kind, b.logits_rows, b.groups[0].seq) == ("prefill", 2, 0)
    with pytest.raises(argen.InvalidArgumentError, match="DecoderConfig"):
        argen.Decoder({"base": 1}, V)
    with pytest.raises(argen.ArgenTypeError):
        argen.Decoder(42, V)
    with pytest.raises(argen.InvalidArgumentError, match="vocab"):
        argen.Decoder(cfg, 1)
    lantern = json.loads([c for c in CASES if c[0] == "sd tree lantern"][0][1])
    with pytest.raises(argen.InvalidArgumentError, match="neighbour"):
        argen.Decoder(lantern, V)
    with pytest.raises(argen.LengthError):
        argen.Decoder(lantern, V, neighbour_codebook=np.zeros((V - 1, DIM), np.float32))
    grouped = json.loads([c for c in CASES if c[0] == "sd tree grouped"][0][1])
    with pytest.raises(argen.InvalidArgumentError, match="embedding"):
        argen.Decoder(grouped, V)
    # the decoder finishes after the bad answers
    host = ToyHost()
    while (a := dec.poll()).kind != "done":
        dec.handle_logits(host.forward(a))
    assert dec.tokens().tolist() == CASES[0][2]
    with pytest.raises(argen.ProtocolError):
        dec.handle_logits(np.zeros((1, V), np.float32))
