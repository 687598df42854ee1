//! The `argen._argen` extension module: argen's low-level API for Python.
//!
//! Thin wrappers over `argen_ffi::embed` (the layer the C ABI uses too) and `argen_core`'s RNG:
//! arguments are converted and checked here, every computation is the core's. Logits are read in
//! place from NumPy arrays and PyTorch tensors ([`array`]); errors are `argen.errors` exceptions
//! carrying the C status code ([`errors`]). The GIL is held during every call, so no other Python
//! thread can write the arrays argen is reading.

mod array;
mod decoder;
mod errors;
mod model;

use argen_core::accept::NodeKeys;
use argen_core::backend::{DraftTree, Fill, TreeJob};
use argen_core::rng::{Key as CoreKey, KeyedStream, Purpose, WORDS_PER_KEY};
use argen_core::{ProcessJob as CoreJob, RowGuidance, SampleJob, SamplerParams};
use argen_ffi::argen_status;
use argen_ffi::embed::{self, OwnedCriterion};
use errors::{err, invalid, to_py, wrong_type};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySequence};

/// The identity of one random draw stream (RNG scheme v1).
///
/// Every random number argen draws is a pure function of ``(seed, stream, purpose, position,
/// token)``; see ``crates/argen-core/src/rng.rs`` for the specification.
#[pyclass(module = "argen", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    inner: CoreKey,
}

#[pymethods]
impl Key {
    #[new]
    #[pyo3(signature = (seed, stream, purpose, position, token = 0))]
    fn new(seed: u64, stream: u32, purpose: u32, position: u32, token: u32) -> PyResult<Self> {
        let inner = CoreKey {
            seed,
            stream,
            purpose: Purpose(purpose),
            position,
            token,
        };
        inner.validate().map_err(|e| to_py(e.into()))?;
        Ok(Key { inner })
    }

    /// The user's seed.
    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed
    }
    /// The sequence the draw belongs to.
    #[getter]
    fn stream(&self) -> u32 {
        self.inner.stream
    }
    /// What the draw is for (``PURPOSE_*``).
    #[getter]
    fn purpose(&self) -> u32 {
        self.inner.purpose.0
    }
    /// Absolute position of the token being decided.
    #[getter]
    fn position(&self) -> u32 {
        self.inner.position
    }
    /// Distinguishes several draws at one position.
    #[getter]
    fn token(&self) -> u32 {
        self.inner.token
    }
    /// The ChaCha nonce ``(purpose << 32) | stream``.
    #[getter]
    fn nonce(&self) -> u64 {
        self.inner.nonce()
    }

    /// The ChaCha block counter of block ``block`` (0..=255) of this key.
    fn counter(&self, block: u32) -> PyResult<u64> {
        let b = u8::try_from(block).map_err(|_| {
            invalid(format!(
                "block {block} is out of range (a key has 256 blocks)"
            ))
        })?;
        Ok(self.inner.counter(b))
    }

    /// The first ``n`` 64-bit words of this key's stream (``n <= 2048``).
    #[pyo3(signature = (n = 1))]
    fn words(&self, n: usize) -> PyResult<Vec<u64>> {
        if n > WORDS_PER_KEY {
            return Err(invalid(format!(
                "a key provides {WORDS_PER_KEY} words, {n} were requested"
            )));
        }
        let mut s = KeyedStream::new(self.inner);
        Ok((0..n).map(|_| s.next_word().unwrap_or(0)).collect())
    }

    /// A uniform integer in ``[0, n)`` (``1 <= n < 2**128``) from a fresh stream of this key.
    fn below(&self, n: u128) -> PyResult<u128> {
        if n == 0 {
            return Err(invalid("n must be at least 1"));
        }
        KeyedStream::new(self.inner)
            .below(n)
            .map_err(|e| to_py(e.into()))
    }

    /// A uniform float in ``[0, 1)`` with 53 random bits from a fresh stream of this key.
    fn unit(&self) -> f64 {
        KeyedStream::new(self.inner).unit_f64()
    }

    /// The 256-bit ChaCha20 key of ``seed`` as eight 32-bit words.
    #[staticmethod]
    fn chacha_key(seed: u64) -> Vec<u32> {
        CoreKey::chacha_key(seed).to_vec()
    }

    fn __repr__(&self) -> String {
        let k = self.inner;
        format!(
            "Key(seed={}, stream={}, purpose={}, position={}, token={})",
            k.seed, k.stream, k.purpose.0, k.position, k.token
        )
    }
}

