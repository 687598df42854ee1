use argen_shapes::degrade::Degradation;
use argen_shapes::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let d = match a[1].as_str() {
        "blur2" => Degradation::Blur(2.0),
        "jpeg75" => Degradation::Jpeg(75),
        "jpeg50" => Degradation::Jpeg(50),
        "jpeg30" => Degradation::Jpeg(30),
        "vq" => Degradation::vq_like(),
        _ => Degradation::Blur(0.0),
    };
    let cfg = ScorerConfig::for_canvas(64);
    let mut st: std::collections::BTreeMap<Shape, Vec<(f64, f64)>> = Default::default();
    for i in 0..300u64 {
        let seed = (2u64 << 40) + i;
        let s = Scene::generate(seed, &GenConfig::default()).unwrap();
        let img = d.apply(&render(&s), seed);
        let g = perceive(&img, 64, &cfg);
        for o in &s.objects {
            if let Some(det) = g
                .objects
                .iter()
                .find(|d| (d.cx - o.cx).abs() < 2.0 && (d.cy - o.cy).abs() < 2.0)
            {
                st.entry(o.shape)
                    .or_default()
                    .push((det.skew, det.dependence));
            }
        }
    }
    for (sh, v) in st {
        let mut sk: Vec<f64> = v.iter().map(|x| x.0).collect();
        sk.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut de: Vec<f64> = v.iter().map(|x| x.1).collect();
        de.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |v: &Vec<f64>, p: f64| v[((v.len() - 1) as f64 * p) as usize];
        println!("{sh:?} n={} skew min {:.3} p1 {:.3} med {:.3} p99 {:.3} max {:.3} | dep min {:.3} p1 {:.3} med {:.3} p99 {:.3} max {:.3}", v.len(), sk[0], q(&sk,0.01), q(&sk,0.5), q(&sk,0.99), sk[sk.len()-1], de[0], q(&de,0.01), q(&de,0.5), q(&de,0.99), de[de.len()-1]);
    }
}
