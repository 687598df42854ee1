//! Writes a ShapesWorld data set for the Python trainer (format: `argen_shapes::export`).
//!
//! ```text
//! shapes-export --out DIR --count N [--split train|val|test | --first-seed S]
//!               [--variant V] [--size PX] [--preview K]
//! ```
//! `--preview K` also writes the first K images as PNGs (`DIR/preview/000000.png`, ...).

use std::path::PathBuf;
use std::process::ExitCode;

use argen_shapes::export::{export, ExportSpec, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL};
use argen_shapes::{render, GenConfig, Scene};

const USAGE: &str = "usage: shapes-export --out DIR --count N [--split train|val|test | --first-seed S] [--variant V] [--size PX] [--preview K]";

fn parse_args() -> Result<(ExportSpec, usize), String> {
    let mut out = None;
    let mut count = None;
    let mut first_seed = SPLIT_TRAIN;
    let mut variant = 0;
    let mut size = 64;
    let mut preview = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a non-negative integer"))
        };
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--count" => count = Some(num("--count", value("--count")?)? as usize),
            "--first-seed" => first_seed = num("--first-seed", value("--first-seed")?)?,
            "--split" => {
                first_seed = match value("--split")?.as_str() {
                    "train" => SPLIT_TRAIN,
                    "val" => SPLIT_VAL,
                    "test" => SPLIT_TEST,
                    other => return Err(format!("--split: {other:?} is not train, val or test")),
                }
            }
            "--variant" => variant = num("--variant", value("--variant")?)?,
            "--size" => size = num("--size", value("--size")?)? as usize,
            "--preview" => preview = num("--preview", value("--preview")?)? as usize,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let dir = out.ok_or("--out is required")?;
    let count = count.ok_or("--count is required")?;
    Ok((
        ExportSpec {
            dir,
            first_seed,
            count,
            variant,
            gen: GenConfig::with_size(size),
        },
        preview,
    ))
}

fn main() -> ExitCode {
    let (spec, preview) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = export(&spec) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let pdir = spec.dir.join("preview");
    for i in 0..preview.min(spec.count) {
        let seed = spec.first_seed.wrapping_add(i as u64);
        let res = std::fs::create_dir_all(&pdir)
            .map_err(|e| format!("{}: {e}", pdir.display()))
            .and_then(|_| Scene::generate(seed, &spec.gen).map_err(|e| e.to_string()))
            .and_then(|s| {
                render(&s)
                    .save_png(&pdir.join(format!("{i:06}.png")))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = res {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "wrote {} scenes (seeds {}..) to {}",
        spec.count,
        spec.first_seed,
        spec.dir.display()
    );
    ExitCode::SUCCESS
}