fn params(
    temperature: f32,
    top_k: Option<u32>,
    top_p: Option<f32>,
    min_p: Option<f32>,
) -> PyResult<SamplerParams> {
    if top_k == Some(0) {
        return Err(invalid("top_k must be at least 1 (use None to disable)"));
    }
    Ok(SamplerParams {
        temperature,
        top_k,
        top_p,
        min_p,
    })
}

/// One processing job: which logit rows, combined how, with which sampling parameters, into
/// which distribution row of a :class:`Sampler`.
///
/// Guidance follows from the rows given: ``row`` alone is plain; with ``uncond`` and
/// ``cfg_scale`` it is two-way CFG ``u + s·(c − u)``; with ``uncond``, ``reformulated`` and
/// ``cfg_w`` it is GridAR's three-way CFG.
#[pyclass(module = "argen", frozen)]
#[derive(Clone)]
struct ProcessJob {
    inner: CoreJob,
}

#[pymethods]
impl ProcessJob {
    #[new]
    #[pyo3(signature = (out, row = 0, *, uncond = None, reformulated = None, cfg_scale = None,
        cfg_w = None, temperature = 1.0, top_k = None, top_p = None, min_p = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        out: u32,
        row: u32,
        uncond: Option<u32>,
        reformulated: Option<u32>,
        cfg_scale: Option<f32>,
        cfg_w: Option<f32>,
        temperature: f32,
        top_k: Option<u32>,
        top_p: Option<f32>,
        min_p: Option<f32>,
    ) -> PyResult<Self> {
        let rows = match (uncond, reformulated, cfg_scale, cfg_w) {
            (None, None, None, None) => RowGuidance::Plain { row },
            (Some(u), None, Some(s), None) => RowGuidance::TwoWay {
                cond: row,
                uncond: u,
                scale: s,
            },
            (Some(u), Some(r), None, Some(w)) => RowGuidance::ThreeWay {
                cond: row,
                uncond: u,
                reformulated: r,
                w,
            },
            _ => {
                return Err(invalid(
                    "guidance: give nothing (plain), uncond + cfg_scale (two-way CFG), or \
                     uncond + reformulated + cfg_w (three-way CFG)",
                ))
            }
        };
        Ok(ProcessJob {
            inner: CoreJob {
                rows,
                params: params(temperature, top_k, top_p, min_p)?,
                out,
            },
        })
    }

    /// Destination distribution row.
    #[getter]
    fn out(&self) -> u32 {
        self.inner.out
    }

    fn __repr__(&self) -> String {
        format!(
            "ProcessJob({:?}, {:?}, out={})",
            self.inner.rows, self.inner.params, self.inner.out
        )
    }
}

/// An acceptance criterion for draft-tree verification (tables are copied and validated once).
#[pyclass(module = "argen", frozen)]
struct Criterion {
    inner: OwnedCriterion,
}

/// A 2-D table from an array (or a sequence of sequences) as (flat values, rows, cols).
fn table_u32(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<u32>, usize, usize)> {
    if let Ok(v) = array::view(obj, what) {
        if v.shape.len() != 2 {
            return Err(errors::layout(format!(
                "{what} must be 2-D, got shape {:?}",
                v.shape
            )));
        }
        return Ok((v.to_u32(what)?, v.shape[0], v.shape[1]));
    }
    let rows: Vec<Vec<u32>> = obj.extract().map_err(|_| {
        wrong_type(format!(
            "{what} must be a 2-D integer array or a list of lists"
        ))
    })?;
    flatten(rows, what)
}

fn table_f32(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<f32>, usize, usize)> {
    if let Ok(v) = array::view(obj, what) {
        if v.shape.len() != 2 {
            return Err(errors::layout(format!(
                "{what} must be 2-D, got shape {:?}",
                v.shape
            )));
        }
        return Ok((v.to_f32(what)?, v.shape[0], v.shape[1]));
    }
    let rows: Vec<Vec<f32>> = obj.extract().map_err(|_| {
        wrong_type(format!(
            "{what} must be a 2-D float32 array or a list of lists"
        ))
    })?;
    flatten(rows, what)
}

