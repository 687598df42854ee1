//! The tables acceptance criteria borrow, built on first use and kept for later requests.
//!
//! LANTERN's latent-neighbour tables (one per `k` and metric, `argen_core::accept::neighbours`:
//! the `k` nearest codebook rows of every token), GSD's token embedding (the target's
//! `tok_embeddings.weight` as f32); the VQ codebook (VVS's dynamic schedule) is the VQ decoder's
//! own and is lent, not copied.

use argen_core::accept::neighbours::build_table_with;
use argen_core::accept::{Metric, NeighbourTable};
use argen_core::decode::{Requirements, Resources};
use argen_model::{Compute, GptConfig, VqDecoder};

use crate::model_dir::ModelDir;
use crate::Error;

/// Tables built so far.
#[derive(Default)]
pub(crate) struct Tables {
    neighbours: Vec<(usize, Metric, Vec<u32>)>,
    embedding: Option<Vec<f32>>,
}

impl Tables {
    /// Builds what `req` asks for and has not been built yet.
    pub(crate) fn prepare<C: Compute>(
        &mut self,
        req: &Requirements,
        dir: &ModelDir,
        vq: &VqDecoder<C>,
        cfg: &GptConfig,
    ) -> Result<(), Error> {
        if let Some(n) = req.neighbours {
            let (k, metric) = (n.k as usize, n.metric);
            if !self.neighbours.iter().any(|t| (t.0, t.1) == (k, metric)) {
                // `Metric::Normalised` ranks exactly the rows the VQ decoder looks up.
                let dim = vq.config().codebook_embed_dim;
                let t = build_table_with(vq.raw_codebook(), dim, k, metric)
                    .map_err(|e| Error::model(e.to_string()))?;
                self.neighbours.push((k, metric, t));
            }
        }
        if req.embedding && self.embedding.is_none() {
            self.embedding = Some(dir.token_embeddings(cfg).map_err(Error::model)?);
        }
        Ok(())
    }

    /// The resources `req` asks for (built by [`Tables::prepare`]).
    pub(crate) fn resources<'t, C: Compute>(
        &'t self,
        req: &Requirements,
        vq: &'t VqDecoder<C>,
        cfg: &GptConfig,
    ) -> Result<Resources<'t>, Error> {
        let mut res = Resources::none();
        if let Some(n) = req.neighbours {
            let (k, metric) = (n.k as usize, n.metric);
            if let Some((_, _, ids)) = self.neighbours.iter().find(|t| (t.0, t.1) == (k, metric)) {
                let table = NeighbourTable::new(ids, cfg.vocab_size, k)
                    .map_err(|e| Error::model(e.to_string()))?;
                res = res.with_neighbours(table);
            }
        }
        if let Some(e) = self.embedding.as_deref().filter(|_| req.embedding) {
            res = res.with_embedding(e, cfg.dim);
        }
        if req.codebook {
            res = res.with_codebook(vq.codebook(), vq.config().codebook_embed_dim);
        }
        Ok(res)
    }
}
