//! CUDA: library discovery (Jetson's Tegra folders included), the device probe, and NVRTC
//! compilation of the kernel program with the determinism flags.
//!
//! cudarc loads its libraries lazily and panics if one is missing, so nothing here touches
//! cudarc before [`find_library`] has found and pre-loaded the library by absolute path: glibc's
//! `dlopen` then resolves cudarc's bare-name lookups (`libcuda.so.1`, `libnvrtc.so.12`, …) to the
//! already loaded object by its soname, which also makes libraries in folders outside the
//! loader's path (JetPack's `/usr/lib/aarch64-linux-gnu/tegra`) usable without
//! `LD_LIBRARY_PATH`. No `nvidia-smi` is used anywhere.
//!
//! The executor that runs launches through cudarc is [`crate::cuda_exec::CudaExecutor`]; the
//! PTX disk cache is [`crate::ptx_cache`].

use crate::error::{Error, Result};
use crate::kernels::{nvrtc_options, program_source, significant_nvrtc_log};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Mutex;

/// Folders searched after the loader's own path: CUDA toolkit installs and JetPack's Tegra
/// library folders. On Jetson the driver (`libcuda.so.1`) lives in
/// `/usr/lib/aarch64-linux-gnu/tegra` (JetPack 4/5; L4T r32–r35) or
/// `/usr/lib/aarch64-linux-gnu/nvidia` (JetPack 6; L4T r36), and NVRTC/cuBLAS in
/// `/usr/local/cuda/targets/aarch64-linux/lib` (= `/usr/local/cuda/lib64`).
pub const EXTRA_LIBRARY_DIRS: &[&str] = &[
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/aarch64-linux/lib",
    "/usr/local/cuda/targets/sbsa-linux/lib",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/lib/aarch64-linux-gnu/tegra",
    "/usr/lib/aarch64-linux-gnu/nvidia",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
];

/// The folders [`find_library`] searches after the loader's own path, in order, given the
/// values of `ARGEN_CUDA_LIB_DIR` and `CUDA_PATH` (empty values count as unset).
pub fn library_search_dirs(argen_lib_dir: Option<&str>, cuda_path: Option<&str>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = argen_lib_dir.filter(|d| !d.is_empty()) {
        dirs.push(d.into());
    }
    if let Some(d) = cuda_path.filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d).join("lib64"));
    }
    for d in EXTRA_LIBRARY_DIRS {
        let d = PathBuf::from(d);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// A library the backend needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CudaLibrary {
    /// `libcuda` (the driver).
    Driver,
    /// `libnvrtc` (run-time compiler).
    Nvrtc,
    /// `libcublas`.
    Cublas,
}

impl CudaLibrary {
    /// Human name for messages.
    pub const fn what(self) -> &'static str {
        match self {
            CudaLibrary::Driver => "CUDA driver",
            CudaLibrary::Nvrtc => "NVRTC",
            CudaLibrary::Cublas => "cuBLAS",
        }
    }

    /// File names tried, in order (the sonames cudarc asks for come first).
    pub fn names(self) -> Vec<String> {
        let base = match self {
            CudaLibrary::Driver => return vec!["libcuda.so.1".into(), "libcuda.so".into()],
            CudaLibrary::Nvrtc => "libnvrtc.so",
            CudaLibrary::Cublas => "libcublas.so",
        };
        let mut v = vec![format!("{base}.13"), format!("{base}.12"), base.to_string()];
        v.dedup();
        v
    }
}

/// Libraries loaded so far (kept loaded for the process's lifetime, see the module docs).
static LOADED: Mutex<Vec<(String, libloading::Library)>> = Mutex::new(Vec::new());