fn flatten<T: Copy>(rows: Vec<Vec<T>>, what: &str) -> PyResult<(Vec<T>, usize, usize)> {
    let n = rows.len();
    let m = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != m) {
        return Err(err(
            argen_status::ARGEN_ERR_LENGTH_MISMATCH,
            format!("{what}: rows have different lengths"),
        ));
    }
    Ok((rows.into_iter().flatten().collect(), n, m))
}

#[pymethods]
impl Criterion {
    /// Exact speculative sampling (Leviathan et al. 2023; Chen et al. 2023): output distribution
    /// exactly the target's.
    #[staticmethod]
    fn exact() -> Self {
        Criterion {
            inner: OwnedCriterion::exact(),
        }
    }

    /// Accept iff the draft equals the target's own keyed draw: token-for-token vanilla output.
    #[staticmethod]
    fn coupled() -> Self {
        Criterion {
            inner: OwnedCriterion::coupled(),
        }
    }

    /// LANTERN relaxed acceptance (Jang et al., ICLR 2025). ``neighbours``: ``vocab × table_k``
    /// latent-neighbour ids, nearest first (see :func:`neighbour_table`); ``k`` of them are
    /// considered; ``delta`` is the total-variation budget; ``lam`` LANTERN++'s λ (None: plain).
    #[staticmethod]
    #[pyo3(signature = (neighbours, k, delta, lam = None))]
    fn lantern(
        neighbours: &Bound<'_, PyAny>,
        k: usize,
        delta: f32,
        lam: Option<f32>,
    ) -> PyResult<Self> {
        let (ids, vocab, table_k) = table_u32(neighbours, "neighbours")?;
        Ok(Criterion {
            inner: OwnedCriterion::lantern(&ids, vocab, table_k, k, delta, lam).map_err(to_py)?,
        })
    }

    /// Grouped speculative decoding (So et al., ICCV 2025), training-free. ``embedding``: the
    /// target's ``vocab × dim`` float32 input embedding.
    #[staticmethod]
    #[pyo3(signature = (embedding, window = 7, prob_tol = 0.15, dist_tol = 0.5))]
    fn grouped(
        embedding: &Bound<'_, PyAny>,
        window: usize,
        prob_tol: f32,
        dist_tol: f32,
    ) -> PyResult<Self> {
        let (emb, vocab, dim) = table_f32(embedding, "embedding")?;
        Ok(Criterion {
            inner: OwnedCriterion::grouped(&emb, vocab, dim, window, prob_tol, dist_tol)
                .map_err(to_py)?,
        })
    }

    /// ``"exact"``, ``"coupled"``, ``"lantern"`` or ``"grouped"``.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The vocabulary the tables are built for (None for exact and coupled).
    #[getter]
    fn vocab(&self) -> Option<usize> {
        self.inner.vocab()
    }

    fn __repr__(&self) -> String {
        format!("Criterion.{}()", self.inner.name())
    }
}

/// A table of ``rows`` distribution rows over ``vocab`` tokens, and argen's row operations on
/// it: process logits into rows, draw keyed samples, top-k, synthetic rows, and verify draft
/// trees. Results equal argen-core's bit for bit.
#[pyclass(module = "argen")]
struct Sampler {
    inner: embed::Sampler,
}

fn rows_of<'py>(logits: &Bound<'py, PyAny>) -> PyResult<array::ArrayView<'py>> {
    let v = array::view(logits, "logits")?;
    if v.shape.is_empty() || v.shape.len() > 2 {
        return Err(errors::layout(format!(
            "logits must be 1-D (vocab,) or 2-D (rows, vocab), got shape {:?}",
            v.shape
        )));
    }
    Ok(v)
}

#[pymethods]
impl Sampler {
    #[new]
    fn new(vocab: usize, rows: usize) -> PyResult<Self> {
        Ok(Sampler {
            inner: embed::Sampler::new(vocab, rows).map_err(to_py)?,
        })
    }

