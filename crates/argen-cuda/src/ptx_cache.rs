//! PTX disk cache: NVRTC runs once per (program, options, architecture, NVRTC version, argen
//! version), later runs load the stored PTX.
//!
//! **Key.** FNV-1a-128 over the length-prefixed parts: the program source, every NVRTC option,
//! the architecture, the NVRTC version and the argen version ([`cache_key`]); 32 hex digits.
//! Length prefixes make the concatenation unambiguous (`("ab", "c")` and `("a", "bc")` differ).
//! FNV-1a is specified bit for bit (unlike `std`'s `DefaultHasher`), so a key is stable across
//! Rust releases and machines; it is not collision-resistant against an adversary, which a
//! cache in the user's own folder does not need — and every entry repeats its key in its header,
//! so a collision of file names could only ever cost a recompile.
//!
//! **Entry.** `<dir>/<key>.ptx`: one header line `argen-ptx-cache 1 <key> <bytes> <checksum>`
//! (checksum = FNV-1a-128 of the PTX) and the PTX text. An entry whose header, length or
//! checksum does not match, that is not UTF-8, contains a NUL byte or cannot be read is
//! *recompiled and overwritten*, never fatal. Writes go to a unique temporary file in the same
//! folder and are renamed over the entry (atomic on POSIX), so concurrent processes see either
//! the old or the new entry, never a torn one.
//!
//! **Folder.** `$ARGEN_CACHE_DIR`, else `$XDG_CACHE_HOME/argen`, else `$HOME/.cache/argen`
//! ([`default_cache_dir`]). If it cannot be created, or an entry cannot be written, the cache
//! degrades to "compile every time" and says so in [`Lookup::warnings`] (the executor prints
//! them once); it never fails a run.
//!
//! The compile step is a closure, so everything here is tested without NVRTC or a GPU.

use crate::error::Result;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// First words of every entry's header.
pub const FORMAT: &str = "argen-ptx-cache 1";

const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// FNV-1a, 128-bit variant, continuing from `state` (start with [`fnv1a128`]'s offset basis by
/// calling [`fnv1a128`]).
fn fnv1a128_update(mut state: u128, bytes: &[u8]) -> u128 {
    for &b in bytes {
        state ^= b as u128;
        state = state.wrapping_mul(FNV128_PRIME);
    }
    state
}

/// FNV-1a-128 of `bytes` (the published 128-bit offset basis and prime).
pub fn fnv1a128(bytes: &[u8]) -> u128 {
    fnv1a128_update(FNV128_OFFSET, bytes)
}

/// What a compiled PTX depends on.
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    /// The program source handed to NVRTC.
    pub source: &'a str,
    /// NVRTC options, in order.
    pub options: &'a [String],
    /// Target architecture, e.g. `sm_87`.
    pub arch: &'a str,
    /// `nvrtcVersion()` as `(major, minor)`.
    pub nvrtc_version: (i32, i32),
    /// The argen version (`CARGO_PKG_VERSION`).
    pub argen_version: &'a str,
}

/// The cache key of `parts`: 32 lowercase hex digits (see the module documentation).
pub fn cache_key(parts: &KeyParts<'_>) -> String {
    let mut h = FNV128_OFFSET;
    let mut field = |bytes: &[u8]| {
        h = fnv1a128_update(h, &(bytes.len() as u64).to_le_bytes());
        h = fnv1a128_update(h, bytes);
    };
    field(b"argen ptx");
    field(parts.source.as_bytes());
    field(&(parts.options.len() as u64).to_le_bytes());
    for o in parts.options {
        field(o.as_bytes());
    }
    field(parts.arch.as_bytes());
    field(&parts.nvrtc_version.0.to_le_bytes());
    field(&parts.nvrtc_version.1.to_le_bytes());
    field(parts.argen_version.as_bytes());
    format!("{h:032x}")
}

/// The cache folder from an environment lookup: `ARGEN_CACHE_DIR`, else
/// `XDG_CACHE_HOME/argen`, else `HOME/.cache/argen`; empty values count as unset. `None` when
/// none is set.
pub fn cache_dir_from(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(d) = get("ARGEN_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = get("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("argen"));
    }
    get("HOME").map(|h| PathBuf::from(h).join(".cache").join("argen"))
}

/// [`cache_dir_from`] over the process environment.
pub fn default_cache_dir() -> Option<PathBuf> {
    cache_dir_from(|k| std::env::var_os(k))
}

