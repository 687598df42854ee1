#!/usr/bin/env python3
"""Runs the independent Python reference (argen_spec.py) against every known-answer vector:
fixtures/rng_v1.txt, fixtures/spec_v1.txt and the golden traces fixtures/traces/*.argtrace.

Prints the number of vectors checked per kind and exits non-zero at the first mismatch (with the
line, the expected and the computed text). Usage: python3 tools/spec_reference/check.py [ROOT]
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import argen_spec as S  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
COUNTS = {}


def count(kind, n=1):
    COUNTS[kind] = COUNTS.get(kind, 0) + n


def fail(where, expected, got):
    print("MISMATCH %s\n  fixture:   %s\n  reference: %s" % (where, expected, got))
    sys.exit(1)


def expect(where, expected, got):
    if expected != got:
        fail(where, expected, got)


def fields(tokens):
    out = {}
    for t in tokens:
        if "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
    return out


def f32s(text):
    return [S.f32_from_bits(int(h, 16)) for h in text.split(",")] if text else []


def opt_f32(text):
    return None if text == "-" else S.f32_from_bits(int(text, 16))


def hexints(text):
    return [int(h, 16) for h in text.split(",")] if text and text != "-" else []


def bits(x):
    return "%08x" % S.f32_bits(x)


# ------------------------------------------------------------------------- rng_v1.txt


def check_rng_v1(path):
    rows = {}
    processed = {}
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        where = "%s:%d" % (os.path.basename(path), n)
        t = line.split(" ")
        if t[0] == "key":
            seed, stream, purpose, position, token = (int(x) for x in t[1:6])
            key = (seed, stream, purpose, position, token)
            st = S.Stream(*key)
            words = ["0x%016x" % st.word() for _ in range(4)]
            expect(where + " words", t[7:11], words)
            i = t.index("below") + 1
            while t[i] != "unit":
                nn, r = t[i].split(":")
                expect(where + " below(%s)" % nn, int(r), S.Stream(*key).below(int(nn)))
                count("rng key below(n)")
                i += 1
            u = S.Stream(*key).unit()
            expect(where + " unit", t[i + 1], "0x%016x" % np.array([u]).view(np.uint64)[0])
            count("rng key words")
            count("rng key unit")
        elif t[0] == "logits":
            rows[t[1]] = f32s(t[3])
            expect(where + " length", int(t[2]), len(rows[t[1]]))
        elif t[0] == "process":
            f = fields(t)
            cond = rows[f["cond"]]
            un = f["uncond"]
            mode, rws = ("plain", [cond]) if un == "-" else ("two", [cond, rows[un]])
            param = None if un == "-" else S.F(float(f["scale"]))
            if mode == "plain":
                param = None
            tk = None if f["top_k"] == "-" else int(f["top_k"])
            tp = None if f["top_p"] == "-" else S.F(float(f["top_p"]))
            mp = None if f["min_p"] == "-" else S.F(float(f["min_p"]))
            z, am, sup, w = S.process(mode, rws, param, S.F(float(f["T"])), tk, tp, mp)
            got = "total=%d argmax=%d support=%d weights=%s" % (z, am, sup, S.hexlist(w))
            expect(where, line.split(" -> ")[1], got)
            processed[t[1]] = w
            count("rng process")
        elif t[0] == "sample":
            f = fields(t)
            w = processed[t[1]]
            a, b = (int(x) for x in f["positions"].split(".."))  # inclusive range
            toks = [int(x) for x in f["tokens"].split(",")]
            expect(where + " count", len(toks), b - a + 1)
            for j, pos in enumerate(range(a, b + 1)):
                key = (int(f["seed"]), int(f["stream"]), int(f["purpose"]), pos, 0)
                expect(where + " position %d" % pos, toks[j], S.sample(w, key)[1])
                count("rng sample draws")
        else:
            fail(where, "a known line kind", t[0])


# ------------------------------------------------------------------------ spec_v1.txt


def guided(f, rows):
    mode = f["mode"]
    rws = [rows[r] for r in f["rows"].split(",")]
    return mode, rws, opt_f32(f["param"])


def check_spec_v1(path):
    rows, tables, embs = {}, {}, {}
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        where = "%s:%d" % (os.path.basename(path), n)
        lhs, _, rhs = line.partition(" -> ")
        t = lhs.split(" ")
        kind = t[0]
        f = fields(t)
        try:
            if kind == "chacha":
                key = hexints(f["key"])
                got = S.hexlist(S.chacha20_block(key, int(f["counter"], 16), int(f["nonce"], 16)))
            elif kind in ("exp", "silu", "gelu"):
                fn = {"exp": S.exp_f32, "silu": S.silu, "gelu": S.gelu_tanh}[kind]
                y = fn(S.f32_from_bits(int(t[1], 16)))
                got = "nan" if np.isnan(y) else bits(y)
            elif kind == "row":
                rows[t[1]] = f32s(t[3])
                expect(where, int(t[2]), len(rows[t[1]]))
                continue
            elif kind == "table":
                ids = hexints(f["ids"])
                k = int(f["k"])
                tables[t[1]] = [ids[i * k : (i + 1) * k] for i in range(int(f["V"]))]
                continue
            elif kind == "emb":
                embs[t[1]] = (f32s(f["values"]), int(f["dim"]))
                continue
            elif kind == "guide":
                mode, rws, param = guided(f, rows)
                got = "out=" + ",".join(bits(x) for x in S.combine(mode, rws, param))
            elif kind == "process":
                mode, rws, param = guided(f, rows)
                tk = None if f["top_k"] == "-" else int(f["top_k"])
                z, am, sup, w = S.process(
                    mode, rws, param, opt_f32(f["T"]), tk, opt_f32(f["top_p"]), opt_f32(f["min_p"])
                )
                got = "total=%d argmax=%d support=%d weights=%s" % (z, am, sup, S.hexlist(w))
            elif kind == "draw":
                w = hexints(f["weights"])
                key = tuple(int(x) for x in f["key"].split(","))
                r, tok = S.sample(w, key)
                got = "r=%d token=%d" % (r, tok)
            elif kind == "residual":
                p, q = hexints(f["p"]), hexints(f["q"])
                s, w, z = S.residual(p, sum(p), q, sum(q))
                got = "shift=%d total=%d weights=%s" % (s, z, S.hexlist(w))
            elif kind == "node":
                p = hexints(f["p"])
                q = None if f["draft"] == "point" else hexints(f["q"])
                sibs = [int(x) for x in f["siblings"].split(",")]
                key = tuple(int(x) for x in f["key"].split(","))
                lantern = grouped_p = None
                if f["criterion"] == "lantern":
                    lam = opt_f32(f["lambda"])
                    lantern = (tables[f["table"]], int(f["k"]), opt_f32(f["delta"]), lam)
                if f["criterion"] == "grouped":
                    emb, dim = embs[f["emb"]]
                    grouped_p = (
                        emb, dim, int(f["window"]), opt_f32(f["prob_tol"]), opt_f32(f["dist_tol"])
                    )
                try:
                    tests, outcome, final = S.verify_node(
                        f["criterion"], p, q, sibs, key, lantern, grouped_p
                    )
                    got = "tests=%s outcome=%s final=%s" % (";".join(tests) or "-", outcome, final)
                except S.SpecError as e:
                    got = "tests=%s %s" % (";".join(e.tests) or "-", e.text())
            else:
                fail(where, "a known line kind", kind)
        except S.SpecError as e:
            got = e.text()
        expect(where, rhs, got)
        count("spec " + kind)


# ---------------------------------------------------------------------------- traces


def check_traces(folder):
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".argtrace"):
            continue
        data = open(os.path.join(folder, name), "rb").read()
        try:
            header, records, footer = S.parse_trace(data)
        except ValueError as e:
            fail(name, "a valid trace", str(e))
        expect(name + " scheme", S.SCHEME_VERSION, header["scheme"])
        # The last record of the result sequence that committed every final token carries their
        # digest.
        final = footer["final"]
        digest = S.fnv64(b"".join(t.to_bytes(4, "little") for t in final))
        hits = [
            r
            for r in records
            if r[0] != 7 and r[2] == footer["result_seq"] and r[6] == len(final)
        ]
        if not hits:
            fail(name, "a record that committed the final tokens", "none")
        expect(name + " final-token digest", "%016x" % hits[-1][8], "%016x" % digest)
        # A corrupted byte must break the checksum.
        bad = bytearray(data)
        bad[len(bad) // 2] ^= 0x40
        try:
            S.parse_trace(bytes(bad))
            fail(name, "corruption detected", "accepted")
        except ValueError:
            pass
        count("trace files")
        count("trace records", len(records))


def main():
    check_rng_v1(os.path.join(ROOT, "fixtures", "rng_v1.txt"))
    check_spec_v1(os.path.join(ROOT, "fixtures", "spec_v1.txt"))
    check_traces(os.path.join(ROOT, "fixtures", "traces"))
    total = 0
    for k in sorted(COUNTS):
        print("%-24s %6d" % (k, COUNTS[k]))
        total += COUNTS[k]
    print("%-24s %6d  (all match)" % ("total", total))


if __name__ == "__main__":
    with np.errstate(all="ignore"):
        main()