    /// Vocabulary size.
    #[getter]
    fn vocab(&self) -> usize {
        self.inner.vocab()
    }

    /// Number of distribution rows.
    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }

    /// Processes logit rows into distribution rows, reading ``logits`` in place.
    ///
    /// ``logits``: a C-contiguous float32/float16/bfloat16 array or CPU tensor, shape ``(vocab,)``
    /// or ``(n, vocab)``. ``jobs``: a :class:`ProcessJob` or a sequence of them, run in order.
    fn process(&mut self, logits: &Bound<'_, PyAny>, jobs: &Bound<'_, PyAny>) -> PyResult<()> {
        let view = rows_of(logits)?;
        let last = *view.shape.last().unwrap_or(&0);
        if last != self.inner.vocab() {
            return Err(err(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "logits rows have {last} entries, the sampler's vocabulary has {}",
                    self.inner.vocab()
                ),
            ));
        }
        let jobs: Vec<CoreJob> = if let Ok(j) = jobs.downcast::<ProcessJob>() {
            vec![j.get().inner]
        } else {
            let seq = jobs
                .downcast::<PySequence>()
                .map_err(|_| wrong_type("jobs must be a ProcessJob or a sequence of them"))?;
            let mut v = Vec::with_capacity(seq.len()?);
            for item in seq.try_iter()? {
                let item = item?;
                let j = item
                    .downcast::<ProcessJob>()
                    .map_err(|_| wrong_type("jobs must be a ProcessJob or a sequence of them"))?;
                v.push(j.get().inner);
            }
            v
        };
        self.inner.process(view.rows()?, &jobs).map_err(to_py)
    }

    /// Keyed draws: ``sample(row, key) -> int``, or ``sample(rows, keys) -> list[int]`` with one
    /// key per row index.
    fn sample(
        &mut self,
        py: Python<'_>,
        row: &Bound<'_, PyAny>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<PyObject> {
        if let Ok(r) = row.extract::<u32>() {
            let k = key
                .downcast::<Key>()
                .map_err(|_| wrong_type("with one row index, key must be one argen.Key"))?;
            let mut out = [0u32];
            self.inner
                .sample(
                    &[SampleJob {
                        row: r,
                        key: k.get().inner,
                    }],
                    &mut out,
                )
                .map_err(to_py)?;
            return Ok(out[0].into_pyobject(py)?.into_any().unbind());
        }
        let rows: Vec<u32> = row
            .extract()
            .map_err(|_| wrong_type("row must be an int or a sequence of ints"))?;
        let keys = key
            .downcast::<PySequence>()
            .map_err(|_| wrong_type("key must be a Key or a sequence of Keys"))?;
        if keys.len()? != rows.len() {
            return Err(err(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!("{} rows but {} keys", rows.len(), keys.len()?),
            ));
        }
        let mut jobs = Vec::with_capacity(rows.len());
        for (r, k) in rows.iter().zip(keys.try_iter()?) {
            let k = k?;
            let k = k
                .downcast::<Key>()
                .map_err(|_| wrong_type("key must be a Key or a sequence of Keys"))?;
            jobs.push(SampleJob {
                row: *r,
                key: k.get().inner,
            });
        }
        let mut out = vec![0u32; jobs.len()];
        self.inner.sample(&jobs, &mut out).map_err(to_py)?;
        Ok(PyList::new(py, out)?.into_any().unbind())
    }

    /// The ``k`` most likely tokens of row ``row`` (probability descending, id ascending) and
    /// their probabilities.
    fn top_k(&mut self, row: u32, k: usize) -> PyResult<(Vec<u32>, Vec<f64>)> {
        if k == 0 {
            return Err(invalid("k must be at least 1"));
        }
        let mut t = vec![0u32; k.min(self.inner.vocab() + 1)];
        let mut p = vec![0f64; t.len()];
        self.inner.top_k(row, &mut t, &mut p).map_err(to_py)?;
        Ok((t, p))
    }

    /// Makes row ``row`` uniform over the vocabulary.
    fn fill_uniform(&mut self, row: u32) -> PyResult<()> {
        self.inner.fill(row, Fill::Uniform).map_err(to_py)
    }

    /// Makes row ``row`` a point mass on ``token``.
    fn fill_one_hot(&mut self, row: u32, token: u32) -> PyResult<()> {
        self.inner.fill(row, Fill::OneHot(token)).map_err(to_py)
    }

    /// ``(total, weights)`` of row ``row``: token ``t`` has probability exactly
    /// ``weights[t] / total``.
    fn weights(&mut self, row: u32) -> PyResult<(u64, Vec<u64>)> {
        let mut w = vec![0u64; self.inner.vocab()];
        let total = self.inner.read_row(row, &mut w).map_err(to_py)?;
        Ok((total, w))
    }

    /// Verifies a draft tree: returns ``(path, token)``, the accepted node indices (root side
    /// first) and the token committed after them.
    ///
    /// Node ``i`` holds ``tokens[i]`` below ``parents[i]`` (an earlier node or ``ROOT``). Slot
    /// ``s`` (0 = root, ``i + 1`` = node ``i``) has its target distribution in row
    /// ``target_base + s`` (overwritten by residuals) and, for sampled drafts, its draft
    /// distribution in row ``draft_base + s`` (None: point-mass drafts).
    #[pyo3(signature = (tokens, parents, criterion, *, seed, stream, position, target_base = 0,
        draft_base = None))]
    #[allow(clippy::too_many_arguments)]
    fn verify_tree(
        &mut self,
        tokens: &Bound<'_, PyAny>,
        parents: &Bound<'_, PyAny>,
        criterion: &Bound<'_, PyAny>,
        seed: u64,
        stream: u32,
        position: u32,
        target_base: u32,
        draft_base: Option<u32>,
    ) -> PyResult<(Vec<u32>, u32)> {
        let tokens = ids(tokens, "tokens")?;
        let parents = ids(parents, "parents")?;
        let criterion = criterion
            .downcast::<Criterion>()
            .map_err(|_| wrong_type("criterion must be an argen.Criterion"))?;
        let job = TreeJob {
            tree: DraftTree {
                tokens: &tokens,
                parents: &parents,
            },
            target_base,
            draft_base,
            keys: NodeKeys {
                seed,
                stream,
                position,
            },
        };
        let mut path = vec![0u32; tokens.len()];
        let v = self
            .inner
            .verify_tree(&job, &criterion.get().inner, &mut path)
            .map_err(to_py)?;
        path.truncate(v.accepted);
        Ok((path, v.token))
    }

    fn __repr__(&self) -> String {
        format!(
            "Sampler(vocab={}, rows={})",
            self.inner.vocab(),
            self.inner.rows()
        )
    }
}

