//! The training-set export read by the Python trainer (the Rust generator is the single source
//! of truth; Python never re-implements the world).
//!
//! # Format `shapesworld-export` version 1
//! A directory holding, for `N` scenes with seeds `first_seed + i` (`i = 0..N`):
//!
//! | file | content |
//! |---|---|
//! | `images.npy` | `uint8`, shape `(N, S, S, 3)`, RGB, row-major (`np.load`) |
//! | `prompt_ids.npy` | `int32`, shape `(N, 36)`: [`crate::vocab::encode`] of each prompt (0 = pad) |
//! | `prompts.txt` | `N` lines: the canonical prompt text of each image |
//! | `scenes.jsonl` | `N` JSON objects, one per line: `index`, `seed`, `prompt`, `tags` (categories exercised), `objects` (`shape`, `colour`, `cx`, `cy`, `size` in pixels; centre of the bounding box, y down) |
//! | `vocab.txt` | the word vocabulary, one word per line, line `i` = id `i` |
//! | `meta.json` | `format`, `version`, `encoding_version`, `count`, `size`, `max_words`, `pad_id`, `first_seed`, `variant`, the generator configuration |
//!
//! Each image's prompt is [`crate::generate::sample_for_scene`]`(scene, variant)`: a true
//! description with its categories tagged. Seeds split the world: training sets start at
//! [`SPLIT_TRAIN`], validation at [`SPLIT_VAL`], held-out test scenes at [`SPLIT_TEST`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::generate::sample_for_scene;
use crate::npy;
use crate::render::render;
use crate::scene::{GenConfig, Scene};
use crate::vocab::{encode, vocab_file, ENCODING_VERSION, MAX_WORDS, PAD};

/// First seed of the training split.
pub const SPLIT_TRAIN: u64 = 0;
/// First seed of the validation split.
pub const SPLIT_VAL: u64 = 1 << 40;
/// First seed of the held-out test split (the scorer's accuracy tests use it).
pub const SPLIT_TEST: u64 = 2 << 40;

/// What to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSpec {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// Seed of the first scene.
    pub first_seed: u64,
    /// Number of scenes.
    pub count: usize,
    /// Prompt variant (see [`sample_for_scene`]).
    pub variant: u64,
    /// The generator configuration.
    pub gen: GenConfig,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    Ok(BufWriter::new(File::create(path).map_err(io_err(path))?))
}

/// JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One scene as a JSON object (the `scenes.jsonl` line, without the newline).
pub fn scene_json(index: usize, scene: &Scene, prompt: &crate::Prompt) -> String {
    let tags: Vec<String> = prompt
        .tags()
        .list()
        .iter()
        .map(|c| json_str(c.name()))
        .collect();
    let objects: Vec<String> = scene
        .objects
        .iter()
        .map(|o| {
            format!(
                "{{\"shape\":{},\"colour\":{},\"cx\":{},\"cy\":{},\"size\":{}}}",
                json_str(o.shape.word()),
                json_str(o.colour.word()),
                o.cx,
                o.cy,
                o.size
            )
        })
        .collect();
    format!(
        "{{\"index\":{index},\"seed\":{},\"prompt\":{},\"tags\":[{}],\"objects\":[{}]}}",
        scene.seed,
        json_str(&prompt.to_string()),
        tags.join(","),
        objects.join(",")
    )
}

