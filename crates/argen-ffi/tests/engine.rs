//! The high-level C API from Rust: `argen_generate` equals `argen_engine::Engine::generate`
//! (hence the `argen` command) for a method with options and for a JSON configuration, and its
//! errors carry the engine's kind as a status.

use ::argen_engine::{Engine, EngineOptions, Input, Method, MethodOptions, Request, BUNDLED};
use argen_ffi::*;
use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

const PROMPT: &str = "a red circle left of a blue square";

fn last_error() -> String {
    // SAFETY: the thread's last-error text lives until its next argen call.
    unsafe { CStr::from_ptr(argen_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn open() -> *mut argen_engine {
    let dir = CString::new(BUNDLED).unwrap();
    let cfg = argen_engine_config {
        struct_size: size_of::<argen_engine_config>(),
        model_dir: dir.as_ptr(),
        threads: 1,
    };
    let mut e = null_mut();
    // SAFETY: valid config and output.
    let st = unsafe { argen_engine_open(&cfg, &mut e) };
    assert_eq!(st, argen_status::ARGEN_OK);
    e
}

fn request(prompt: &CStr) -> argen_generate_request {
    argen_generate_request {
        struct_size: size_of::<argen_generate_request>(),
        prompt: prompt.as_ptr(),
        class_id: -1,
        method: null(),
        options_json: null(),
        config_json: null(),
        seed: 4,
    }
}

/// Tokens, pixels and stats of a generation, then frees it.
fn take(g: *mut argen_generation) -> (Vec<u32>, Vec<u8>, serde_json::Value) {
    let (mut t, mut n, mut rgb, mut w, mut h, mut js) = (null(), 0, null(), 0, 0, null());
    // SAFETY: a live generation; the pointers stay valid until it is freed below.
    unsafe {
        assert_eq!(
            argen_generation_tokens(g, &mut t, &mut n),
            argen_status::ARGEN_OK
        );
        assert_eq!(
            argen_generation_image(g, &mut rgb, &mut w, &mut h),
            argen_status::ARGEN_OK
        );
        assert_eq!(
            argen_generation_stats_json(g, &mut js),
            argen_status::ARGEN_OK
        );
        let out = (
            std::slice::from_raw_parts(t, n).to_vec(),
            std::slice::from_raw_parts(rgb, w * h * 3).to_vec(),
            serde_json::from_str(CStr::from_ptr(js).to_str().unwrap()).unwrap(),
        );
        assert_eq!(argen_generation_free(g), argen_status::ARGEN_OK);
        out
    }
}

#[test]
fn generate_equals_the_engine_for_options_and_json_configs() {
    let mut engine = Engine::open(BUNDLED, &EngineOptions { threads: 2 }).unwrap();
    let input = Input::Prompt(PROMPT.into());
    let opts = MethodOptions {
        n: 2,
        inner: Some(Method::Sd),
        gamma: 3,
        draft: ::argen_engine::Draft::Chain,
        ..Default::default()
    };
    let dc = engine
        .decoder_config(Method::Bon, &opts, 4, &input)
        .unwrap();
    let want = engine.generate(&Request::new(input, dc)).unwrap();

    let e = open();
    let prompt = CString::new(PROMPT).unwrap();
    let method = CString::new("bon").unwrap();
    let options = CString::new(r#"{"n": 2, "inner": "sd", "gamma": 3, "draft": "chain"}"#).unwrap();
    let mut r = request(&prompt);
    r.method = method.as_ptr();
    r.options_json = options.as_ptr();
    let mut g = null_mut();
    // SAFETY: valid handles and request.
    let st = unsafe { argen_generate(e, &r, &mut g) };
    assert_eq!(st, argen_status::ARGEN_OK);
    let (tokens, rgb, stats) = take(g);
    assert_eq!(tokens, want.tokens);
    assert_eq!(rgb, want.image.as_ref().unwrap().rgb);
    assert_eq!(stats["config"], ::argen_engine::config_json(&dc).unwrap());

    // The recorded configuration replays the same image (its seed replaced by the request's).
    let config = CString::new(stats["config"].to_string()).unwrap();
    let mut r2 = request(&prompt);
    r2.config_json = config.as_ptr();
    // SAFETY: as above.
    let st = unsafe { argen_generate(e, &r2, &mut g) };
    assert_eq!(st, argen_status::ARGEN_OK);
    assert_eq!(take(g).0, want.tokens);
    r2.seed = 5;
    // SAFETY: as above.
    let st = unsafe { argen_generate(e, &r2, &mut g) };
    assert_eq!(st, argen_status::ARGEN_OK);
    assert_eq!(take(g).2["seed"], 5);
    // SAFETY: a live engine.
    assert_eq!(unsafe { argen_engine_free(e) }, argen_status::ARGEN_OK);
}

#[test]
fn errors_map_engine_kinds_to_statuses() {
    let e = open();
    let mut g = null_mut();
    let elephant = CString::new("a purple elephant").unwrap();
    let r = request(&elephant);
    // SAFETY: valid handles and request.
    let st = unsafe { argen_generate(e, &r, &mut g) };
    assert_eq!(st, argen_status::ARGEN_ERR_INVALID_ARGUMENT);
    let msg = last_error();
    assert!(msg.starts_with("argen_generate: ") && msg.contains("elephant") && !msg.contains('\n'));
    assert!(g.is_null());

    // A directory without the drafter: vanilla works, speculative methods are a model error.
    let dir = std::env::temp_dir().join(format!("argen-ffi-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["gpt.json", "gpt.safetensors", "vq.json", "vq.safetensors"] {
        std::fs::copy(std::path::Path::new(BUNDLED).join(f), dir.join(f)).unwrap();
    }
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let cfg = argen_engine_config {
        struct_size: size_of::<argen_engine_config>(),
        model_dir: path.as_ptr(),
        threads: 1,
    };
    let mut e2 = null_mut();
    // SAFETY: valid config and output.
    let st = unsafe { argen_engine_open(&cfg, &mut e2) };
    assert_eq!(st, argen_status::ARGEN_OK);
    let prompt = CString::new(PROMPT).unwrap();
    let sd = CString::new("sd").unwrap();
    let mut r = request(&prompt);
    r.method = sd.as_ptr();
    // SAFETY: valid handles and request.
    let st = unsafe { argen_generate(e2, &r, &mut g) };
    assert_eq!(st, argen_status::ARGEN_ERR_MODEL, "{}", last_error());
    assert!(last_error().contains("drafter"));
    // SAFETY: live engines.
    unsafe {
        assert_eq!(argen_engine_free(e2), argen_status::ARGEN_OK);
        assert_eq!(argen_engine_free(e), argen_status::ARGEN_OK);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // SAFETY: static strings.
    let name = unsafe { CStr::from_ptr(argen_status_name(argen_status::ARGEN_ERR_MODEL as i32)) };
    assert_eq!(name.to_str().unwrap(), "ARGEN_ERR_MODEL");
}