/// Where a PTX came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A valid cache entry.
    Cache,
    /// Compiled now (and stored, unless a warning says otherwise).
    Compiled,
}

/// The result of [`PtxCache::get_or_compile`].
#[derive(Clone, Debug)]
pub struct Lookup {
    /// The PTX text.
    pub ptx: String,
    /// Where it came from.
    pub origin: Origin,
    /// Problems that degraded the cache (unreadable/corrupt entry, failed store).
    pub warnings: Vec<String>,
}

/// The cache: a folder, or none (compile every time).
#[derive(Clone, Debug)]
pub struct PtxCache {
    dir: Option<PathBuf>,
    warning: Option<String>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PtxCache {
    /// A cache in `dir`, created if missing. A folder that cannot be created disables the
    /// cache with a warning ([`PtxCache::warning`]); `None` disables it silently.
    pub fn open(dir: Option<PathBuf>) -> Self {
        match dir {
            None => PtxCache {
                dir: None,
                warning: None,
            },
            Some(d) => match fs::create_dir_all(&d) {
                Ok(()) => PtxCache {
                    dir: Some(d),
                    warning: None,
                },
                Err(e) => PtxCache {
                    warning: Some(format!(
                        "PTX cache disabled: cannot create {} ({e})",
                        d.display()
                    )),
                    dir: None,
                },
            },
        }
    }

    /// The cache in [`default_cache_dir`].
    pub fn open_default() -> Self {
        Self::open(default_cache_dir())
    }

    /// A cache that never stores anything.
    pub fn disabled() -> Self {
        Self::open(None)
    }

    /// The folder in use, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Why the cache is disabled, when [`PtxCache::open`] could not create its folder.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The entry's path for `key`.
    pub fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.ptx")))
    }

    /// The PTX for `key`: a valid entry, or `compile()`'s result (then stored). Errors only
    /// when `compile` does; cache problems become [`Lookup::warnings`].
    pub fn get_or_compile(
        &self,
        key: &str,
        compile: impl FnOnce() -> Result<String>,
    ) -> Result<Lookup> {
        let mut warnings = Vec::new();
        let Some(path) = self.entry_path(key) else {
            return Ok(Lookup {
                ptx: compile()?,
                origin: Origin::Compiled,
                warnings,
            });
        };
        match fs::read(&path) {
            Ok(bytes) => match parse_entry(key, &bytes) {
                Ok(ptx) => {
                    return Ok(Lookup {
                        ptx,
                        origin: Origin::Cache,
                        warnings,
                    })
                }
                Err(why) => warnings.push(format!(
                    "PTX cache entry {} is invalid ({why}); recompiling",
                    path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!(
                "PTX cache entry {} is unreadable ({e}); recompiling",
                path.display()
            )),
        }
        let ptx = compile()?;
        if let Err(e) = store(&path, key, &ptx) {
            warnings.push(format!(
                "PTX cache entry {} not stored ({e})",
                path.display()
            ));
        }
        Ok(Lookup {
            ptx,
            origin: Origin::Compiled,
            warnings,
        })
    }
}

/// The bytes of an entry for `key` holding `ptx`.
pub fn encode_entry(key: &str, ptx: &str) -> Vec<u8> {
    let mut out = format!(
        "{FORMAT} {key} {} {:032x}\n",
        ptx.len(),
        fnv1a128(ptx.as_bytes())
    )
    .into_bytes();
    out.extend_from_slice(ptx.as_bytes());
    out
}

/// The PTX of a valid entry for `key`, or why it is not valid.
pub fn parse_entry(key: &str, bytes: &[u8]) -> Result<String, &'static str> {
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or("no header")?;
    let header = std::str::from_utf8(&bytes[..nl]).map_err(|_| "header not UTF-8")?;
    let body = &bytes[nl + 1..];
    let rest = header.strip_prefix(FORMAT).ok_or("unknown format")?;
    let mut f = rest.split_ascii_whitespace();
    if f.next() != Some(key) {
        return Err("key mismatch");
    }
    let len: usize = f.next().and_then(|l| l.parse().ok()).ok_or("bad length")?;
    let sum = f
        .next()
        .and_then(|s| u128::from_str_radix(s, 16).ok())
        .ok_or("bad checksum field")?;
    if f.next().is_some() {
        return Err("trailing header fields");
    }
    if body.len() != len {
        return Err("length mismatch (truncated or extended)");
    }
    if fnv1a128(body) != sum {
        return Err("checksum mismatch");
    }
    if body.contains(&0) {
        return Err("NUL byte in PTX");
    }
    let ptx = std::str::from_utf8(body).map_err(|_| "PTX not UTF-8")?;
    Ok(ptx.to_string())
}

/// Writes the entry to a unique temporary file next to `path` and renames it over `path`.
fn store(path: &Path, key: &str, ptx: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(
        ".{key}.{}.{unique}.{nanos}.tmp",
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&encode_entry(key, ptx))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::cell::Cell;

    /// A fresh empty folder under the system temp folder.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "argen-ptx-cache-test-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn parts<'a>(source: &'a str, options: &'a [String], arch: &'a str) -> KeyParts<'a> {
        KeyParts {
            source,
            options,
            arch,
            nvrtc_version: (12, 6),
            argen_version: "0.1.0",
        }
    }

