//! The VQ tokenizer's decoder (LlamaGen VQ-16 / VQ-8 architecture, any channel configuration):
//! token grid → RGB image in [−1, 1].
//!
//! `z = normalize(codebook[code])` (rows l2-normalised when `codebook_l2_norm`),
//! `post_quant_conv` (1×1), then `decoder`: `conv_in` (3×3); `mid` = ResNet, attention, ResNet;
//! `conv_blocks[i]` for the levels from the lowest resolution up (`ch_mult` reversed), each
//! `num_res_blocks + 1` ResNet blocks (attention after each only at the lowest resolution) and,
//! except the last, a nearest ×2 upsample followed by a 3×3 conv; `norm_out` (GroupNorm(32,
//! eps 1e-6)), SiLU, `conv_out`. A ResNet block is `x + conv2(silu(gn2(conv1(silu(gn1(x))))))`
//! with a 1×1 `nin_shortcut` on `x` when the width changes; attention is single-head over all
//! pixels with scale `c^(−1/2)`.

use crate::compute::Compute;
use crate::config::VqConfig;
use crate::error::{input_err, ModelError, Result};
use crate::safetensors::SafeTensors;
use std::collections::BTreeSet;
use std::path::Path;

struct Conv<C: Compute> {
    w: C::Weight,
    b: C::Weight,
    cin: usize,
    cout: usize,
    k: usize,
}

struct Norm<C: Compute> {
    g: C::Weight,
    b: C::Weight,
}

struct Res<C: Compute> {
    norm1: Norm<C>,
    conv1: Conv<C>,
    norm2: Norm<C>,
    conv2: Conv<C>,
    nin: Option<Conv<C>>,
}

struct Attn<C: Compute> {
    norm: Norm<C>,
    q: Conv<C>,
    k: Conv<C>,
    v: Conv<C>,
    proj: Conv<C>,
}

struct Level<C: Compute> {
    res: Vec<Res<C>>,
    attn: Vec<Attn<C>>,
    up: Option<Conv<C>>,
}

struct Loader<'a, C: Compute> {
    c: &'a C,
    st: &'a SafeTensors,
    seen: BTreeSet<String>,
}

impl<C: Compute> Loader<'_, C> {
    fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize) -> Result<Conv<C>> {
        let wn = format!("{name}.weight");
        let bn = format!("{name}.bias");
        let w = self.c.weight(self.st.expect(&wn, &[cout, cin, k, k])?)?;
        let b = self.c.weight(self.st.expect(&bn, &[cout])?)?;
        self.seen.insert(wn);
        self.seen.insert(bn);
        Ok(Conv { w, b, cin, cout, k })
    }
    fn norm(&mut self, name: &str, c: usize) -> Result<Norm<C>> {
        let wn = format!("{name}.weight");
        let bn = format!("{name}.bias");
        let g = self.c.weight(self.st.expect(&wn, &[c])?)?;
        let b = self.c.weight(self.st.expect(&bn, &[c])?)?;
        self.seen.insert(wn);
        self.seen.insert(bn);
        Ok(Norm { g, b })
    }
    fn res(&mut self, name: &str, cin: usize, cout: usize) -> Result<Res<C>> {
        Ok(Res {
            norm1: self.norm(&format!("{name}.norm1"), cin)?,
            conv1: self.conv(&format!("{name}.conv1"), cin, cout, 3)?,
            norm2: self.norm(&format!("{name}.norm2"), cout)?,
            conv2: self.conv(&format!("{name}.conv2"), cout, cout, 3)?,
            nin: if cin != cout {
                Some(self.conv(&format!("{name}.nin_shortcut"), cin, cout, 1)?)
            } else {
                None
            },
        })
    }
    fn attn(&mut self, name: &str, c: usize) -> Result<Attn<C>> {
        Ok(Attn {
            norm: self.norm(&format!("{name}.norm"), c)?,
            q: self.conv(&format!("{name}.q"), c, c, 1)?,
            k: self.conv(&format!("{name}.k"), c, c, 1)?,
            v: self.conv(&format!("{name}.v"), c, c, 1)?,
            proj: self.conv(&format!("{name}.proj_out"), c, c, 1)?,
        })
    }
}

/// The VQ decoder.
pub struct VqDecoder<C: Compute> {
    c: C,
    cfg: VqConfig,
    codebook: Vec<f32>,
    raw_codebook: Vec<f32>,
    post_quant: Conv<C>,
    conv_in: Conv<C>,
    mid: (Res<C>, Attn<C>, Res<C>),
    levels: Vec<Level<C>>,
    norm_out: Norm<C>,
    conv_out: Conv<C>,
}

/// A decoded image.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Channel-first `[3, height, width]` values, nominally in [−1, 1].
    pub chw: Vec<f32>,
}

