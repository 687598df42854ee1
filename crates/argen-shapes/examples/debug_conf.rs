use argen_shapes::degrade::Degradation;
use argen_shapes::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let d = match a[1].as_str() {
        "blur2" => Degradation::Blur(2.0),
        "jpeg75" => Degradation::Jpeg(75),
        "jpeg50" => Degradation::Jpeg(50),
        _ => Degradation::Blur(0.0),
    };
    let cfg = ScorerConfig::for_canvas(64);
    let mut extra = 0;
    let mut missing = 0;
    let mut wrong_shape = std::collections::BTreeMap::new();
    let mut wrong_col = 0;
    let mut ok = 0;
    for i in 0..200u64 {
        let seed = (2u64 << 40) + i;
        let s = Scene::generate(seed, &GenConfig::default()).unwrap();
        let img = d.apply(&render(&s), seed);
        let g = perceive(&img, 64, &cfg);
        if g.objects.len() > s.objects.len() {
            extra += g.objects.len() - s.objects.len();
            if extra < 5 {
                println!(
                    "seed {seed} extra: {:?}",
                    g.objects
                        .iter()
                        .map(|d| (d.area, d.bbox, d.colour))
                        .collect::<Vec<_>>()
                );
            }
        }
        for o in &s.objects {
            match g
                .objects
                .iter()
                .find(|d| (d.cx - o.cx).abs() < 2.0 && (d.cy - o.cy).abs() < 2.0)
            {
                None => missing += 1,
                Some(det) => {
                    if det.colour != o.colour {
                        wrong_col += 1;
                    }
                    if det.shape != Some(o.shape) {
                        *wrong_shape.entry((o.shape, det.shape)).or_insert(0) += 1;
                        if wrong_shape.values().sum::<i32>() < 6 {
                            println!(
                                "seed {seed} {:?} size {:.1} -> {:?} iou {:.2} bbox {:?}",
                                o.shape, o.size, det.shape, det.shape_iou, det.bbox
                            );
                        }
                    } else {
                        ok += 1;
                    }
                }
            }
        }
    }
    println!("ok {ok} extra {extra} missing {missing} wrong colour {wrong_col} wrong shape {wrong_shape:?}");
}
