use argen_shapes::degrade::Degradation;
use argen_shapes::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let seed: u64 = a[1].parse().unwrap();
    let s = Scene::generate(seed, &GenConfig::default()).unwrap();
    let mut img = render(&s);
    if a.len() > 2 {
        img = Degradation::Jpeg(a[2].parse().unwrap()).apply(&img, seed);
    }
    for o in &s.objects {
        println!("{o:?}");
    }
    let g = perceive(&img, 64, &ScorerConfig::for_canvas(64));
    for d in &g.objects {
        println!("{d:?}");
    }
    for y in 0..64 {
        let mut l = String::new();
        for x in 0..64 {
            let p = img.get(x, y);
            let c = p.iter().max().unwrap() - p.iter().min().unwrap();
            l.push(if c >= 64 {
                '#'
            } else if c >= 40 {
                '+'
            } else if c >= 25 {
                '.'
            } else {
                ' '
            });
        }
        println!("{l}");
    }
    img.save_png(std::path::Path::new("/tmp/dbg.png")).unwrap();
}