    #[test]
    fn fnv1a128_known_answers() {
        // Offset basis for the empty input; "a" and "foobar" from the FNV reference test
        // vectors, checked with an independent implementation.
        assert_eq!(fnv1a128(b""), FNV128_OFFSET);
        assert_eq!(fnv1a128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
        assert_eq!(fnv1a128(b"foobar"), 0x343e1662793c64bf6f0d3597ba446f18);
    }

    #[test]
    fn key_is_stable_and_depends_on_every_part() {
        let opts: Vec<String> = vec!["--fmad=false".into(), "--std=c++17".into()];
        let base = cache_key(&parts("kernel", &opts, "sm_87"));
        assert_eq!(base.len(), 32);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        // The same inputs give the same key (no per-process randomness).
        assert_eq!(base, cache_key(&parts("kernel", &opts, "sm_87")));
        // Pinned value (computed independently in Python): a changed key function orphans
        // every user's cache; change it only deliberately (and then update this line).
        assert_eq!(base, "f06e387c61e6de050b528659a628b455");
        let mut seen = vec![base.clone()];
        let other_opts: Vec<String> = vec!["--fmad=true".into(), "--std=c++17".into()];
        let split_opts: Vec<String> = vec!["--fmad=false--std=c++17".into()];
        let variants = [
            cache_key(&parts("kernel ", &opts, "sm_87")),
            cache_key(&parts("kernel", &other_opts, "sm_87")),
            cache_key(&parts("kernel", &split_opts, "sm_87")),
            cache_key(&parts("kernel", &opts, "sm_72")),
            cache_key(&KeyParts {
                nvrtc_version: (12, 9),
                ..parts("kernel", &opts, "sm_87")
            }),
            cache_key(&KeyParts {
                argen_version: "0.1.1",
                ..parts("kernel", &opts, "sm_87")
            }),
            // Shifting a boundary between fields changes the key.
            cache_key(&parts("kernelsm", &opts, "_87")),
        ];
        for v in variants {
            assert!(!seen.contains(&v), "{v} repeats");
            seen.push(v);
        }
    }

    #[test]
    fn cache_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        const ALL: [(&str, &str); 3] = [
            ("ARGEN_CACHE_DIR", "/a"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(cache_dir_from(env(&ALL)), Some(PathBuf::from("/a")));
        assert_eq!(
            cache_dir_from(env(&[("ARGEN_CACHE_DIR", ""), ("XDG_CACHE_HOME", "/x")])),
            Some(PathBuf::from("/x/argen"))
        );
        assert_eq!(
            cache_dir_from(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/argen"))
        );
        assert_eq!(cache_dir_from(env(&[])), None);
    }

    #[test]
    fn entries_round_trip_and_reject_corruption() {
        let key = "00112233445566778899aabbccddeeff";
        let ptx = ".version 8.5\n.target sm_87\n.entry argen_x()\n{\n}\n";
        let e = encode_entry(key, ptx);
        assert_eq!(parse_entry(key, &e).as_deref(), Ok(ptx));
        assert_eq!(
            parse_entry("ffffffffffffffffffffffffffffffff", &e),
            Err("key mismatch")
        );
        // Truncated, extended, one flipped byte, no header, garbage.
        assert!(parse_entry(key, &e[..e.len() - 1]).is_err());
        let mut longer = e.clone();
        longer.push(b'\n');
        assert!(parse_entry(key, &longer).is_err());
        let mut flipped = e.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert_eq!(parse_entry(key, &flipped), Err("checksum mismatch"));
        assert!(parse_entry(key, ptx.as_bytes()).is_err());
        assert!(parse_entry(key, b"").is_err());
        // A NUL byte is rejected even with a matching checksum (module loading needs a C
        // string).
        let nul = encode_entry(key, "a\0b");
        assert_eq!(parse_entry(key, &nul), Err("NUL byte in PTX"));
    }

    #[test]
    fn compiles_once_then_hits() {
        let dir = scratch("hit");
        let cache = PtxCache::open(Some(dir.clone()));
        assert!(cache.warning().is_none());
        let calls = Cell::new(0);
        let compile = || {
            calls.set(calls.get() + 1);
            Ok(String::from(".version 8.5\n"))
        };
        let a = cache.get_or_compile("k1", compile).unwrap();
        assert_eq!((a.origin, a.warnings.len()), (Origin::Compiled, 0));
        let b = cache.get_or_compile("k1", compile).unwrap();
        assert_eq!(
            (b.origin, b.ptx.as_str()),
            (Origin::Cache, ".version 8.5\n")
        );
        assert_eq!(calls.get(), 1);
        // A different key compiles again.
        let c = cache.get_or_compile("k2", compile).unwrap();
        assert_eq!(c.origin, Origin::Compiled);
        assert_eq!(calls.get(), 2);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| n.ends_with(".ptx")), "{names:?}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_entry_is_recompiled_and_repaired() {
        let dir = scratch("corrupt");
        let cache = PtxCache::open(Some(dir.clone()));
        let path = cache.entry_path("k").unwrap();
        fs::write(&path, b"argen-ptx-cache 1 k 5 00\nhello").unwrap();
        let got = cache
            .get_or_compile("k", || Ok(String::from("fresh")))
            .unwrap();
        assert_eq!((got.origin, got.ptx.as_str()), (Origin::Compiled, "fresh"));
        assert_eq!(got.warnings.len(), 1, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("invalid"), "{:?}", got.warnings);
        // The entry was overwritten with a valid one.
        let again = cache
            .get_or_compile("k", || panic!("must hit the repaired entry"))
            .unwrap();
        assert_eq!((again.origin, again.ptx.as_str()), (Origin::Cache, "fresh"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_cache_degrades_to_compiling() {
        // A folder below a regular file cannot be created, even by root.
        let dir = scratch("unwritable");
        let file = dir.join("file");
        fs::write(&file, b"x").unwrap();
        let cache = PtxCache::open(Some(file.join("sub")));
        assert!(cache.dir().is_none());
        assert!(cache.warning().unwrap().contains("disabled"));
        let calls = Cell::new(0);
        for _ in 0..2 {
            let got = cache
                .get_or_compile("k", || {
                    calls.set(calls.get() + 1);
                    Ok(String::from("ptx"))
                })
                .unwrap();
            assert_eq!(got.origin, Origin::Compiled);
        }
        assert_eq!(calls.get(), 2);

        // An entry path that is a folder: unreadable and not replaceable by a file. The run
        // still gets its PTX, with two warnings.
        let cache = PtxCache::open(Some(dir.clone()));
        fs::create_dir_all(cache.entry_path("k").unwrap()).unwrap();
        let got = cache
            .get_or_compile("k", || Ok(String::from("ptx")))
            .unwrap();
        assert_eq!((got.origin, got.ptx.as_str()), (Origin::Compiled, "ptx"));
        assert_eq!(got.warnings.len(), 2, "{:?}", got.warnings);
        assert!(got.warnings[1].contains("not stored"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compile_errors_propagate_and_store_nothing() {
        let dir = scratch("error");
        let cache = PtxCache::open(Some(dir.clone()));
        let err = cache
            .get_or_compile("k", || {
                Err(Error::Compile {
                    compiler: "NVRTC",
                    target: "sm_87".into(),
                    log: "boom".into(),
                })
            })
            .unwrap_err();
        assert!(matches!(err, Error::Compile { .. }));
        assert!(!cache.entry_path("k").unwrap().exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn disabled_cache_always_compiles() {
        let cache = PtxCache::disabled();
        assert!(cache.dir().is_none() && cache.warning().is_none());
        let got = cache.get_or_compile("k", || Ok(String::from("p"))).unwrap();
        assert_eq!(got.origin, Origin::Compiled);
    }
}