/// Finds and loads `lib`: first by name on the loader's path, then in `$ARGEN_CUDA_LIB_DIR`,
/// `$CUDA_PATH/lib64` and [`EXTRA_LIBRARY_DIRS`]. Returns the name or path that loaded.
pub fn find_library(lib: CudaLibrary) -> Result<String> {
    let names = lib.names();
    let dirs = library_search_dirs(
        std::env::var("ARGEN_CUDA_LIB_DIR").ok().as_deref(),
        std::env::var("CUDA_PATH").ok().as_deref(),
    );
    let mut loaded = LOADED.lock().map_err(|_| Error::Driver {
        call: "library table",
        detail: "poisoned lock".into(),
    })?;
    let mut candidates: Vec<String> = names.clone();
    for d in &dirs {
        for n in &names {
            let p = d.join(n);
            if p.exists() {
                candidates.push(p.to_string_lossy().into_owned());
            }
        }
    }
    for c in candidates {
        if let Some((name, _)) = loaded.iter().find(|(n, _)| *n == c) {
            return Ok(name.clone());
        }
        // SAFETY: loading a vendor library runs its initialisers; these are the libraries the
        // backend is about to use anyway, and they are never unloaded.
        if let Ok(l) = unsafe { libloading::Library::new(&c) } {
            loaded.push((c.clone(), l));
            return Ok(c);
        }
    }
    Err(Error::LibraryNotFound {
        what: lib.what(),
        names,
        searched: dirs.iter().map(|d| d.display().to_string()).collect(),
    })
}

/// What [`probe`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// Device index.
    pub index: usize,
    /// Device name.
    pub name: String,
    /// Compute capability `(major, minor)`, e.g. `(8, 7)` for Orin.
    pub compute_capability: (u32, u32),
    /// `CU_DEVICE_ATTRIBUTE_INTEGRATED`: memory shared by CPU and GPU (Jetson).
    pub integrated: bool,
    /// Devices present.
    pub count: usize,
    /// Where the driver, NVRTC and cuBLAS were loaded from.
    pub libraries: [String; 3],
}

impl DeviceInfo {
    /// The NVRTC architecture name, e.g. `sm_87`.
    pub fn arch(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

fn drv(call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> Error {
    move |e| Error::Driver {
        call,
        detail: format!("{e:?}"),
    }
}

/// Checks that the driver, NVRTC and cuBLAS libraries are present and device `index` exists,
/// and describes it. Every failure is a typed error whose message names what is missing.
pub fn probe(index: usize) -> Result<DeviceInfo> {
    let driver = find_library(CudaLibrary::Driver)?;
    let nvrtc = find_library(CudaLibrary::Nvrtc)?;
    let cublas = find_library(CudaLibrary::Cublas)?;
    use cudarc::driver::result as r;
    use cudarc::driver::sys::CUdevice_attribute as A;
    r::init().map_err(|e| Error::NoDevice {
        reason: format!("cuInit failed ({e:?}); is the NVIDIA kernel driver loaded?"),
    })?;
    let count = r::device::get_count().map_err(drv("cuDeviceGetCount"))? as usize;
    if count == 0 {
        return Err(Error::NoDevice {
            reason: "the driver reports 0 devices".into(),
        });
    }
    if index >= count {
        return Err(Error::DeviceOutOfRange { index, count });
    }
    let dev = r::device::get(index as i32).map_err(drv("cuDeviceGet"))?;
    let name = r::device::get_name(dev).map_err(drv("cuDeviceGetName"))?;
    // SAFETY: `dev` is a valid device handle from cuDeviceGet; attributes are plain queries.
    let attr = |a| unsafe { r::device::get_attribute(dev, a) };
    let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .map_err(drv("cuDeviceGetAttribute"))?;
    let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .map_err(drv("cuDeviceGetAttribute"))?;
    let integrated =
        attr(A::CU_DEVICE_ATTRIBUTE_INTEGRATED).map_err(drv("cuDeviceGetAttribute"))? != 0;
    Ok(DeviceInfo {
        index,
        name,
        compute_capability: (major as u32, minor as u32),
        integrated,
        count,
        libraries: [driver, nvrtc, cublas],
    })
}

/// Compiles the kernel program with NVRTC for `arch` (e.g. `sm_87`) with the determinism flags
/// of [`nvrtc_options`]. Errors on a failed compile **and on any warning** (the log is returned
/// in [`Error::Compile`]). Returns the PTX text.
pub fn compile_program(arch: &str) -> Result<String> {
    compile_source(&program_source(), arch)
}

/// The loaded NVRTC's version `(major, minor)` (part of the PTX cache key).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    find_library(CudaLibrary::Nvrtc)?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (above); nvrtcVersion writes two ints through valid pointers.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| Error::Driver {
        call: "nvrtcVersion",
        detail: format!("{e:?}"),
    })?;
    Ok((major, minor))
}

