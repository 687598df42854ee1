//! `argen._argen.RawDecoder`: a decoder of any method (`argen_ffi::decoder::OwnedDecoder`, the
//! layer the C ABI uses) for Python. `argen/decoder.py` wraps it in `argen.Decoder`, whose
//! `poll()` returns action objects with NumPy views of the arrays this module returns as bytes.

use crate::errors::{err, to_py, wrong_type};
use crate::{rows_of, table_f32, table_u32};
use argen_ffi::argen_status;
use argen_ffi::decoder::{OwnedDecoder, TableArgs};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

fn u32_bytes<'py>(py: Python<'py>, v: &[u32]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, v.len() * 4, |buf| {
        for (chunk, x) in buf.chunks_exact_mut(4).zip(v) {
            chunk.copy_from_slice(&x.to_ne_bytes());
        }
        Ok(())
    })
    .unwrap_or_else(|_| PyBytes::new(py, &[]))
}

/// A decoder of any method, built from a JSON ``DecoderConfig`` (use :class:`argen.Decoder`).
#[pyclass(module = "argen", unsendable)]
pub struct RawDecoder {
    inner: OwnedDecoder,
    last_ptr: usize,
}

#[pymethods]
impl RawDecoder {
    /// ``RawDecoder(config_json, vocab, neighbours=None, neighbour_codebook=None,
    /// embedding=None, codebook=None)``: tables are 2-D arrays (``vocab`` rows), copied.
    #[new]
    #[pyo3(signature = (config_json, vocab, neighbours=None, neighbour_codebook=None, embedding=None, codebook=None))]
    fn new(
        config_json: &str,
        vocab: usize,
        neighbours: Option<&Bound<'_, PyAny>>,
        neighbour_codebook: Option<&Bound<'_, PyAny>>,
        embedding: Option<&Bound<'_, PyAny>>,
        codebook: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = argen_ffi::decoder::parse_config(config_json).map_err(to_py)?;
        let ids = neighbours.map(|t| table_u32(t, "neighbours")).transpose()?;
        let f32s =
            |t: Option<&Bound<'_, PyAny>>, what: &str| t.map(|t| table_f32(t, what)).transpose();
        let nc = f32s(neighbour_codebook, "neighbour_codebook")?;
        let emb = f32s(embedding, "embedding")?;
        let cb = f32s(codebook, "codebook")?;
        let check_rows = |t: &Option<(Vec<f32>, usize, usize)>, what: &str| -> PyResult<()> {
            match t {
                Some((_, rows, _)) if *rows != vocab => Err(err(
                    argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                    format!("{what} has {rows} rows, the vocabulary has {vocab}"),
                )),
                _ => Ok(()),
            }
        };
        check_rows(&nc, "neighbour_codebook")?;
        check_rows(&emb, "embedding")?;
        check_rows(&cb, "codebook")?;
        if let Some((_, rows, _)) = &ids {
            if *rows != vocab {
                return Err(err(
                    argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                    format!("neighbours has {rows} rows, the vocabulary has {vocab}"),
                ));
            }
        }
        let tables = TableArgs {
            neighbours: ids.as_ref().map(|(v, _, k)| (&v[..], *k)),
            neighbour_codebook: nc.as_ref().map(|(v, _, d)| (&v[..], *d)),
            embedding: emb.as_ref().map(|(v, _, d)| (&v[..], *d)),
            codebook: cb.as_ref().map(|(v, _, d)| (&v[..], *d)),
        };
        Ok(RawDecoder {
            inner: OwnedDecoder::new(config, vocab, tables).map_err(to_py)?,
            last_ptr: 0,
        })
    }

    /// The vocabulary size.
    #[getter]
    fn vocab(&self) -> usize {
        self.inner.vocab()
    }

