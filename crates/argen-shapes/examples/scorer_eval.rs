//! Measures the scorer against the ground-truth oracle on held-out scenes, clean and degraded.
//!
//! `cargo run --release -p argen-shapes --example scorer_eval -- [SCENES] [clean|blur|jpeg|jitter|noise|vq|all]`

use argen_shapes::degrade::Degradation;
use argen_shapes::eval::{evaluate, EvalConfig};
use argen_shapes::export::SPLIT_TEST;
use argen_shapes::GenConfig;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scenes = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let which = args.get(2).map(String::as_str).unwrap_or("all");
    let all: Vec<(&str, Option<Degradation>)> = vec![
        ("clean", None),
        ("blur", Some(Degradation::Blur(1.0))),
        ("blur2", Some(Degradation::Blur(2.0))),
        ("jpeg75", Some(Degradation::Jpeg(75))),
        ("jpeg50", Some(Degradation::Jpeg(50))),
        ("jpeg30", Some(Degradation::Jpeg(30))),
        ("jitter", Some(Degradation::ColourJitter(0.12))),
        ("noise", Some(Degradation::Noise(12.0))),
        ("vq", Some(Degradation::vq_like())),
    ];
    for (name, d) in all {
        if which != "all" && which != name {
            continue;
        }
        let cfg = EvalConfig {
            scenes,
            first_seed: SPLIT_TEST,
            degradation: d.clone(),
            partial_rows: vec![16, 32, 48],
            gen: GenConfig::default(),
        };
        match evaluate(&cfg) {
            Ok(rep) => {
                let dn = d.map(|d| d.name()).unwrap_or_else(|| "none".into());
                println!("== {name} ({dn}), {scenes} held-out scenes ==");
                print!("{}", rep.table());
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
}
