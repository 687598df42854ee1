//! The cost profile file of a model directory: `cost-profile.json`.
//!
//! `argen calibrate` measures how long the target model (and the drafter) take per call as a
//! function of the row count on this machine and writes it here; `--draft auto` and the bench's
//! predicted speed-ups read it. The curves themselves are [`argen_core::cost::CostProfile`]
//! (integer nanoseconds, integer evaluation); the file adds what they were measured on, so a
//! profile from another machine, kernel class or thread count can be recognised.
//!
//! ```json
//! {"version": 1, "cpu": "AMD EPYC (family 26, model 2)", "device": "cpu", "kernels": "exact", "threads": 2,
//!  "dtype": "f32", "context": 32, "prefill": 2000000, "clock": "wall",
//!  "profile": {"target": [[2, 310000], [4, 330000]], "drafter": [[2, 90000]]}}
//! ```
//!
//! Reads are bounded ([`MAX_BYTES`]) and unknown fields are rejected; writes go to a temporary
//! file in the same directory and are renamed into place, so a crash never leaves a truncated
//! profile.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use argen_core::cost::CostProfile;
use serde::{Deserialize, Serialize};

use crate::model_dir::{describe_open_error, io_msg};
use crate::Error;

/// File name of the profile inside a model directory.
pub const FILE: &str = "cost-profile.json";

/// The only format version written and read.
pub const VERSION: u32 = 1;

/// Largest profile file read (bytes); a real one is well under 2 KiB.
pub const MAX_BYTES: u64 = 64 * 1024;

/// A cost profile and the conditions it was measured under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostFile {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The CPU's model name (`lscpu`'s "Model name"), or the GPU's name on a device.
    pub cpu: String,
    /// `"cpu"` or `"cuda"`.
    pub device: String,
    /// The kernel class that ran (`exact`, `avx512-bf16`, `amx-bf16`, `cuda`).
    pub kernels: String,
    /// Worker threads of the runtime.
    pub threads: usize,
    /// Weight dtype of the runtime (`f32`, `bf16`, `f16`).
    pub dtype: String,
    /// Context length (tokens in the KV cache) the calls were measured at.
    pub context: u32,
    /// Nanoseconds of one prefill of the condition alone (no image tokens) with two-way
    /// guidance — the first action of every decode — measured by `argen calibrate`; `None` in
    /// files without it (a prefill is then costed as a target call of
    /// `cls_token_num × 2` rows, `argen_engine::predict`). Optional and added after version 1
    /// was first written: older files still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<u64>,
    /// The clock the costs were measured with: `"wall"` or `"cpu"`
    /// ([`crate::clock::Clock::name`]). Added after version 1 was first written: files without
    /// it were measured by wall clock and read as `"wall"`.
    #[serde(default = "wall")]
    pub clock: String,
    /// The kernel tuning chosen by `argen calibrate --kernels` on this CPU
    /// ([`argen_cpu::gemm::Tuning::spec`]), under which the curves were measured; `argen
    /// generate` and `argen bench` apply it when the file's `cpu` is this machine's
    /// ([`crate::kernel_tune::apply_from`]). `None`: the CPU's built-in table. Optional, added
    /// after version 1 was first written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_tuning: Option<String>,
    /// The curves.
    pub profile: CostProfile,
}

fn wall() -> String {
    crate::clock::Clock::Wall.name().into()
}

/// The path of the profile inside `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the profile at `path`: `Ok(None)` when there is no such file, an error naming the file
/// when it is unreadable, too large, malformed, or of another version.
pub fn read(path: &Path) -> Result<Option<CostFile>, Error> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::model(format!(
                "cannot read {}: {}",
                path.display(),
                describe_open_error(path, &e)
            )))
        }
    };
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::model(format!("cannot read {}: {}", path.display(), io_msg(&e))))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::model(format!(
            "{} is larger than {MAX_BYTES} bytes: not a cost profile",
            path.display()
        )));
    }
    let file: CostFile = serde_json::from_slice(&bytes).map_err(|e| {
        Error::model(format!(
            "{} is not a valid cost profile: {e} (run `argen calibrate` again)",
            path.display()
        ))
    })?;
    if file.version != VERSION {
        return Err(Error::model(format!(
            "{} has format version {}, this argen reads version {VERSION} (run `argen calibrate` again)",
            path.display(),
            file.version
        )));
    }
    Ok(Some(file))
}

