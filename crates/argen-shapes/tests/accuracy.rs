//! Acceptance: the scorer against the ground-truth oracle on held-out rendered scenes.
//!
//! Clean renders: ≥ 99% on 1000 scenes for every category verdict, for alignment and for the
//! possible/impossible verdict on partial canvases with 16, 32 and 48 of 64 rows known
//! (measured: 99.94–100% per category, 99.98–100% on partial canvases; the full table comes
//! from `shapes-scorer-eval` (src/bin)). Degraded renders (VQ-like artefacts) on 200 scenes each,
//! with bounds a little under the measured values so that a regression fails.

use argen_shapes::degrade::Degradation;
use argen_shapes::eval::{evaluate, EvalConfig, EvalReport};
use argen_shapes::export::SPLIT_TEST;
use argen_shapes::{Category, GenConfig};

fn run(scenes: usize, degradation: Option<Degradation>) -> EvalReport {
    let cfg = EvalConfig {
        scenes,
        first_seed: SPLIT_TEST,
        degradation,
        images: None,
        partial_rows: vec![16, 32, 48],
        gen: GenConfig::default(),
    };
    evaluate(&cfg).expect("evaluation runs")
}

fn check(rep: &EvalReport, full_min: f64, partial_min: f64, what: &str) {
    let table = rep.table();
    for c in Category::ALL {
        let t = rep.category(c);
        assert!(t.correct + t.wrong > 0);
        assert!(
            t.accuracy() >= full_min,
            "{what}: {c} accuracy {:.4} < {full_min}\n{table}",
            t.accuracy()
        );
    }
    for (case, t) in &rep.aligned {
        assert!(
            t.accuracy() >= full_min,
            "{what}: alignment on {} {:.4} < {full_min}\n{table}",
            case.name(),
            t.accuracy()
        );
    }
    for rows in [16, 32, 48] {
        let t = rep.partial_rows(rows);
        assert!(
            t.accuracy() >= partial_min,
            "{what}: partial {rows} rows {:.4} < {partial_min}\n{table}",
            t.accuracy()
        );
        // Ambiguous ground truth must stay rare, or the accuracy would mean little.
        assert!(
            t.ambiguous * 20 < t.correct + t.wrong,
            "{what}: {rows} rows\n{table}"
        );
    }
}

#[test]
fn clean_renders_1000_held_out_scenes() {
    let rep = run(1000, None);
    assert!(rep.prompts > 10_000);
    check(&rep, 0.99, 0.99, "clean");
    assert!(rep.objects.accuracy() >= 0.99, "{}", rep.table());
}

#[test]
fn blurred_renders() {
    let rep = run(200, Some(Degradation::Blur(1.0)));
    check(&rep, 0.99, 0.99, "blur 1.0");
}

#[test]
fn noisy_and_colour_shifted_renders() {
    let rep = run(200, Some(Degradation::Noise(12.0)));
    check(&rep, 0.99, 0.99, "noise 12");
    let rep = run(200, Some(Degradation::ColourJitter(0.12)));
    check(&rep, 0.99, 0.99, "jitter 0.12");
}

#[test]
fn vq_like_renders() {
    // Blur 0.8 + JPEG q50 (4:2:0) + jitter 0.08 + noise 6: small circles turn square-ish in
    // 16×16 chroma blocks; measured ≈ 94–99% per category.
    let rep = run(200, Some(Degradation::vq_like()));
    check(&rep, 0.92, 0.96, "vq-like");
}

#[test]
fn images_from_a_directory_replace_the_renders() {
    // The renders written as PNGs and read back give the very same report; a missing image is
    // an error naming the file.
    let dir = std::env::temp_dir().join(format!("argen-shapes-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gen = GenConfig::default();
    for i in 0..20u64 {
        let scene = argen_shapes::Scene::generate(SPLIT_TEST + i, &gen).unwrap();
        argen_shapes::render(&scene)
            .save_png(&dir.join(format!("{i:06}.png")))
            .unwrap();
    }
    let cfg = |scenes, images| EvalConfig {
        scenes,
        first_seed: SPLIT_TEST,
        degradation: None,
        images,
        partial_rows: vec![16, 32],
        gen: GenConfig::default(),
    };
    let from_files = evaluate(&cfg(20, Some(dir.clone()))).unwrap();
    let rendered = evaluate(&cfg(20, None)).unwrap();
    assert_eq!(from_files.to_json(), rendered.to_json());
    assert!(from_files.prompts > 100);
    let err = evaluate(&cfg(21, Some(dir.clone())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("000020.png"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
