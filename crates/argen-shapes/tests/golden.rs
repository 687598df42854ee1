//! Golden vectors of the generator (format `shapesworld-export` v1, RNG streams v1): the
//! generator is the single source of truth of every exported data set, so any change to a
//! scene, an image or a prompt must be deliberate — update these values together with a new
//! export version, never silently.

use argen_shapes::generate::sample_for_scene;
use argen_shapes::{render, vocab, GenConfig, Scene};

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn first_scenes_are_unchanged() {
    let cfg = GenConfig::default();
    let mut got = Vec::new();
    for seed in 0..4 {
        let s = Scene::generate(seed, &cfg).unwrap();
        let img = render(&s);
        let p = sample_for_scene(&s, 0);
        got.push((fnv1a(img.as_raw()), p.to_string()));
    }
    let want: [(u64, &str); 4] = GOLDEN;
    for (i, ((h, p), (wh, wp))) in got.iter().zip(want.iter()).enumerate() {
        assert_eq!(p, wp, "seed {i} prompt");
        assert_eq!(*h, *wh, "seed {i} image hash {h:#x}");
    }
    let ids = vocab::encode(&argen_shapes::Prompt::parse(want[1].1).unwrap());
    assert_eq!(&ids[..4], &[2, 7, 12, 19]);
}

const GOLDEN: [(u64, &str); 4] = [
    (0x33ed_e864_c9e8_8f99, "a blue square, a yellow triangle and a red square"),
    (0xc94a_1c05_c768_7de6, "a green square left of a red square and a red circle"),
    (0x23ff_2bd9_0374_f035, "a square, a circle and a triangle, the yellow triangle on the top, the yellow circle on the bottom left"),
    (0xebe2_dd91_808f_5ce1, "a green triangle"),
];