/// A sequence of token ids / parent indices from a 1-D integer array or a sequence of ints.
fn ids(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u32>> {
    if let Ok(v) = array::view(obj, what) {
        if v.shape.len() != 1 {
            return Err(errors::layout(format!(
                "{what} must be 1-D, got shape {:?}",
                v.shape
            )));
        }
        return v.to_u32(what);
    }
    obj.extract().map_err(|_| {
        wrong_type(format!(
            "{what} must be a 1-D integer array or a sequence of ints"
        ))
    })
}

/// One keyed draw per row of ``logits`` (shape ``(n, vocab)`` or ``(vocab,)``): processes each
/// row (no guidance) with the given parameters and draws with ``keys[i]``. Equivalent to a
/// :class:`Sampler` with one :class:`ProcessJob` and one draw per row.
#[pyfunction]
#[pyo3(signature = (logits, keys, *, temperature = 1.0, top_k = None, top_p = None, min_p = None))]
fn sample_rows(
    logits: &Bound<'_, PyAny>,
    keys: &Bound<'_, PyAny>,
    temperature: f32,
    top_k: Option<u32>,
    top_p: Option<f32>,
    min_p: Option<f32>,
) -> PyResult<Vec<u32>> {
    let view = rows_of(logits)?;
    let vocab = *view.shape.last().unwrap_or(&0);
    let n = if view.shape.len() == 2 {
        view.shape[0]
    } else {
        1
    };
    let keys = keys
        .downcast::<PySequence>()
        .map_err(|_| wrong_type("keys must be a sequence of Keys"))?;
    if keys.len()? != n {
        return Err(err(
            argen_status::ARGEN_ERR_LENGTH_MISMATCH,
            format!("{n} logit rows but {} keys", keys.len()?),
        ));
    }
    let p = params(temperature, top_k, top_p, min_p)?;
    let mut sampler = embed::Sampler::new(vocab, 1).map_err(to_py)?;
    let rows = view.rows()?;
    let mut out = Vec::with_capacity(n);
    for (i, k) in keys.try_iter()?.enumerate() {
        let k = k?;
        let k = k
            .downcast::<Key>()
            .map_err(|_| wrong_type("keys must be a sequence of Keys"))?;
        let job = CoreJob {
            rows: RowGuidance::Plain { row: i as u32 },
            params: p,
            out: 0,
        };
        sampler.process(rows, &[job]).map_err(to_py)?;
        let mut t = [0u32];
        sampler
            .sample(
                &[SampleJob {
                    row: 0,
                    key: k.get().inner,
                }],
                &mut t,
            )
            .map_err(to_py)?;
        out.push(t[0]);
    }
    Ok(out)
}

/// The ``vocab × k`` latent-neighbour table of a ``vocab × dim`` float32 codebook: for each token
/// its ``k`` nearest other entries by squared L2 distance, ties to the smaller id. O(vocab²·dim).
#[pyfunction]
fn neighbour_table(codebook: &Bound<'_, PyAny>, k: usize) -> PyResult<Vec<Vec<u32>>> {
    let (cb, _vocab, dim) = table_f32(codebook, "codebook")?;
    let flat = embed::neighbour_table(&cb, dim, k).map_err(to_py)?;
    Ok(flat.chunks(k.max(1)).map(<[u32]>::to_vec).collect())
}

/// ``(address, dtype, shape)`` of the memory argen reads for ``obj`` — the resolution every
/// function taking logits uses. A diagnostic: the address equals NumPy's
/// ``a.__array_interface__["data"][0]`` / PyTorch's ``t.data_ptr()``, because nothing is copied.
#[pyfunction]
fn array_info(obj: &Bound<'_, PyAny>) -> PyResult<(usize, String, Vec<usize>)> {
    let v = array::view(obj, "array")?;
    Ok((v.ptr as usize, v.elem.name(), v.shape.clone()))
}

/// The C name of status code ``code`` (``"ARGEN_ERR_UNKNOWN"`` for an unknown code).
#[pyfunction]
fn status_name(code: i64) -> &'static str {
    argen_status::from_code(code)
        .unwrap_or(argen_status::ARGEN_ERR_UNKNOWN)
        .name()
}

