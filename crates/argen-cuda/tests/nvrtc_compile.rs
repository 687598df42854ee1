//! Compiles the kernel program with NVRTC for every supported architecture (no GPU needed) and
//! fails on any error or warning. Skips with a message when libnvrtc is absent;
//! `ARGEN_REQUIRE_NVRTC=1` makes absence a failure (CI sets it, with the PyPI wheel's library
//! folder in `ARGEN_CUDA_LIB_DIR`).

use argen_cuda::cuda::{compile_program, compile_source, find_library, nvrtc_version, CudaLibrary};
use argen_cuda::cuda_exec::CONVERT_SOURCE;
use argen_cuda::kernels::nvrtc_options;
use argen_cuda::ptx_cache::{cache_key, KeyParts, Origin, PtxCache};

/// Xavier (sm_72), Orin (sm_87), Ada (sm_89), Hopper (sm_90).
const ARCHS: [&str; 4] = ["sm_72", "sm_87", "sm_89", "sm_90"];

/// Whether NVRTC is present; prints the skip otherwise (a failure under `ARGEN_REQUIRE_NVRTC=1`).
fn nvrtc_present() -> bool {
    if let Err(e) = find_library(CudaLibrary::Nvrtc) {
        if std::env::var("ARGEN_REQUIRE_NVRTC").as_deref() == Ok("1") {
            panic!("ARGEN_REQUIRE_NVRTC=1 but {e}");
        }
        eprintln!("SKIPPED: {e}; pip install nvidia-cuda-nvrtc-cu12 and set ARGEN_CUDA_LIB_DIR");
        return false;
    }
    true
}

#[test]
fn every_kernel_compiles_without_warnings_for_every_arch() {
    if !nvrtc_present() {
        return;
    }
    for arch in ARCHS {
        let ptx = compile_program(arch).unwrap_or_else(|e| panic!("{arch}: {e}\n{e:?}"));
        for k in argen_cuda::kernels::Kernel::ALL {
            assert!(
                ptx.contains(&format!(".entry {}", k.name())),
                "{arch}: PTX lacks {}",
                k.name()
            );
        }
        // Contraction off: no fused multiply-add in any kernel.
        assert!(!ptx.contains("fma.rn.f32"), "{arch}: PTX contains f32 FMA");
        assert!(!ptx.contains("fma.rn.f64"), "{arch}: PTX contains f64 FMA");
    }
}

#[test]
fn probe_without_a_gpu_is_a_typed_error() {
    // On machines without the driver this must be LibraryNotFound (never a panic); with a GPU
    // it describes the device.
    match argen_cuda::probe(0) {
        Ok(info) => assert!(info.count >= 1),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "one-line message: {msg}"
            );
        }
    }
}

/// The executor's activation-conversion kernels compile (NVRTC builds a CUBIN for a real
/// architecture, so the inline `cvt.rn.f16.f32` is assembled too), and a second lookup through
/// the PTX cache returns the stored PTX without compiling.
#[test]
fn conversion_kernels_compile_and_cache() {
    if !nvrtc_present() {
        return;
    }
    let version = nvrtc_version().unwrap();
    assert!(version.0 >= 11, "NVRTC {version:?}");
    let dir = std::env::temp_dir().join(format!("argen-nvrtc-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = PtxCache::open(Some(dir.clone()));
    for arch in ARCHS {
        let opts = nvrtc_options(arch);
        let key = cache_key(&KeyParts {
            source: CONVERT_SOURCE,
            options: &opts,
            arch,
            nvrtc_version: version,
            argen_version: env!("CARGO_PKG_VERSION"),
        });
        let first = cache
            .get_or_compile(&key, || compile_source(CONVERT_SOURCE, arch))
            .unwrap_or_else(|e| panic!("{arch}: {e}\n{e:?}"));
        assert_eq!(first.origin, Origin::Compiled, "{arch}");
        assert!(first.warnings.is_empty(), "{:?}", first.warnings);
        for entry in ["argen_f32_to_f16", "argen_f32_to_bf16"] {
            assert!(
                first.ptx.contains(&format!(".entry {entry}")),
                "{arch}: {entry}"
            );
        }
        assert!(first.ptx.contains("cvt.rn.f16.f32"), "{arch}");
        let second = cache
            .get_or_compile(&key, || panic!("{arch}: must come from the cache"))
            .unwrap();
        assert_eq!((second.origin, &second.ptx), (Origin::Cache, &first.ptx));
    }
    std::fs::remove_dir_all(dir).unwrap();
}