/// Writes `file` to `path` atomically (temporary file in the same directory, then rename).
pub fn write(path: &Path, file: &CostFile) -> Result<(), Error> {
    let fail = |what: &str, e: &std::io::Error| {
        Error::runtime(format!("cannot {what} {}: {}", path.display(), io_msg(e)))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} names no file", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let json = serde_json::to_string_pretty(file)
        .map_err(|e| Error::runtime(format!("cannot encode the cost profile: {e}")))?;
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| fail("create a temporary file for", &e))?;
        f.write_all(json.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| fail("write", &e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("rename the temporary file onto", &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use argen_core::cost::CostCurve;

    fn sample() -> CostFile {
        CostFile {
            version: VERSION,
            cpu: "AMD EPYC".into(),
            device: "cpu".into(),
            kernels: "exact".into(),
            threads: 2,
            dtype: "f32".into(),
            context: 32,
            prefill: Some(2_000_000),
            clock: "cpu".into(),
            kernel_tuning: None,
            profile: CostProfile {
                target: CostCurve::new(&[(2, 310_000), (4, 330_000)]).unwrap(),
                drafter: Some(CostCurve::new(&[(2, 90_000)]).unwrap()),
            },
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("argen-cost-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trips_and_missing_is_none() {
        let d = temp_dir("round");
        let p = path_in(&d);
        assert_eq!(read(&p).unwrap(), None);
        write(&p, &sample()).unwrap();
        assert_eq!(read(&p).unwrap(), Some(sample()));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_clock_round_trips_and_defaults_to_wall() {
        let d = temp_dir("clock");
        let p = path_in(&d);
        for clock in ["wall", "cpu"] {
            let f = CostFile {
                clock: clock.into(),
                ..sample()
            };
            write(&p, &f).unwrap();
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.contains(&format!("\"clock\": \"{clock}\"")), "{text}");
            assert_eq!(read(&p).unwrap(), Some(f));
        }
        // A file written before the field existed was measured by wall clock.
        std::fs::write(
            &p,
            br#"{"version":1,"cpu":"x","device":"cpu","kernels":"exact","threads":1,"dtype":"f32","context":1,"profile":{"target":[[1,5]]}}"#,
        )
        .unwrap();
        assert_eq!(read(&p).unwrap().unwrap().clock, "wall");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_files_are_named_errors() {
        let d = temp_dir("bad");
        let p = path_in(&d);
        let cases: [(&[u8], &str); 4] = [
            (b"{", "not a valid cost profile"),
            (
                br#"{"version":2,"cpu":"x","device":"cpu","kernels":"exact","threads":1,"dtype":"f32","context":1,"profile":{"target":[[1,5]]}}"#,
                "format version 2",
            ),
            (
                br#"{"version":1,"cpu":"x","device":"cpu","kernels":"exact","threads":1,"dtype":"f32","context":1,"profile":{"target":[[2,5],[1,5]]}}"#,
                "strictly increasing",
            ),
            (&[b' '; 70_000], "larger than"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, bytes).unwrap();
            let e = read(&p).unwrap_err();
            assert!(e.message().contains(want), "{}", e.message());
            assert!(e.message().contains(FILE), "{}", e.message());
        }
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(read(&p).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let d = temp_dir("fail");
        let p = path_in(&d);
        write(&p, &sample()).unwrap();
        let e = write(
            Path::new("/proc/argen-nonexistent/cost-profile.json"),
            &sample(),
        );
        assert!(e.is_err());
        assert_eq!(read(&p).unwrap(), Some(sample()));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