impl Image {
    /// Interleaved RGB bytes `[height, width, 3]`: `clamp(round((x + 1)/2 · 255))`, as the
    /// official samplers save images.
    pub fn to_rgb8(&self) -> Vec<u8> {
        let n = self.height * self.width;
        let mut out = vec![0u8; 3 * n];
        for p in 0..n {
            for ch in 0..3 {
                let x = self.chw[ch * n + p];
                let v = ((x + 1.0) * 0.5 * 255.0 + 0.5).clamp(0.0, 255.0);
                out[3 * p + ch] = v as u8;
            }
        }
        out
    }
}

impl<C: Compute> VqDecoder<C> {
    /// The codebook as the decoder looks codes up (`[codebook_size, codebook_embed_dim]`,
    /// rows l2-normalised if the config says so).
    pub fn codebook(&self) -> &[f32] {
        &self.codebook
    }

    /// The codebook as stored in the checkpoint (`quantize.embedding.weight`, never normalised):
    /// the rows the official LANTERN code measures neighbour distances between.
    pub fn raw_codebook(&self) -> &[f32] {
        &self.raw_codebook
    }

    /// Loads the decoder from a VQ checkpoint (official names; the encoder, `quant_conv` and
    /// `quantize.codebook_used` are ignored).
    pub fn load(c: &C, cfg: &VqConfig, weights: impl AsRef<Path>) -> Result<Self> {
        let st = SafeTensors::open(weights)?;
        Self::from_safetensors(c, cfg, &st)
    }

    /// Builds the decoder from an opened checkpoint.
    pub fn from_safetensors(c: &C, cfg: &VqConfig, st: &SafeTensors) -> Result<Self> {
        cfg.validate(st.path())?;
        let e = cfg.codebook_embed_dim;
        let cb = st.expect("quantize.embedding.weight", &[cfg.codebook_size, e])?;
        let raw_codebook = cb.to_f32().unwrap_or_default();
        let mut codebook = raw_codebook.clone();
        if cfg.codebook_l2_norm {
            for row in codebook.chunks_exact_mut(e) {
                argen_core::accept::neighbours::l2_normalise(row);
            }
        }
        let mut ld = Loader {
            c,
            st,
            seen: BTreeSet::new(),
        };
        let z = cfg.z_channels;
        let post_quant = ld.conv("post_quant_conv", e, z, 1)?;
        let mult = &cfg.decoder_ch_mult;
        let nl = mult.len();
        let mut block_in = cfg.ch * mult[nl - 1];
        let conv_in = ld.conv("decoder.conv_in", z, block_in, 3)?;
        let mid = (
            ld.res("decoder.mid.0", block_in, block_in)?,
            ld.attn("decoder.mid.1", block_in)?,
            ld.res("decoder.mid.2", block_in, block_in)?,
        );
        let mut levels = Vec::with_capacity(nl);
        for (i, lvl) in (0..nl).rev().enumerate() {
            let block_out = cfg.ch * mult[lvl];
            let mut res = Vec::new();
            let mut attn = Vec::new();
            for j in 0..=cfg.num_res_blocks {
                res.push(ld.res(
                    &format!("decoder.conv_blocks.{i}.res.{j}"),
                    block_in,
                    block_out,
                )?);
                block_in = block_out;
                if lvl == nl - 1 {
                    attn.push(ld.attn(&format!("decoder.conv_blocks.{i}.attn.{j}"), block_in)?);
                }
            }
            let up = if lvl != 0 {
                Some(ld.conv(
                    &format!("decoder.conv_blocks.{i}.upsample.conv"),
                    block_in,
                    block_in,
                    3,
                )?)
            } else {
                None
            };
            levels.push(Level { res, attn, up });
        }
        let norm_out = ld.norm("decoder.norm_out", block_in)?;
        let conv_out = ld.conv("decoder.conv_out", block_in, 3, 3)?;
        for name in st.names() {
            if (name.starts_with("decoder.") || name.starts_with("post_quant_conv."))
                && !ld.seen.contains(name)
            {
                return Err(ModelError::UnexpectedTensor {
                    path: st.path().to_path_buf(),
                    name: name.to_string(),
                });
            }
        }
        Ok(VqDecoder {
            c: c.clone(),
            cfg: cfg.clone(),
            codebook,
            raw_codebook,
            post_quant,
            conv_in,
            mid,
            levels,
            norm_out,
            conv_out,
        })
    }

    /// The config.
    pub fn config(&self) -> &VqConfig {
        &self.cfg
    }