    /// The current action as a tuple ``(kind, model, logits_rows, seq, canvas_rows, canvas,
    /// groups)``; each group is ``(kind, seq, guidance, scale, variants, tokens, keep, new_step,
    /// commit, inputs, first_row, rows)``; arrays are native-endian ``uint32`` bytes (inputs:
    /// 5 words each: token, index, parent, feature_kind, feature_index).
    fn poll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let v = self.inner.poll();
        let mut groups = Vec::with_capacity(v.groups.len());
        for g in &v.groups {
            let inputs = &v.inputs[g.inputs.clone()];
            let mut flat = Vec::with_capacity(inputs.len() * 5);
            for i in inputs {
                flat.extend_from_slice(&[
                    i.token,
                    i.index,
                    i.parent,
                    i.feature_kind,
                    i.feature_index,
                ]);
            }
            groups.push(
                (
                    g.kind,
                    g.seq,
                    g.guidance,
                    g.scale,
                    g.variants,
                    u32_bytes(py, &v.tokens[g.tokens.clone()]),
                    u32_bytes(py, &v.keep[g.keep.clone()]),
                    g.new_step,
                    g.commit,
                    u32_bytes(py, &flat),
                    g.first_row,
                    g.rows,
                )
                    .into_pyobject(py)?,
            );
        }
        (
            v.kind,
            v.model,
            v.logits_rows,
            v.seq,
            v.canvas_rows,
            u32_bytes(py, &v.tokens[v.canvas.clone()]),
            groups,
        )
            .into_pyobject(py)
    }

    /// Answers a forward with ``(logits_rows, vocab)`` (or flat) float32/float16/bfloat16 rows,
    /// read in place.
    fn handle_logits(&mut self, logits: &Bound<'_, PyAny>) -> PyResult<()> {
        let view = rows_of(logits)?;
        let last = *view.shape.last().unwrap_or(&0);
        if view.shape.len() == 2 && last != self.inner.vocab() {
            return Err(err(
                argen_status::ARGEN_ERR_LENGTH_MISMATCH,
                format!(
                    "logits rows have {last} entries, the vocabulary has {}",
                    self.inner.vocab()
                ),
            ));
        }
        self.last_ptr = view.ptr as usize;
        self.inner.handle_logits(view.rows()?).map_err(to_py)
    }

    /// Address of the buffer the last ``handle_logits`` read (for zero-copy tests).
    #[getter]
    fn last_logits_address(&self) -> usize {
        self.last_ptr
    }

    /// Answers a Check.
    fn handle_verdict(&mut self, possible: &Bound<'_, PyAny>) -> PyResult<()> {
        let possible: bool = possible
            .extract()
            .map_err(|_| wrong_type("possible must be a bool"))?;
        self.inner.handle_verdict(possible).map_err(to_py)
    }

    /// Answers a Score with a finite float.
    fn handle_score(&mut self, score: f64) -> PyResult<()> {
        if !score.is_finite() {
            return Err(crate::errors::invalid(format!(
                "score must be finite, got {score}"
            )));
        }
        self.inner.handle_score(score as f32).map_err(to_py)
    }

    /// Answers a Reformulate.
    fn handle_reformulated(&mut self) -> PyResult<()> {
        self.inner.handle_reformulated().map_err(to_py)
    }

    /// Tokens committed so far for ``seq`` (native-endian uint32 bytes).
    fn tokens<'py>(&self, py: Python<'py>, seq: u32) -> Bound<'py, PyBytes> {
        u32_bytes(py, self.inner.tokens(seq))
    }

    /// The sequence holding the final image.
    fn result_seq(&self) -> u32 {
        self.inner.result_seq()
    }

    /// ``(first, count)`` of the sequence ids the decoder uses.
    fn sequences(&self) -> (u32, u32) {
        let s = self.inner.sequences();
        (s.start, s.end - s.start)
    }

    /// The counters as a dict (``tokens_per_forward`` and ``mean_accepted_length`` included).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("tokens", s.tokens)?;
        d.set_item("target_forwards", s.target_forwards)?;
        d.set_item("target_rows", s.target_rows)?;
        d.set_item("prefills", s.prefills)?;
        d.set_item("draft_forwards", s.draft_forwards)?;
        d.set_item("draft_rows", s.draft_rows)?;
        d.set_item("verify_steps", s.verify_steps)?;
        d.set_item("skipped_steps", s.skipped_steps)?;
        d.set_item("verifier_calls", s.verifier_calls)?;
        d.set_item("scorer_calls", s.scorer_calls)?;
        d.set_item("reformulations", s.reformulations)?;
        d.set_item("accepted_hist", s.accepted_hist.to_vec())?;
        d.set_item("tokens_per_forward", s.tokens_per_target_forward())?;
        d.set_item("mean_accepted_length", s.mean_accepted_length())?;
        Ok(d)
    }

    /// The requirements of the configuration as a dict.
    fn requirements<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        requirements_dict(py, self.inner.requirements())
    }
}

fn requirements_dict<'py>(
    py: Python<'py>,
    r: &argen_core::decode::Requirements,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sequences", r.sequences)?;
    d.set_item("tokens", r.tokens)?;
    d.set_item("inputs_per_run", r.inputs_per_run)?;
    d.set_item("pending", r.pending)?;
    d.set_item("variants", r.variants)?;
    d.set_item("logits_rows", r.logits_rows)?;
    d.set_item("dist_rows", r.dist_rows)?;
    d.set_item("drafter", r.drafter)?;
    d.set_item("check", r.check)?;
    d.set_item("score", r.score)?;
    d.set_item("reformulate", r.reformulate)?;
    d.set_item("neighbours", r.neighbours.map(|n| (n.k, n.metric.name())))?;
    d.set_item("embedding", r.embedding)?;
    d.set_item("codebook", r.codebook)?;
    Ok(d)
}

/// What a host must provide for a JSON ``DecoderConfig`` (a dict), before building anything.
#[pyfunction]
pub fn config_requirements<'py>(
    py: Python<'py>,
    config_json: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let r = argen_ffi::decoder::config_requirements(config_json).map_err(to_py)?;
    requirements_dict(py, &r)
}