/// The text of an NVRTC output buffer (log or PTX): the C chars up to the first NUL,
/// decoded as UTF-8 with invalid bytes replaced.
fn nul_terminated_text(raw: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles any CUDA C++ `source` like [`compile_program`] (same options, warnings are errors).
pub fn compile_source(source: &str, arch: &str) -> Result<String> {
    find_library(CudaLibrary::Nvrtc)?;
    use cudarc::nvrtc::result as n;
    let src = CString::new(source).map_err(|_| Error::Compile {
        compiler: "NVRTC",
        target: arch.into(),
        log: "kernel source contains a NUL byte".into(),
    })?;
    let name = CString::new("argen.cu").unwrap_or_default();
    let prog = n::create_program(&src, Some(&name)).map_err(|e| Error::Compile {
        compiler: "NVRTC",
        target: arch.into(),
        log: format!("{e:?}"),
    })?;
    let opts = nvrtc_options(arch);
    // SAFETY: `prog` was created above and is destroyed once, below.
    let compiled = unsafe { n::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { n::get_program_log(prog) }
        .ok()
        .map(|raw| nul_terminated_text(&raw))
        .unwrap_or_default();
    let ptx = if compiled.is_ok() {
        // SAFETY: as above; the program compiled.
        unsafe { n::get_ptx(prog) }
            .ok()
            .map(|raw| nul_terminated_text(&raw))
    } else {
        None
    };
    // SAFETY: as above.
    let _ = unsafe { n::destroy_program(prog) };
    match (compiled, ptx) {
        (Ok(()), Some(ptx)) if significant_nvrtc_log(&log).is_empty() => Ok(ptx),
        (Ok(()), Some(_)) => Err(Error::Compile {
            compiler: "NVRTC",
            target: arch.into(),
            log: format!("warnings are errors:\n{log}"),
        }),
        (r, _) => Err(Error::Compile {
            compiler: "NVRTC",
            target: arch.into(),
            log: format!("{r:?}\n{log}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_covers_jetson_and_toolkits_in_order() {
        let dirs = library_search_dirs(None, None);
        let pos = |p: &str| dirs.iter().position(|d| d == &PathBuf::from(p));
        // JetPack 4/5 driver, JetPack 6 driver, JetPack's CUDA toolkit, desktop toolkit.
        for p in [
            "/usr/lib/aarch64-linux-gnu/tegra",
            "/usr/lib/aarch64-linux-gnu/nvidia",
            "/usr/local/cuda/targets/aarch64-linux/lib",
            "/usr/local/cuda/lib64",
            "/usr/lib/x86_64-linux-gnu",
        ] {
            assert!(pos(p).is_some(), "{p} missing from {dirs:?}");
        }
        // The specific Tegra folders come before the generic multiarch folder.
        assert!(pos("/usr/lib/aarch64-linux-gnu/tegra") < pos("/usr/lib/aarch64-linux-gnu"));
        assert!(pos("/usr/lib/aarch64-linux-gnu/nvidia") < pos("/usr/lib/aarch64-linux-gnu"));
        // User settings come first, `ARGEN_CUDA_LIB_DIR` before `CUDA_PATH`.
        let dirs = library_search_dirs(Some("/opt/mine"), Some("/opt/cuda-12.6"));
        assert_eq!(dirs[0], PathBuf::from("/opt/mine"));
        assert_eq!(dirs[1], PathBuf::from("/opt/cuda-12.6/lib64"));
        assert_eq!(dirs.len(), EXTRA_LIBRARY_DIRS.len() + 2);
        // Empty values are ignored, duplicates are searched once.
        let dirs = library_search_dirs(Some(""), Some("/usr/local/cuda"));
        assert_eq!(dirs[0], PathBuf::from("/usr/local/cuda/lib64"));
        assert_eq!(dirs.len(), EXTRA_LIBRARY_DIRS.len());
    }

    #[test]
    fn library_names_start_with_the_sonames_cudarc_asks_for() {
        assert_eq!(CudaLibrary::Driver.names()[0], "libcuda.so.1");
        let nvrtc = CudaLibrary::Nvrtc.names();
        assert!(nvrtc.contains(&"libnvrtc.so.12".to_string()));
        assert!(nvrtc.contains(&"libnvrtc.so.13".to_string()));
        assert!(CudaLibrary::Cublas
            .names()
            .contains(&"libcublas.so.12".to_string()));
    }
}