    /// Decodes a raster-order token grid of `rows × cols` codes.
    pub fn decode(&self, codes: &[u32], rows: usize, cols: usize) -> Result<Image> {
        if rows == 0 || cols == 0 || codes.len() != rows * cols {
            return Err(input_err(format!(
                "{} codes for a {rows}x{cols} grid",
                codes.len()
            )));
        }
        let e = self.cfg.codebook_embed_dim;
        let mut z = Vec::with_capacity(codes.len() * e);
        for (i, &t) in codes.iter().enumerate() {
            if t as usize >= self.cfg.codebook_size {
                return Err(input_err(format!(
                    "code {t} at {i} out of range (codebook {})",
                    self.cfg.codebook_size
                )));
            }
            let t = t as usize;
            z.extend_from_slice(&self.codebook[t * e..(t + 1) * e]);
        }
        let f = self.cfg.downsample();
        let (hh, ww) = (rows * f, cols * f);
        let maxc = self
            .cfg
            .decoder_ch_mult
            .iter()
            .map(|m| m * self.cfg.ch)
            .max()
            .unwrap_or(0)
            .max(self.cfg.z_channels);
        // Largest activation: the widest channel count at full resolution is bounded by maxc.
        let cap = hh * ww * maxc;
        let c = &self.c;
        let mut x = c.buf(cap)?;
        let mut t1 = c.buf(cap)?;
        let mut t2 = c.buf(cap)?;
        let mut t3 = c.buf(cap)?;
        let lowest = rows * cols;
        let mut att = c.buf(lowest * lowest)?;
        c.upload(&mut t1, 0, &z)?;
        let (mut h, mut w) = (rows, cols);
        self.conv(&self.post_quant, &t1, h, w, &mut t2);
        self.conv(&self.conv_in, &t2, h, w, &mut x);
        self.res(&self.mid.0, &mut x, h, w, &mut t1, &mut t2, &mut t3);
        self.attn(
            &self.mid.1,
            &mut x,
            h,
            w,
            &mut t1,
            &mut t2,
            &mut t3,
            &mut att,
        );
        self.res(&self.mid.2, &mut x, h, w, &mut t1, &mut t2, &mut t3);
        for lvl in &self.levels {
            for (j, r) in lvl.res.iter().enumerate() {
                self.res(r, &mut x, h, w, &mut t1, &mut t2, &mut t3);
                if let Some(a) = lvl.attn.get(j) {
                    self.attn(a, &mut x, h, w, &mut t1, &mut t2, &mut t3, &mut att);
                }
            }
            if let Some(up) = &lvl.up {
                let ch = up.cin;
                c.upsample2x(&x, h, w, ch, &mut t1);
                h *= 2;
                w *= 2;
                self.conv(up, &t1, h, w, &mut x);
            }
        }
        let ch = self.conv_out.cin;
        c.group_norm(
            &x,
            h * w,
            ch,
            32,
            &self.norm_out.g,
            &self.norm_out.b,
            1e-6,
            true,
            &mut t1,
        );
        self.conv(&self.conv_out, &t1, h, w, &mut t2);
        let mut hwc = vec![0f32; h * w * 3];
        c.download(&t2, 0, &mut hwc)?;
        let n = h * w;
        let mut chw = vec![0f32; 3 * n];
        for p in 0..n {
            for k in 0..3 {
                chw[k * n + p] = hwc[3 * p + k];
            }
        }
        Ok(Image {
            height: h,
            width: w,
            chw,
        })
    }

    fn conv(&self, cv: &Conv<C>, x: &C::Buf, h: usize, w: usize, out: &mut C::Buf) {
        self.c
            .conv2d(x, h, w, cv.cin, &cv.w, Some(&cv.b), cv.cout, cv.k, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn res(
        &self,
        r: &Res<C>,
        x: &mut C::Buf,
        h: usize,
        w: usize,
        t1: &mut C::Buf,
        t2: &mut C::Buf,
        t3: &mut C::Buf,
    ) {
        let c = &self.c;
        let p = h * w;
        let (cin, cout) = (r.conv1.cin, r.conv1.cout);
        c.group_norm(x, p, cin, 32, &r.norm1.g, &r.norm1.b, 1e-6, true, t1);
        self.conv(&r.conv1, t1, h, w, t2);
        c.group_norm(t2, p, cout, 32, &r.norm2.g, &r.norm2.b, 1e-6, true, t1);
        self.conv(&r.conv2, t1, h, w, t2);
        if let Some(nin) = &r.nin {
            self.conv(nin, x, h, w, t3);
            c.add_assign(t3, t2, p * cout);
            std::mem::swap(x, t3);
        } else {
            c.add_assign(x, t2, p * cout);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attn(
        &self,
        a: &Attn<C>,
        x: &mut C::Buf,
        h: usize,
        w: usize,
        t1: &mut C::Buf,
        t2: &mut C::Buf,
        t3: &mut C::Buf,
        att: &mut C::Buf,
    ) {
        let c = &self.c;
        let p = h * w;
        let ch = a.q.cin;
        c.group_norm(x, p, ch, 32, &a.norm.g, &a.norm.b, 1e-6, false, t1);
        self.conv(&a.q, t1, h, w, t2);
        self.conv(&a.k, t1, h, w, t3);
        c.matmul_nt(t2, p, t3, p, ch, 1.0 / (ch as f32).sqrt(), att);
        c.softmax_rows(att, p, p);
        self.conv(&a.v, t1, h, w, t2);
        c.transpose(t2, p, ch, t3);
        c.matmul_nt(att, p, t3, ch, p, 1.0, t1);
        self.conv(&a.proj, t1, h, w, t2);
        c.add_assign(x, t2, p * ch);
    }
}