/// argen's low-level Python API (see the package docstring of ``argen``).
#[pymodule]
fn _argen(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Key>()?;
    m.add_class::<ProcessJob>()?;
    m.add_class::<Criterion>()?;
    m.add_class::<Sampler>()?;
    m.add_class::<decoder::RawDecoder>()?;
    m.add_function(wrap_pyfunction!(decoder::config_requirements, m)?)?;
    m.add_class::<model::Engine>()?;
    m.add_function(wrap_pyfunction!(sample_rows, m)?)?;
    m.add_function(wrap_pyfunction!(neighbour_table, m)?)?;
    m.add_function(wrap_pyfunction!(array_info, m)?)?;
    m.add_function(wrap_pyfunction!(status_name, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ROOT", argen_core::backend::ROOT)?;
    m.add("WORDS_PER_KEY", WORDS_PER_KEY)?;
    m.add("MAX_KEY_TOKEN", argen_core::rng::MAX_KEY_TOKEN)?;
    for (name, p) in [
        ("PURPOSE_SAMPLE", Purpose::SAMPLE),
        ("PURPOSE_ACCEPT", Purpose::ACCEPT),
        ("PURPOSE_RESIDUAL", Purpose::RESIDUAL),
        ("PURPOSE_DRAFT", Purpose::DRAFT),
        ("PURPOSE_PATH", Purpose::PATH),
        ("PURPOSE_JACOBI_INIT", Purpose::JACOBI_INIT),
        ("PURPOSE_CANDIDATE", Purpose::CANDIDATE),
    ] {
        m.add(name, p.0)?;
    }
    Ok(())
}
