//! Measures the scorer against the ground-truth oracle on held-out scenes: clean renders,
//! synthetic degradations, or a directory of images standing in for the renders (a VQ
//! tokenizer's reconstructions, written by `tools/shapes/train.py`).
//!
//! ```text
//! shapes-scorer-eval [--scenes N] [--split train|val|test | --first-seed S]
//!                    [--degradation clean|blur|blur2|jpeg75|jpeg50|jpeg30|jitter|noise|vq|all]
//!                    [--images DIR] [--json FILE]
//! ```
//! `--images DIR` judges `DIR/000000.png`, `DIR/000001.png`, … (scene `i` has seed
//! `first_seed + i`) instead of the renders. The table goes to stdout; `--json FILE` also
//! writes the (last) report as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use argen_shapes::degrade::Degradation;
use argen_shapes::eval::{evaluate, EvalConfig};
use argen_shapes::export::{SPLIT_TEST, SPLIT_TRAIN, SPLIT_VAL};
use argen_shapes::GenConfig;

const USAGE: &str = "usage: shapes-scorer-eval [--scenes N] [--split train|val|test | --first-seed S] \
[--degradation clean|blur|blur2|jpeg75|jpeg50|jpeg30|jitter|noise|vq|all] [--images DIR] [--json FILE]";

struct Args {
    scenes: usize,
    first_seed: u64,
    degradation: String,
    images: Option<PathBuf>,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        scenes: 1000,
        first_seed: SPLIT_TEST,
        degradation: "clean".into(),
        images: None,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |name: &str, v: String| -> Result<u64, String> {
            v.parse()
                .map_err(|_| format!("{name}: {v:?} is not a non-negative integer"))
        };
        match arg.as_str() {
            "--scenes" => a.scenes = num("--scenes", value("--scenes")?)? as usize,
            "--first-seed" => a.first_seed = num("--first-seed", value("--first-seed")?)?,
            "--split" => {
                a.first_seed = match value("--split")?.as_str() {
                    "train" => SPLIT_TRAIN,
                    "val" => SPLIT_VAL,
                    "test" => SPLIT_TEST,
                    other => return Err(format!("--split: {other:?} is not train, val or test")),
                }
            }
            "--degradation" => a.degradation = value("--degradation")?,
            "--images" => a.images = Some(PathBuf::from(value("--images")?)),
            "--json" => a.json = Some(PathBuf::from(value("--json")?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.scenes == 0 {
        return Err("--scenes must be at least 1".into());
    }
    Ok(a)
}

fn degradations() -> Vec<(&'static str, Option<Degradation>)> {
    vec![
        ("clean", None),
        ("blur", Some(Degradation::Blur(1.0))),
        ("blur2", Some(Degradation::Blur(2.0))),
        ("jpeg75", Some(Degradation::Jpeg(75))),
        ("jpeg50", Some(Degradation::Jpeg(50))),
        ("jpeg30", Some(Degradation::Jpeg(30))),
        ("jitter", Some(Degradation::ColourJitter(0.12))),
        ("noise", Some(Degradation::Noise(12.0))),
        ("vq", Some(Degradation::vq_like())),
    ]
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<_> = degradations()
        .into_iter()
        .filter(|(n, _)| a.degradation == "all" || a.degradation == *n)
        .collect();
    if chosen.is_empty() {
        eprintln!(
            "error: --degradation {:?} is unknown\n{USAGE}",
            a.degradation
        );
        return ExitCode::from(2);
    }
    for (name, d) in chosen {
        let cfg = EvalConfig {
            scenes: a.scenes,
            first_seed: a.first_seed,
            degradation: d.clone(),
            images: a.images.clone(),
            partial_rows: vec![16, 32, 48],
            gen: GenConfig::default(),
        };
        let rep = match evaluate(&cfg) {
            Ok(rep) => rep,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let source = match &a.images {
            Some(dir) => format!("images from {}", dir.display()),
            None => "renders".into(),
        };
        let dn = d.map(|d| d.name()).unwrap_or_else(|| "none".into());
        println!(
            "== {name} ({dn}), {} held-out scenes, {source} ==",
            a.scenes
        );
        print!("{}", rep.table());
        if let Some(path) = &a.json {
            if let Err(e) = std::fs::write(path, rep.to_json() + "\n") {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
