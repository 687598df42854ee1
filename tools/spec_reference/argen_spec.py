"""Independent reference implementation of argen's determinism contract, version 1.

Written from docs/spec/determinism-v1.md alone (section numbers below refer to it), in plain Python
integers plus NumPy float32 scalars for the IEEE binary32 arithmetic. It is deliberately simple and
slow: it exists to show that the specification is complete, and to catch any drift between the
text, the known-answer vectors and argen's Rust implementation (tools/spec_reference/check.py).
"""

import struct

import numpy as np

F = np.float32
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------- helpers


def f32_from_bits(b):
    return np.array([b], dtype=np.uint32).view(np.float32)[0]


def f32_bits(x):
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def f64_from_bits(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def is_finite32(x):
    return bool(np.isfinite(x))


class SpecError(Exception):
    """A step's error: kind plus detail (index, parameter name or token)."""

    def __init__(self, kind, detail=None):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail

    def text(self):
        return "error=" + self.kind + ("" if self.detail is None else ":" + str(self.detail))


# ------------------------------------------------------------------ section 2: constants

SCHEME_VERSION = 1
KEY_TAG = b"argen-rng-v1"
SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
MAX_KEY_TOKEN = 1 << 24
WORDS_PER_KEY = 2048
SAMPLE, ACCEPT, RESIDUAL, DRAFT, PATH, JACOBI_INIT, CANDIDATE = 1, 2, 3, 4, 5, 6, 7
MAX_VOCAB = (1 << 24) - 1
WEIGHT_ONE = 1 << 40
LANES = 256

EXP_LOG2E = f32_from_bits(0x3FB8AA3B)
EXP_C1 = f32_from_bits(0x3F318000)
EXP_C2 = f32_from_bits(0xB95E8083)
EXP_P = [f32_from_bits(b) for b in (0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA, 0x3F000000)]
EXP_MAX_ARG = f32_from_bits(0x42B17217)
EXP_MIN_ARG = f32_from_bits(0xC2CFF1B4)
GELU_C = f32_from_bits(0x3F4C422A)
GELU_A = f32_from_bits(0x3D372713)

# --------------------------------------------------------------------- section 3: RNG v1


def _rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & M32


def chacha20_block(key, counter, nonce):
    """Section 3.1: sixteen output words."""
    x = list(SIGMA) + list(key) + [counter & M32, counter >> 32, nonce & M32, nonce >> 32]
    s = list(x)

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & M32
        s[d] = _rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & M32
        s[b] = _rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & M32
        s[d] = _rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & M32
        s[b] = _rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(1, 5, 9, 13)
        qr(2, 6, 10, 14)
        qr(3, 7, 11, 15)
        qr(0, 5, 10, 15)
        qr(1, 6, 11, 12)
        qr(2, 7, 8, 13)
        qr(3, 4, 9, 14)
    return [(a + b) & M32 for a, b in zip(s, x)]


def chacha_key(seed):
    """Section 3.2 step 1."""
    raw = struct.pack("<Q", seed) + KEY_TAG + bytes(12)
    return list(struct.unpack("<8I", raw))


class Stream:
    """The word stream of a key (sections 3.2-3.5)."""

    def __init__(self, seed, stream, purpose, position, token):
        if token >= MAX_KEY_TOKEN:
            raise SpecError("InvalidParameter", "key.token")
        self.key = chacha_key(seed)
        self.nonce = (purpose << 32) | stream
        self.base = (position << 32) | (token << 8)
        self.next_index = 0
        self.block = None

    def word(self):
        if self.next_index >= WORDS_PER_KEY:
            return None
        j = self.next_index % 8
        if j == 0:
            self.block = chacha20_block(self.key, self.base | (self.next_index // 8), self.nonce)
        self.next_index += 1
        return self.block[2 * j] | (self.block[2 * j + 1] << 32)

    def below(self, n):
        """Section 3.4."""
        if n == 0:
            raise SpecError("ZeroMass")
        if n == 1:
            return 0
        b = (n - 1).bit_length()
        mask = (1 << b) - 1
        cand = 0
        while True:
            lo = self.word()
            if lo is None:
                return cand % n
            v = lo
            if b > 64:
                hi = self.word()
                if hi is None:
                    return cand % n
                v = lo | (hi << 64)
            cand = v & mask
            if cand < n:
                return cand

    def unit(self):
        """Section 3.5."""
        w = self.word()
        if w is None:
            return 0.0
        return (w >> 11) * 2.0**-53


# ---------------------------------------------------------------- section 4: exp_f32


def _pow2_32(k):
    return f32_from_bits((k + 127) << 23)


def exp_f32(x):
    x = F(x)
    if np.isnan(x):
        return x
    if x > EXP_MAX_ARG:
        return F(np.inf)
    if x < EXP_MIN_ARG:
        return F(0.0)
    t = EXP_LOG2E * x
    kf = np.floor(t + F(0.5))
    r = (x - kf * EXP_C1) - kf * EXP_C2
    z = r * r
    p0, p1, p2, p3, p4, p5 = EXP_P
    poly = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5)
    p = ((poly * z) + r) + F(1.0)
    k = int(kf)
    if k > 127:
        return (p * _pow2_32(k - 1)) * F(2.0)
    if k < -126:
        return (p * _pow2_32(k + 64)) * _pow2_32(-64)
    return p * _pow2_32(k)


def silu(v):
    v = F(v)
    return v / (F(1.0) + exp_f32(-v))


def gelu_tanh(v):
    v = F(v)
    t = ((GELU_A * v) * v) * v
    u = GELU_C * (v + t)
    return v / (F(1.0) + exp_f32(F(-2.0) * u))


# ------------------------------------------------------------ section 10: lane tree


def lane_tree(terms):
    lanes = [0.0] * LANES
    for i, t in enumerate(terms):
        lanes[i % LANES] = lanes[i % LANES] + t
    h = LANES // 2
    while h >= 1:
        for j in range(h):
            lanes[j] = lanes[j] + lanes[j + h]
        h //= 2
    return lanes[0]


# ------------------------------------------------------------------ section 5: guidance

NEG_INF = F(-np.inf)


def _check_input(x, i):
    if np.isnan(x) or x == F(np.inf):
        raise SpecError("NonFiniteLogit", i)


def combine(mode, rows, param):
    """Section 5. rows: lists of float32; param: float32 or None. Returns a list of float32."""
    v = len(rows[0])
    if v == 0:
        raise SpecError("EmptyRow")
    for r in rows[1:]:
        if len(r) != v:
            raise SpecError("LengthMismatch")
    if mode != "plain" and not is_finite32(param):
        raise SpecError("InvalidParameter", "cfg_scale" if mode == "two" else "cfg_w")
    out = []
    if mode == "plain":
        for i in range(v):
            _check_input(rows[0][i], i)
            out.append(rows[0][i])
        return out
    if mode == "two":
        c, u = rows
        for i in range(v):
            _check_input(c[i], i)
            _check_input(u[i], i)
            if c[i] == NEG_INF or u[i] == NEG_INF:
                out.append(NEG_INF)
                continue
            o = u[i] + param * (c[i] - u[i])
            if not is_finite32(o):
                raise SpecError("Overflow", i)
            out.append(o)
        return out
    c, u, r = rows
    for i in range(v):
        _check_input(c[i], i)
        _check_input(u[i], i)
        _check_input(r[i], i)
    masked = [c[i] == NEG_INF or u[i] == NEG_INF or r[i] == NEG_INF for i in range(v)]
    d_o = [F(0.0) if masked[i] else c[i] - u[i] for i in range(v)]
    d_r = [F(0.0) if masked[i] else r[i] - u[i] for i in range(v)]
    dot = lane_tree([float(d_o[i]) * float(d_r[i]) for i in range(v)])
    norm = lane_tree([float(d_o[i]) * float(d_o[i]) for i in range(v)])
    rho = F(np.float64(dot) / np.float64(norm)) if norm > 0 else F(0.0)
    w = param
    w1 = w + F(1.0)
    for i in range(v):
        if masked[i]:
            out.append(NEG_INF)
            continue
        o = (u[i] + w1 * d_o[i]) + w * (d_r[i] - rho * d_o[i])
        if not is_finite32(o):
            raise SpecError("Overflow", i)
        out.append(o)
    return out


# ---------------------------------------------------------- section 6: logit processing


def rank_key(y, i):
    b = f32_bits(y)
    o = (~b & M32) if b & 0x80000000 else (b | 0x80000000)
    return (o << 32) | (M32 - i)


def process(mode, rows, param, T, top_k, top_p, min_p):
    """Section 6. Returns (Z, argmax, support, weights) or raises SpecError."""
    v = len(rows[0])
    if v == 0:
        raise SpecError("EmptyRow")
    for r in rows[1:]:
        if len(r) != v:
            raise SpecError("LengthMismatch")
    if mode != "plain" and not is_finite32(param):
        raise SpecError("InvalidParameter", "cfg_scale" if mode == "two" else "cfg_w")
    if v > MAX_VOCAB:
        raise SpecError("VocabTooLarge")
    if not (is_finite32(T) and T >= 0):
        raise SpecError("InvalidParameter", "temperature")
    if T > 0 and not is_finite32(F(1.0) / T):
        raise SpecError("InvalidParameter", "temperature")
    if top_k is not None and not (1 <= top_k <= v):
        raise SpecError("InvalidParameter", "top_k")
    if top_p is not None and not (top_p > 0 and top_p <= 1):
        raise SpecError("InvalidParameter", "top_p")
    if min_p is not None and not (min_p >= 0 and min_p <= 1):
        raise SpecError("InvalidParameter", "min_p")
    x = combine(mode, rows, param)
    scale = F(1.0) / T if T > 0 else F(1.0)
    y = [None] * v
    for i in range(v):
        if x[i] == NEG_INF:
            continue
        s = (x[i] * scale) + F(0.0)
        if not is_finite32(s):
            raise SpecError("Overflow", i)
        y[i] = s
    unmasked = [i for i in range(v) if y[i] is not None]
    if not unmasked:
        raise SpecError("AllMasked")
    ranked = sorted(unmasked, key=lambda i: rank_key(y[i], i), reverse=True)
    argmax = ranked[0]
    w = [0] * v
    if T == 0:
        w[argmax] = WEIGHT_ONE
        return WEIGHT_ONE, argmax, 1, w
    m = y[argmax]
    cand = ranked if top_k is None else ranked[:top_k]
    for i in cand:
        e = exp_f32(y[i] - m)
        w[i] = int(e * F(2.0**40))
    z0 = sum(w[i] for i in cand)
    drop = set()
    if top_p is not None and top_p < 1:
        P = max(1, int(float(top_p) * 2.0**32))
        s = 0
        for i in cand:
            if (s << 32) < P * z0:
                s += w[i]
            else:
                drop.add(i)
    if min_p is not None and min_p > 0:
        M = int(float(min_p) * 2.0**32)
        for i in cand:
            if (w[i] << 32) < M * WEIGHT_ONE:
                drop.add(i)
    for i in drop:
        w[i] = 0
    z = sum(w)
    support = sum(1 for a in w if a > 0)
    return z, argmax, support, w


# ------------------------------------------------------ section 7: distributions, draws


def locate(w, r):
    acc = 0
    for i, a in enumerate(w):
        acc += a
        if r < acc:
            return i
    raise SpecError("ZeroMass")


def check_dist(w):
    if not w:
        raise SpecError("EmptyRow")
    z = sum(w)
    if z >= 1 << 64:
        raise SpecError("InvalidParameter", "weights")
    if z == 0:
        raise SpecError("ZeroMass")
    return z


def sample(w, key):
    """Returns (r, token)."""
    z = check_dist(w)
    r = Stream(*key).below(z)
    return r, locate(w, r)


# ----------------------------------------------------------- section 8: acceptance


def residual(wp, zp, wq, zq):
    """Section 8.2; returns (shift, weights, total)."""
    n = [max(a * zq - b * zp, 0) for a, b in zip(wp, wq)]
    big_n = sum(n)
    if big_n == 0:
        raise SpecError("ZeroMass")
    s = max(0, big_n.bit_length() - 63)
    out = [a >> s for a in n]
    z = sum(out)
    if z == 0:
        raise SpecError("ZeroMass")
    return s, out, z


def lantern_borrow(w, x, table, k, budget, lam_fixed):
    cap = budget if lam_fixed is None else min(budget, lam_fixed * w[x])
    s, m = 0, 0
    for n in table[x][:k]:
        nxt = s + w[n]
        if (nxt << 32) > cap:
            break
        s, m = nxt, m + 1
    return m, s


def group(w, z, x, emb, dim, window, prob_tol, dist_tol):
    v = len(w)

    def rk(i):
        return (w[i] << 32) | (M32 - i)

    kx = rk(x)
    above = sorted((i for i in range(v) if rk(i) > kx), key=rk)[:window]
    below = sorted((i for i in range(v) if rk(i) < kx), key=rk, reverse=True)[:window]
    tol = int(float(prob_tol) * 2.0**32) * z
    g = [x]
    for t in above + below:
        d2 = 0.0
        for d in range(dim):
            delta = float(emb[t * dim + d]) - float(emb[x * dim + d])
            d2 = d2 + delta * delta
        if (abs(w[t] - w[x]) << 32) < tol and d2 < float(dist_tol):
            g.append(t)
    return g


def verify_node(criterion, p, q, siblings, key, lantern=None, grouped=None):
    """Section 8.1: returns (tests, outcome, final) as the fixture writes them; errors are raised
    as (SpecError, tests so far)."""
    seed, stream, pos = key
    tests = []
    try:
        if criterion == "coupled":
            _, s = sample(p, (seed, stream, SAMPLE, pos, 0))
            for i, x in enumerate(siblings):
                if x == s:
                    return tests, "accepted:%d" % i, "-"
            return tests, "rejected:%d" % s, "-"
        w = list(p)
        z = check_dist(w)
        sampled = q is not None
        if sampled:
            zq = check_dist(q)
        budget = 0
        lam_fixed = None
        if criterion == "lantern":
            table, k, delta, lam = lantern
            budget = int(float(delta) * 2.0**32) * z
            if lam is not None:
                lam_fixed = int((float(lam) - 1.0) * 2.0**32)
        rejected = False
        for i, x in enumerate(siblings):
            if criterion in ("lantern", "grouped") and rejected and sampled:
                raise SpecError("InvalidParameter", "siblings")
            borrowed = []
            b = 0
            if criterion == "lantern":
                m, b = lantern_borrow(w, x, table, k, budget, lam_fixed)
                borrowed = table[x][:m]
            elif criterion == "grouped":
                emb, dim, window, prob_tol, dist_tol = grouped
                g = group(w, z, x, emb, dim, window, prob_tol, dist_tol)
                borrowed = g[1:]
                b = sum(w[t] for t in borrowed)
            if not sampled:
                num, den = w[x] + b, z
            elif criterion == "grouped":
                pg = sum(w[t] for t in [x] + borrowed)
                qg = sum(q[t] for t in [x] + borrowed)
                if q[x] == 0:
                    raise SpecError("DraftZeroMass", x)
                num, den = pg * zq, qg * z
            else:
                if q[x] == 0:
                    raise SpecError("DraftZeroMass", x)
                num, den = (w[x] + b) * zq, q[x] * z
            u = Stream(seed, stream, ACCEPT, pos, i).below(den)
            ok = u < num
            tests.append("%d/%d/%d/%d" % (num, den, u, int(ok)))
            if ok:
                final = "%d:%s" % (z, hexlist(w)) if rejected else "-"
                return tests, "accepted:%d" % i, final
            if sampled:
                _, w, z = residual(w, z, q, zq)
            else:
                removed = w[x]
                w[x] = 0
                for t in borrowed:
                    removed += w[t]
                    w[t] = 0
                if criterion == "lantern":
                    budget -= b << 32
                z -= removed
                if z == 0:
                    raise SpecError("ZeroMass")
            rejected = True
        _, token = sample(w, (seed, stream, RESIDUAL, pos, 0))
        return tests, "rejected:%d" % token, "%d:%s" % (z, hexlist(w))
    except SpecError as e:
        e.tests = tests
        raise


def hexlist(v):
    return ",".join("%x" % a for a in v)


# --------------------------------------------------------------- section 11: traces


def crc32(data):
    c = 0xFFFFFFFF
    for byte in data:
        c ^= byte
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
    return c ^ 0xFFFFFFFF


def fnv64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def parse_trace(data):
    """Section 11: validates a trace and returns (header, records, footer) or raises ValueError."""
    if len(data) < 37 or data[:8] != b"ARGTRACE":
        raise ValueError("bad magic")
    version, reclen, scheme, cfg, seed, tokens, name_len = struct.unpack_from("<HHIQQIB", data, 8)
    if version not in (1, 2):
        raise ValueError("unsupported version")
    if reclen != 40:
        raise ValueError("bad record size")
    if not 1 <= name_len <= 64:
        raise ValueError("bad name length")
    name = data[37 : 37 + name_len].decode("utf-8")
    off = 37 + name_len
    records = []
    while off < len(data) and data[off] != 0xFF:
        kind, flags, reserved, seq, items, aux, answer, committed, adig, tdig = struct.unpack_from(
            "<BBHIIIIIQQ", data, off
        )
        if not 1 <= kind <= (6 if version == 1 else 7) or reserved != 0 or flags >> 3:
            raise ValueError("bad record")
        records.append((kind, flags, seq, items, aux, answer, committed, adig, tdig))
        off += 40
    if off + 192 > len(data) or data[off] != 0xFF or data[off + 1 : off + 4] != bytes(3):
        raise ValueError("bad footer")
    (count,) = struct.unpack_from("<I", data, off + 4)
    stats = struct.unpack_from("<11I", data, off + 8)
    hist = struct.unpack_from("<32I", data, off + 52)
    result_seq, m = struct.unpack_from("<II", data, off + 180)
    if count != len(records):
        raise ValueError("record count")
    final = list(struct.unpack_from("<%dI" % m, data, off + 188))
    end = off + 188 + 4 * m
    if end + 4 != len(data):
        raise ValueError("size")
    if len(data) != 37 + name_len + 40 * len(records) + 192 + 4 * m:
        raise ValueError("size formula")
    (crc,) = struct.unpack_from("<I", data, end)
    if crc != crc32(data[:end]):
        raise ValueError("checksum")
    header = dict(version=version, scheme=scheme, config=cfg, seed=seed, tokens=tokens, name=name)
    footer = dict(stats=stats, hist=hist, result_seq=result_seq, final=final)
    return header, records, footer