/// Writes the data set described by `spec` (format in the module doc).
pub fn export(spec: &ExportSpec) -> Result<()> {
    spec.gen.validate()?;
    let dir = &spec.dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let s = spec.gen.size;
    let n = spec.count;
    let p_img = dir.join("images.npy");
    let p_ids = dir.join("prompt_ids.npy");
    let p_txt = dir.join("prompts.txt");
    let p_jsonl = dir.join("scenes.jsonl");
    let mut images = create(&p_img)?;
    let mut ids = create(&p_ids)?;
    let mut txt = create(&p_txt)?;
    let mut jsonl = create(&p_jsonl)?;
    npy::write_header(&mut images, "|u1", &[n, s, s, 3]).map_err(io_err(&p_img))?;
    npy::write_header(&mut ids, "<i4", &[n, MAX_WORDS]).map_err(io_err(&p_ids))?;
    for i in 0..n {
        let seed = spec.first_seed.wrapping_add(i as u64);
        let scene = Scene::generate(seed, &spec.gen)?;
        let img = render(&scene);
        let prompt = sample_for_scene(&scene, spec.variant);
        images.write_all(img.as_raw()).map_err(io_err(&p_img))?;
        for id in encode(&prompt) {
            ids.write_all(&(id as i32).to_le_bytes())
                .map_err(io_err(&p_ids))?;
        }
        writeln!(txt, "{prompt}").map_err(io_err(&p_txt))?;
        writeln!(jsonl, "{}", scene_json(i, &scene, &prompt)).map_err(io_err(&p_jsonl))?;
    }
    images.flush().map_err(io_err(&p_img))?;
    ids.flush().map_err(io_err(&p_ids))?;
    txt.flush().map_err(io_err(&p_txt))?;
    jsonl.flush().map_err(io_err(&p_jsonl))?;
    let p_vocab = dir.join("vocab.txt");
    std::fs::write(&p_vocab, vocab_file()).map_err(io_err(&p_vocab))?;
    let g = &spec.gen;
    let meta = format!(
        "{{\n  \"format\": \"shapesworld-export\",\n  \"version\": 1,\n  \"encoding_version\": {ENCODING_VERSION},\n  \
         \"count\": {n},\n  \"size\": {s},\n  \"channels\": 3,\n  \"max_words\": {MAX_WORDS},\n  \"pad_id\": {PAD},\n  \
         \"first_seed\": {},\n  \"variant\": {},\n  \"gen_config\": {{\"size\": {}, \"min_objects\": {}, \"max_objects\": {}, \
         \"min_object_frac\": {}, \"max_object_frac\": {}, \"min_gap_frac\": {}, \"texture_amplitude\": [{}, {}], \
         \"pixel_noise\": [{}, {}]}}\n}}\n",
        spec.first_seed,
        spec.variant,
        g.size,
        g.min_objects,
        g.max_objects,
        g.min_object_frac,
        g.max_object_frac,
        g.min_gap_frac,
        g.texture_amplitude.0,
        g.texture_amplitude.1,
        g.pixel_noise.0,
        g.pixel_noise.1
    );
    let p_meta = dir.join("meta.json");
    std::fs::write(&p_meta, meta).map_err(io_err(&p_meta))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_writes_consistent_files() {
        let dir = std::env::temp_dir().join(format!("argen-shapes-export-{}", std::process::id()));
        let spec = ExportSpec {
            dir: dir.clone(),
            first_seed: 5,
            count: 3,
            variant: 0,
            gen: GenConfig::default(),
        };
        export(&spec).unwrap();
        let img = std::fs::read(dir.join("images.npy")).unwrap();
        let hl = u16::from_le_bytes([img[8], img[9]]) as usize;
        assert_eq!(img.len(), 10 + hl + 3 * 64 * 64 * 3);
        let scene = Scene::generate(6, &GenConfig::default()).unwrap();
        let want = render(&scene);
        let off = 10 + hl + 64 * 64 * 3;
        assert_eq!(&img[off..off + 64 * 64 * 3], want.as_raw());
        let ids = std::fs::read(dir.join("prompt_ids.npy")).unwrap();
        let hl = u16::from_le_bytes([ids[8], ids[9]]) as usize;
        assert_eq!(ids.len(), 10 + hl + 3 * MAX_WORDS * 4);
        let prompts = std::fs::read_to_string(dir.join("prompts.txt")).unwrap();
        let lines: Vec<&str> = prompts.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], sample_for_scene(&scene, 0).to_string());
        let jsonl = std::fs::read_to_string(dir.join("scenes.jsonl")).unwrap();
        assert!(jsonl
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("{\"index\":1,\"seed\":6,"));
        let vocab = std::fs::read_to_string(dir.join("vocab.txt")).unwrap();
        assert_eq!(vocab.lines().count(), crate::vocab::VOCAB.len());
        let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
        assert!(meta.contains("\"count\": 3"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
