"""A PyTorch host for argen's decoders: LlamaGen (tools/llamagen.py) runs in torch, argen decides.

argen's decoders are sans-IO state machines (``argen.Decoder``): they never run a model, they
say which forward to run next. This host runs those forwards with the PyTorch LlamaGen model of
``tools/llamagen.py`` — the target GPT and the EAGLE drafter of an argen model directory — and
hands the logits back. Every method works through the same loop (vanilla, speculative decoding
with chain or tree drafts, LANTERN, VVS, GridAR, Best-of-N):

    model = argen.Model(model_dir)                      # configs, tables, ShapesWorld's judge
    host = TorchHost(model_dir)                         # the PyTorch models
    dec = argen.Decoder(model.decoder_config(prompt=p, method="sd", seed=7), vocab, ...)
    tokens = host.run(dec, model.condition(prompt=p), judge=model.judge(p))

What the host does (the contract: ``argen_core::decode::protocol``, python/argen/decoder.py):

* **KV caches.** One cache per (model, sequence, guidance variant): slot ``seq·3 + variant``,
  variants cond, uncond, reformulated. A slot holds *committed* entries, then the *pending*
  entries of the current run with their parents. A target group's ``keep`` list commits the
  listed pending entries of the previous run — compacted after the committed prefix, in the
  listed order — and drops the rest; a drafter group with ``new_step`` drops the drafter's
  pending entries, and its first ``commit`` inputs (a catch-up chain) are committed.
* **Tree attention.** An input attends to the committed prefix (from the caption's left padding
  on), to its ancestors by ``parent`` among the pending entries, and to itself; a chain is the
  case ``parent = i - 1``. The mask is built per row from the parents; the new K/V land in the
  cache at the slot's next positions. RoPE uses the input's raster index (``cls_token_num +
  index`` in LlamaGen's 2D table), never the cache position, so compaction moves K/V unchanged.
* **Batches.** Every group of an action — several sequences (GridAR / Best-of-N candidates) and
  their guidance variants — runs in **one** forward: one batch row per (group, variant), inputs
  padded to the longest, each row's cache gathered in front of a shared write window.
* **CFG.** A group with ``variants`` v answers ``inputs × v`` rows, input-major, variants
  innermost (cond, uncond, reformulated). The unconditional input is the null caption (the
  checkpoint's ``uncond_embedding``) or the null class; the reformulated one comes from the
  judge's ``reformulate``.
* **EAGLE features.** Per sequence and variant the host keeps the target's last hidden state
  (after the final norm) at the last condition position (``condition``), at every committed
  input by raster index (``target``), at each input of the last target run (``last_target``),
  and the drafter's own output states of the current drafting step (``draft``).
* **Judges** (GridAR's checks and reformulations, Best-of-N's scores): ShapesWorld's judge from
  ``argen.Model.judge``.

Replay mode (``run(..., replay=answers)``): the host answers each forward with rows recorded
from argen's own Rust runtime (``argen.Model.generate_recorded``), *after* running its own
forward on the inputs it derived from the action, and records how far its logits are from the
recorded ones (``host.max_diff``). The tokens must then be exactly argen's — this checks the
host's action handling bit for bit — and the logits distance shows that the torch forward
(cache, mask, positions, features) is the same computation.

Run it::

    python examples/python/torch_host.py --prompt "a red circle above a blue square" \\
        --method sd --seed 7 [--draft chain] [--check]

``--check`` also generates the image with argen's Rust runtime and compares tokens, TPF and MAL.
CPU by default; CUDA when ``torch.cuda.is_available()`` (or ``--device``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import llamagen as L  # noqa: E402

import argen  # noqa: E402

#: Guidance variants a sequence can have (cond, uncond, reformulated).
VARIANTS = 3


class HostError(RuntimeError):
    """The host cannot carry out an action (a protocol violation, a missing model)."""


def load_models(model_dir: str, device: torch.device):
    """The target ``Transformer`` and (if the directory has one) the EAGLE ``Drafter`` of an argen
    model directory (``gpt.json``, ``gpt.safetensors``, ``drafter.safetensors``), in eval mode."""
    from safetensors.torch import load_file

    with open(os.path.join(model_dir, "gpt.json")) as f:
        cfg = L.gpt_config_from_json(json.load(f))
    target = L.Transformer(cfg)
    sd = {k: v.float() for k, v in load_file(os.path.join(model_dir, "gpt.safetensors")).items()}
    target.load_state_dict(sd, strict=True)
    target = target.to(device).eval()
    target.freqs_cis = target.freqs_cis.to(device)
    drafter = None
    path = os.path.join(model_dir, "drafter.safetensors")
    if os.path.exists(path):
        dsd = {k: v.float() for k, v in load_file(path).items()}
        drafter = L.Drafter(cfg, fc_bias="fc.bias" in dsd)
        drafter.load_state_dict(dsd, strict=True)
        drafter = drafter.to(device).eval()
    return cfg, target, drafter


class Slot:
    """One KV cache: per layer K and V ``(kv_heads, capacity, head_dim)``; ``committed`` entries,
    then pending ones with their ``parents`` (pending index or -1 for the committed prefix)."""

    __slots__ = ("k", "v", "committed", "start", "parents")

    def __init__(self, layers: int, kv_heads: int, cap: int, head_dim: int, device):
        self.k = [torch.zeros(kv_heads, cap, head_dim, device=device) for _ in range(layers)]
        self.v = [torch.zeros(kv_heads, cap, head_dim, device=device) for _ in range(layers)]
        self.committed = 0
        self.start = 0
        self.parents: List[int] = []

    def __len__(self) -> int:
        return self.committed + len(self.parents)

    def reset(self, start: int = 0) -> None:
        self.committed, self.start, self.parents = 0, start, []

    def rollback(self) -> None:
        self.parents = []

    def keep(self, keep: Sequence[int]) -> None:
        """Commits the pending entries ``keep`` (in this order) after the prefix, drops the rest."""
        n = len(self.parents)
        if any(k >= n for k in keep) or len(set(keep)) != len(keep):
            raise HostError(f"keep {list(keep)} does not name distinct pending entries of {n}")
        if keep:
            c = self.committed
            src = torch.as_tensor([c + k for k in keep], device=self.k[0].device)
            for t in self.k + self.v:
                t[:, c : c + len(keep)] = t[:, src]
            self.committed += len(keep)
        self.parents = []


class Features:
    """The EAGLE features of one sequence, per guidance variant (``FeatureRef`` in the protocol)."""

    def __init__(self):
        self.condition: Dict[int, torch.Tensor] = {}
        self.committed: List[Dict[int, torch.Tensor]] = [{} for _ in range(VARIANTS)]
        self.last: List[List[torch.Tensor]] = [[] for _ in range(VARIANTS)]
        self.last_indices: List[int] = []
        self.entries: List[List[torch.Tensor]] = [[] for _ in range(VARIANTS)]
        self.step_committed = 0

    def keep(self, keep: Sequence[int]) -> None:
        for v in range(VARIANTS):
            if self.last[v]:
                for k in keep:
                    self.committed[v][self.last_indices[k]] = self.last[v][k]
            self.last[v] = []
        self.last_indices = []

    def resolve(self, kind: int, index: int, v: int) -> torch.Tensor:
        try:
            if kind == 1:
                return self.condition[v]
            if kind == 2:
                return self.committed[v][index]
            if kind == 3:
                return self.last[v][index]
            if kind == 4:
                return self.entries[v][index]
        except (KeyError, IndexError):
            pass
        name = argen.decoder.FEATURES[kind] if kind < len(argen.decoder.FEATURES) else kind
        raise HostError(f"feature {name}({index}) of variant {v} does not exist")


class TorchHost:
    """Runs argen's actions with the PyTorch LlamaGen target and drafter of ``model_dir``.

    ``device``: ``"cpu"``, ``"cuda"``, or ``None`` (CUDA when torch sees a GPU). The models run
    in float32 (the checkpoints' dtype).
    """

    def __init__(self, model_dir: str, device: Optional[str] = None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.cfg, self.target, self.drafter = load_models(model_dir, self.device)
        cfg = self.cfg
        self.T = cfg.cls_token_num
        self.grid = self.target.grid_size
        self.vocab = cfg.vocab_size
        self.dim = cfg.dim
        self.slots: Dict[tuple, Slot] = {}
        self.max_diff = 0.0
        self.forwards = {"target": 0, "drafter": 0}

    # -- per-run state ------------------------------------------------------------------------
    def _begin(self, decoder: "argen.Decoder", condition: Dict[str, Any]) -> None:
        req = decoder.requirements()
        self.cap = self.T + self.cfg.block_size + max(int(req["pending"]), 1) + 1
        self.slots = {}
        self.max_diff = 0.0
        self.forwards = {"target": 0, "drafter": 0}
        if condition["kind"] == "caption":
            f = torch.as_tensor(np.array(condition["features"], dtype=np.float32))
            cond = (f.to(self.device), int(condition.get("pad", 0)))
            null = (self.target.cls_embedding.uncond_embedding, cond[1])
        else:
            cond = (int(condition["class_id"]), 0)
            null = (self.cfg.num_classes, 0)
        self.conds = {s: [cond, null, None] for s in decoder.sequences()}
        self.feats = {s: Features() for s in decoder.sequences()}

    def _slot(self, model: str, seq: int, var: int) -> Slot:
        key = (model, seq, var)
        s = self.slots.get(key)
        if s is None:
            m = self.target if model == "target" else self.drafter
            c = self.cfg
            s = Slot(len(m.layers), c.kv_heads, self.cap, c.head_dim, self.device)
            self.slots[key] = s
        return s

    def _condition(self, seq: int, var: int):
        c = self.conds[seq][var]
        if c is None:
            raise HostError(f"sequence {seq} has no reformulated prompt (three-way CFG needs one)")
        return c

    # -- the forward over cached slots --------------------------------------------------------
    def _forward(self, model: str, rows: List[tuple]):
        """One batched forward. ``rows``: per batch row ``(slot, embeddings (n, dim), freqs
        (n, hd/2, 2), parents (n,), features (n, dim) or None)``; parents index the slot's
        pending entries (-1: the committed prefix). Returns ``(logits, hidden)``, each a list of
        ``(n, ·)`` tensors, and leaves the inputs pending in their slots."""
        m = self.target if model == "target" else self.drafter
        dev, B = self.device, len(rows)
        S = max(len(r[3]) for r in rows)
        P = max(len(r[0]) for r in rows)
        Lk = P + S
        c = self.cfg
        h = torch.zeros(B, S, c.dim, device=dev)
        freqs = torch.zeros(B, S, c.head_dim // 2, 2, device=dev)
        feats = torch.zeros(B, S, c.dim, device=dev) if model == "drafter" else None
        mask = torch.zeros(B, 1, S, Lk, dtype=torch.bool, device=dev)
        for b, (slot, emb, fr, parents, feat) in enumerate(rows):
            n = len(parents)
            h[b, :n] = emb
            freqs[b, :n] = fr
            if feat is not None:
                feats[b, :n] = feat
            old = len(slot.parents)
            allp = slot.parents + list(parents)
            # Key position of pending entry a: in the slot (a < old), or in the write window.
            mask[b, 0, :n, slot.start : slot.committed] = True
            for j in range(n):
                a = old + j
                while a >= 0:
                    # Entries left of the caption's padding start are masked (but a row sees
                    # itself).
                    if slot.committed + a >= slot.start or a == old + j:
                        pos = slot.committed + a if a < old else P + (a - old)
                        mask[b, 0, j, pos] = True
                    a = allp[a]
                    if a >= old + j:
                        raise HostError("a parent must come before its child")
            for j in range(n, S):  # padding rows see themselves only
                mask[b, 0, j, P + j] = True
        input_pos = torch.arange(P, Lk, device=dev)
        for li, layer in enumerate(m.layers):
            kc = torch.zeros(B, c.kv_heads, Lk, c.head_dim, device=dev)
            vc = torch.zeros_like(kc)
            for b, r in enumerate(rows):
                n0 = len(r[0])
                kc[b, :, :n0] = r[0].k[li][:, :n0]
                vc[b, :, :n0] = r[0].v[li][:, :n0]
            layer.attention.k_cache, layer.attention.v_cache = kc, vc
        with torch.no_grad():
            if model == "target":
                logits, hidden = m.forward_embeddings(h, freqs, mask, input_pos, return_hidden=True)
            else:
                hidden = m(h, feats, freqs, mask, input_pos)
                logits = self.target.output(hidden).float()
        outs_l, outs_h = [], []
        for b, (slot, _, _, parents, _) in enumerate(rows):
            n, n0 = len(parents), len(slot)
            for li, layer in enumerate(m.layers):
                slot.k[li][:, n0 : n0 + n] = layer.attention.k_cache[b, :, P : P + n]
                slot.v[li][:, n0 : n0 + n] = layer.attention.v_cache[b, :, P : P + n]
            slot.parents.extend(int(p) for p in parents)
            outs_l.append(logits[b, :n])
            outs_h.append(hidden[b, :n])
        for layer in m.layers:
            layer.attention.k_cache = layer.attention.v_cache = None
        return outs_l, outs_h

    def _image_freqs(self, indices) -> torch.Tensor:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)
        return self.target.freqs_cis[self.T + idx]

    # -- actions ------------------------------------------------------------------------------
    def _prefill(self, g, out: torch.Tensor) -> None:
        """Resets ``g.seq`` and runs its condition (+ the anchor ``tokens``), all committed."""
        T, t = self.T, self.target
        anchors = torch.as_tensor(g.tokens.astype(np.int64), device=self.device)
        n = len(anchors)
        rows = []
        for v in range(g.variants):
            cond, pad = self._condition(g.seq, v)
            with torch.no_grad():
                if isinstance(cond, int):
                    e = t.cond_embeddings(torch.tensor([cond], device=self.device))[0]
                else:
                    e = t.cond_embeddings(cond[None])[0]
            slot = self._slot("target", g.seq, v)
            slot.reset(start=pad)
            if self.drafter is not None:
                self._slot("drafter", g.seq, v).reset()
            emb = torch.cat([e, t.tok_embeddings(anchors)]) if n else e
            freqs = t.freqs_cis[: T + n]
            parents = list(range(-1, T + n - 1))
            rows.append((slot, emb, freqs, parents, None))
        with torch.no_grad():
            logits, hidden = self._forward("target", rows)
        f = Features()
        for v in range(g.variants):
            slot = rows[v][0]
            slot.keep(list(range(T + n)))
            out[g.first_row + v] = logits[v][-1]
            f.condition[v] = hidden[v][T - 1]
            for i in range(n):
                f.committed[v][i] = hidden[v][T + i]
        self.feats[g.seq] = f

    def _target(self, groups, out: torch.Tensor) -> None:
        """Applies each group's keep, then runs every group (and variant) in one forward."""
        rows, meta = [], []
        for g in groups:
            keep = [int(k) for k in g.keep]
            for v in range(VARIANTS):
                s = self.slots.get(("target", g.seq, v))
                if s is not None and s.parents:
                    s.keep(keep)
            self.feats[g.seq].keep(keep)
            inp = g.inputs
            tok = torch.as_tensor(inp["token"].astype(np.int64), device=self.device)
            with torch.no_grad():
                emb = self.target.tok_embeddings(tok)
            freqs = self._image_freqs(inp["index"])
            parents = [-1 if p == argen.ROOT else int(p) for p in inp["parent"]]
            for v in range(g.variants):
                self._condition(g.seq, v)
                rows.append((self._slot("target", g.seq, v), emb, freqs, parents, None))
                meta.append((g, v))
        logits, hidden = self._forward("target", rows)
        for (g, v), lg, hd in zip(meta, logits, hidden):
            out[g.first_row + v : g.first_row + g.rows : g.variants] = lg
            f = self.feats[g.seq]
            f.last[v] = list(hd)
            f.last_indices = [int(i) for i in g.inputs["index"]]

    def _draft(self, groups, out: torch.Tensor) -> None:
        """Per group: the committed catch-up chain (first ``commit`` inputs), then the pending
        inputs; each part of every group in one drafter forward."""
        if self.drafter is None:
            raise HostError("this method drafts, but the model directory has no drafter")
        plan = []
        for g in groups:
            f = self.feats[g.seq]
            if g.new_step:
                for v in range(VARIANTS):
                    s = self.slots.get(("drafter", g.seq, v))
                    if s is not None:
                        s.rollback()
                f.entries = [[] for _ in range(VARIANTS)]
                f.step_committed = 0
            if g.commit > len(g.inputs):
                raise HostError("more committed inputs than inputs")
            plan.append((g, f, len(f.entries[0])))
        for catch_up in (True, False):
            rows, meta = [], []
            for g, f, first in plan:
                lo, hi = (0, g.commit) if catch_up else (g.commit, len(g.inputs))
                if lo == hi:
                    continue
                inp = g.inputs[lo:hi]
                if catch_up:
                    parents = list(range(-1, hi - lo - 1))
                else:
                    parents = []
                    for j, p in enumerate(inp["parent"]):
                        if p == argen.ROOT:
                            parents.append(-1)
                        elif not f.step_committed <= p < first + lo + j:
                            raise HostError("draft parent is not a pending entry of this step")
                        else:
                            parents.append(int(p) - f.step_committed)
                tok = torch.as_tensor(inp["token"].astype(np.int64), device=self.device)
                with torch.no_grad():
                    emb = self.target.tok_embeddings(tok)
                freqs = self._image_freqs(inp["index"])
                for v in range(g.variants):
                    self._condition(g.seq, v)
                    feat = torch.stack(
                        [f.resolve(int(k), int(i), v) for k, i in zip(inp["feature_kind"], inp["feature_index"])]
                    )
                    rows.append((self._slot("drafter", g.seq, v), emb, freqs, parents, feat))
                    meta.append((g, f, v, lo, hi))
            if not rows:
                continue
            logits, hidden = self._forward("drafter", rows)
            for (g, f, v, lo, hi), lg, hd in zip(meta, logits, hidden):
                a = g.first_row + lo * g.variants + v
                out[a : g.first_row + hi * g.variants : g.variants] = lg
                f.entries[v].extend(hd)
                if catch_up:
                    s = self._slot("drafter", g.seq, v)
                    if len(s.parents) != hi - lo:
                        raise HostError("a catch-up chain must start a drafting step")
                    s.keep(list(range(hi - lo)))
            if catch_up:
                for g, f, _ in plan:
                    f.step_committed += g.commit

    def forward(self, action) -> torch.Tensor:
        """The logits ``(action.logits_rows, vocab)`` of a forward action."""
        out = torch.zeros(action.logits_rows, self.vocab, device=self.device)
        seen = set()
        for g in action.groups:
            if g.seq in seen:
                raise HostError("a batch runs each sequence at most once")
            seen.add(g.seq)
        if action.model == "target":
            targets = [g for g in action.groups if g.kind == "target"]
            if targets:
                self._target(targets, out)
            for g in action.groups:
                if g.kind == "prefill":
                    self._prefill(g, out)
        else:
            self._draft(action.groups, out)
        self.forwards[action.model] += 1
        return out

    # -- the loop -----------------------------------------------------------------------------
    def run(
        self,
        decoder: "argen.Decoder",
        condition: Dict[str, Any],
        judge: Optional["argen.Judge"] = None,
        replay: Optional[List["argen.Recorded"]] = None,
    ) -> np.ndarray:
        """Drives ``decoder`` to the end; returns the result sequence's tokens.

        ``condition``: ``argen.Model.condition(...)``. ``judge``: ``argen.Model.judge(prompt)``
        for methods with checks, scores or reformulations. ``replay``: answers recorded by
        ``argen.Model.generate_recorded`` — forwards are answered with those rows (after this
        host's own forward, whose distance to them goes to ``self.max_diff``), judge answers
        must equal them.
        """
        self._begin(decoder, condition)
        step = 0
        while True:
            a = decoder.poll()
            if a.kind == "done":
                break
            rec = None
            if replay is not None:
                if step >= len(replay):
                    raise HostError(f"action {step} ({a.kind}) was not recorded")
                rec = replay[step]
            step += 1
            if a.model is not None:
                logits = self.forward(a)
                if rec is not None:
                    if rec.kind != "logits" or rec.logits.shape != (a.logits_rows, self.vocab):
                        raise HostError(f"action {step - 1}: recorded {rec.kind}, not these logits")
                    mine = logits.cpu().numpy()
                    self.max_diff = max(self.max_diff, float(np.abs(mine - rec.logits).max()))
                    decoder.handle_logits(rec.logits)
                else:
                    decoder.handle_logits(logits.cpu().contiguous())
                continue
            if judge is None:
                raise HostError(f"a {a.kind} action needs a judge")
            canvas = [int(t) for t in a.canvas]
            if a.kind == "check":
                answer = judge.check(a.canvas_rows, canvas)
                decoder.handle_verdict(answer)
            elif a.kind == "score":
                answer = judge.score(canvas)
                decoder.handle_score(answer)
            elif a.kind == "reformulate":
                feats = torch.as_tensor(np.array(judge.reformulate(a.canvas_rows, canvas))).to(self.device)
                self.conds[a.seq][2] = (feats, self.conds[a.seq][0][1])
                answer = None
                decoder.handle_reformulated()
            else:
                raise HostError(f"unknown action {a.kind}")
            if rec is not None and rec.value != answer:
                raise HostError(f"action {step - 1}: {a.kind} gave {answer}, argen's {rec.value}")
        if replay is not None and step != len(replay):
            raise HostError(f"{len(replay) - step} recorded answers left over")
        return decoder.tokens(decoder.result_seq()).copy()


def make_decoder(model: "argen.Model", config: Dict[str, Any]) -> "argen.Decoder":
    """An ``argen.Decoder`` for ``config`` with the tables it needs from the model directory
    (LANTERN's neighbours ranked on the raw codebook, VVS's codebook, GSD's embedding)."""
    req = argen.config_requirements(config)
    kw = {}
    if req["neighbours"] is not None:
        kw["neighbour_codebook"] = model.table("raw_codebook")
    if req["codebook"]:
        kw["codebook"] = model.table("codebook")
    if req["embedding"]:
        kw["embedding"] = model.table("embedding")
    vocab = len(model.table("raw_codebook"))
    return argen.Decoder(config, vocab, **kw)


def generate(host: TorchHost, model: "argen.Model", prompt: str, method: str, seed: int, replay=None, **options):
    """Generates one ShapesWorld image with the torch host: ``(tokens, decoder stats)``."""
    config = model.decoder_config(prompt=prompt, method=method, seed=seed, **options)
    dec = make_decoder(model, config)
    tokens = host.run(dec, model.condition(prompt=prompt), judge=model.judge(prompt), replay=replay)
    return tokens, dec.stats()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(REPO, "fixtures", "models", "shapesworld"))
    ap.add_argument("--prompt", default="a red circle above a blue square")
    ap.add_argument("--method", default="sd")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draft", choices=["chain", "tree"])
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: the bundled model is tiny)")
    ap.add_argument("--check", action="store_true", help="compare with argen's Rust runtime")
    a = ap.parse_args(argv)
    opts = {"draft": a.draft} if a.draft else {}
    torch.set_num_threads(a.threads)
    model = argen.Model(a.model, threads=1)
    host = TorchHost(a.model, a.device)
    t0 = time.perf_counter()
    tokens, stats = generate(host, model, a.prompt, a.method, a.seed, **opts)
    wall = time.perf_counter() - t0
    print(f"torch host ({host.device}): {wall:.2f} s, TPF {stats['tokens_per_forward']:.3f}, "
          f"MAL {stats['mean_accepted_length']:.3f}")
    print("tokens:", " ".join(map(str, tokens)))
    if a.check:
        g = model.generate(prompt=a.prompt, method=a.method, seed=a.seed, **opts)
        same = bool(np.array_equal(g.tokens, tokens))
        print(f"argen (Rust CPU runtime): TPF {g.stats['tokens_per_target_forward']:.3f}, "
              f"MAL {g.stats['mean_accepted_length']:.3f}; tokens identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
