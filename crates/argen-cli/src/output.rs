//! Every file `argen` writes, written so that a failed run destroys nothing; stdout that fails
//! cleanly; bounded reads of the small files a user hands in.
//!
//! # Outputs are staged, then committed together
//!
//! A command never writes its outputs (PNG, stats and token JSON, bench JSON, plots) while it
//! runs: [`write_png`] and [`write_json`] encode into memory and *stage* the bytes. Only after the
//! whole command succeeded does `main` call [`commit`], which
//!
//! 1. writes every staged output whose destination is a regular file (or does not exist yet) to
//!    a fresh temporary file `.NAME.argen-PID-N.tmp` **in the destination's directory**, and
//!    `fsync`s it;
//! 2. then writes outputs whose destination already exists and is not a regular file
//!    (`/dev/null`, `/dev/stdout`, a FIFO) directly: they cannot be replaced, and must not be (a
//!    FIFO without a reader is an error, not a wait);
//! 3. only when every one of those writes succeeded, `rename`s each temporary file onto its
//!    destination (atomic on POSIX within a directory) and `fsync`s the directory.
//!
//! A failure in steps 1–2 (full disk, `ulimit -f`, a read-only directory) removes the temporary
//! files and leaves every destination byte for byte as it was; a failed run ([`discard`]) writes
//! nothing at all. A destination that is a symbolic link is resolved first, so the link survives
//! and its target is replaced.
//!
//! [`check_outputs`] runs before any work: it refuses two outputs on one file, an output that is
//! one of the inputs (compared by device and inode when both exist, else by normalised path),
//! directories, missing parent directories and directories in which no file can be created.
//!
//! # stdout
//!
//! [`out`] writes to stdout without `println!`'s panic: a reader that has gone away (`EPIPE`)
//! marks stdout as closed ([`stdout_closed`]) and ends the command quietly with its outputs
//! committed; any other failure (`/dev/full`) is a one-line error.
//!
//! # Bounded reads
//!
//! [`read_bounded`] reads a file only if it is a regular file of at most a given size, checked
//! from its metadata first and enforced with [`Read::take`] while reading (a file that grows
//! meanwhile cannot make it read more).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Outputs staged by this run: destination and bytes.
static STAGED: Mutex<Vec<(PathBuf, Vec<u8>)>> = Mutex::new(Vec::new());
/// Set when stdout's reader has gone away.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// Numbers the temporary files of this process.
static TMP_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Largest `--tokens` file read (a pretty-printed array of [`crate::parse::MAX_DECODE_TOKENS`] ids is ~12 KB;
/// the rest is room for whitespace).
pub const MAX_TOKENS_FILE: u64 = 1 << 20;

fn staged() -> std::sync::MutexGuard<'static, Vec<(PathBuf, Vec<u8>)>> {
    // A poisoned lock only means another thread panicked while pushing; the list is intact.
    STAGED.lock().unwrap_or_else(|e| e.into_inner())
}

fn stage(path: &Path, bytes: Vec<u8>) {
    let mut s = staged();
    // A later write to the same path replaces the earlier one (never two files racing).
    s.retain(|(p, _)| p != path);
    s.push((path.to_path_buf(), bytes));
}

/// Encodes an RGB8 image as PNG and stages it for `path`.
pub fn write_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(fail(&"image too large for PNG")),
    };
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(|e| fail(&e))?;
        wr.write_image_data(rgb).map_err(|e| fail(&e))?;
        wr.finish().map_err(|e| fail(&e))?;
    }
    stage(path, bytes);
    Ok(())
}

/// Serialises a JSON value (pretty, trailing newline) and stages it for `path`.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    stage(path, json_bytes(value)?);
    Ok(())
}

/// Stages raw bytes (a run file) for `path`.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), String> {
    stage(path, bytes.to_vec());
    Ok(())
}

fn json_bytes(value: &serde_json::Value) -> Result<Vec<u8>, String> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    text.push(b'\n');
    Ok(text)
}

/// Writes a JSON file now, atomically (temporary file, `fsync`, rename): for scratch files a
/// child process reads during the run, not for outputs.
pub fn write_json_now(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let bytes = json_bytes(value)?;
    let dest = destination(path);
    let tmp = write_temp(&dest, &bytes)?;
    std::fs::rename(&tmp, &dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Writes every staged output (see the module doc); on error nothing was replaced.
pub fn commit() -> Result<(), String> {
    let items = std::mem::take(&mut *staged());
    let mut temps: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |temps: &[(PathBuf, PathBuf)]| {
        for (tmp, _) in temps {
            let _ = std::fs::remove_file(tmp);
        }
    };
    // Regular files first (where a full disk shows), then devices and FIFOs, then renames.
    let mut special: Vec<(&PathBuf, PathBuf, &[u8])> = Vec::new();
    for (path, bytes) in &items {
        let dest = destination(path);
        match std::fs::metadata(&dest) {
            Ok(m) if !m.is_file() && !m.is_dir() => special.push((path, dest, bytes)),
            _ => match write_temp(&dest, bytes) {
                Ok(tmp) => temps.push((tmp, dest)),
                Err(e) => {
                    cleanup(&temps);
                    return Err(e);
                }
            },
        }
    }
    for (path, dest, bytes) in special {
        if let Err(e) = write_special(&dest, bytes) {
            cleanup(&temps);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
    }
    for (i, (tmp, dest)) in temps.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, dest) {
            cleanup(&temps[i..]);
            return Err(format!("cannot write {}: {e}", dest.display()));
        }
        if let Ok(dir) = File::open(parent_of(dest)) {
            // Makes the rename durable; not every file system supports it on a directory.
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Drops every staged output (the run failed).
pub fn discard() {
    staged().clear();
}

/// The file a write to `path` replaces: symbolic links resolved, so that they survive.
fn destination(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a new temporary file beside `dest`, `fsync`ed; returns its path.
fn write_temp(dest: &Path, bytes: &[u8]) -> Result<PathBuf, String> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = parent_of(dest).join(format!(
        ".{name}.argen-{}-{}.tmp",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!("cannot write {}: {}", dest.display(), io_msg(&e)))
        }
    }
}

/// Writes to an existing non-regular file (device, FIFO) in place. The file is opened
/// non-blocking, so that a FIFO without a reader is an error (`ENXIO`) instead of a hang, then
/// switched back to blocking writes.
fn write_special(dest: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dest)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => "it is a FIFO that nobody reads".to_string(),
            _ => io_msg(&e),
        })?;
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is the open descriptor owned by `f`, alive for both calls; F_GETFL and
    // F_SETFL only read and set its status flags.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !ok {
        return Err(io_msg(&std::io::Error::last_os_error()));
    }
    f.write_all(bytes)
        .and_then(|()| f.flush())
        .map_err(|e| io_msg(&e))
}

pub use argen_engine::model_dir::{describe_open_error, io_msg};

/// What identifies a file for conflict checks: its inode when it exists, else its normalised
/// absolute path.
#[derive(PartialEq, Eq, Debug)]
enum FileKey {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_key(p: &Path) -> FileKey {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(p) {
        return FileKey::Inode(m.dev(), m.ino());
    }
    let parent = parent_of(p);
    let base = std::fs::canonicalize(parent).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(parent))
            .unwrap_or_else(|_| parent.to_path_buf())
    });
    FileKey::Path(match p.file_name() {
        Some(n) => base.join(n),
        None => base,
    })
}

/// Refuses, before any work, outputs that would collide or cannot be written: two outputs on
/// one file, an output that is an input, a directory, a missing parent directory, a directory
/// where no file can be created. `outputs` pairs each path with the option that named it.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<(), String> {
    let keys: Vec<FileKey> = outputs.iter().map(|(_, p)| file_key(p)).collect();
    for (i, (flag, path)) in outputs.iter().enumerate() {
        check_writable(flag, path)?;
        for (j, (other, _)) in outputs.iter().enumerate().take(i) {
            if keys[i] == keys[j] {
                return Err(format!(
                    "{flag} {} is the same file as {other}: give each output its own path",
                    path.display()
                ));
            }
        }
        for (in_flag, input) in inputs {
            if input.exists() && keys[i] == file_key(input) {
                return Err(format!(
                    "{flag} {} is the input {in_flag}: writing it would destroy the input; \
                     choose another output path",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Checks that `path` can be created or replaced.
fn check_writable(flag: &str, path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err(format!("{flag}: the path is empty"));
    }
    let dest = destination(path);
    let parent = parent_of(&dest);
    if !parent.is_dir() {
        return Err(format!(
            "cannot write {flag} {}: directory {} does not exist",
            path.display(),
            parent.display()
        ));
    }
    match std::fs::metadata(&dest) {
        Ok(m) if m.is_dir() => {
            return Err(format!(
                "cannot write {flag} {}: it is a directory",
                path.display()
            ))
        }
        Ok(m) if !m.is_file() => return Ok(()), // a device or FIFO: written in place
        _ => {}
    }
    // Probe: the commit creates a temporary file in this directory.
    match write_temp(&dest, b"") {
        Ok(tmp) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(_) => Err(format!(
            "cannot write {flag} {}: cannot create files in directory {}",
            path.display(),
            parent.display()
        )),
    }
}

/// Writes `text` to stdout. A closed pipe sets [`stdout_closed`] and returns an error that
/// `main` turns into a quiet exit; other failures are one-line errors.
pub fn out(text: &str) -> Result<(), String> {
    let mut so = std::io::stdout().lock();
    match so.write_all(text.as_bytes()).and_then(|()| so.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Err("stdout closed".into())
        }
        Err(e) => Err(format!("cannot write to stdout: {}", io_msg(&e))),
    }
}

/// Whether stdout's reader went away during this run.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes one line (a newline appended) to stdout; see [`out`].
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::output::out(&format!("{}\n", format_args!($($t)*)))
    };
}

/// Writes one line to stderr, ignoring failures (a closed or full stderr leaves nobody to tell;
/// `eprintln!` would panic).
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Reads `path`, which must be a regular file of at most `limit` bytes (`what` names it in
/// errors, e.g. `--tokens`).
pub fn read_bounded(what: &str, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let fail = |msg: String| format!("cannot read {what} {}: {msg}", path.display());
    let f = open_regular(path).map_err(fail)?;
    let len = f.metadata().map_err(|e| fail(io_msg(&e)))?.len();
    if len > limit {
        return Err(fail(format!("{len} bytes, more than the limit of {limit}")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io_msg(&e)))?;
    if bytes.len() as u64 > limit {
        return Err(fail(format!("more than the limit of {limit} bytes")));
    }
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file, with a message that says what it is
/// otherwise (missing, a directory, a FIFO, a symbolic-link loop, unreadable).
pub fn open_regular(path: &Path) -> Result<File, String> {
    let m = std::fs::metadata(path).map_err(|e| describe_open_error(path, &e))?;
    if m.is_dir() {
        return Err("it is a directory, not a file".into());
    }
    if !m.is_file() {
        return Err("it is not a regular file (a device, FIFO or socket)".into());
    }
    File::open(path).map_err(|e| describe_open_error(path, &e))
}

/// Reads a JSON array of at most [`crate::parse::MAX_DECODE_TOKENS`] token ids.
pub fn read_tokens(path: &Path) -> Result<Vec<u32>, String> {
    let bytes = read_bounded("--tokens", path, MAX_TOKENS_FILE)?;
    crate::parse::parse_tokens(&bytes).map_err(|e| format!("--tokens {}: {e}", path.display()))
}

/// Largest PNG file `argen score` reads (a 1024 × 1024 RGBA image at 16 bits per channel,
/// stored uncompressed, is 8 MiB).
pub const MAX_PNG_FILE: u64 = 32 << 20;

/// Reads a PNG for `argen score`: the file is bounded by [`MAX_PNG_FILE`], and its dimensions
/// are checked from the `IHDR` header (square, `min..=max` px) before anything is decoded.
pub fn read_score_png(
    path: &Path,
    min: usize,
    max: usize,
) -> Result<argen_shapes::RgbImage, String> {
    let bytes = read_bounded("image", path, MAX_PNG_FILE)?;
    let not_png = |why: &str| format!("{}: not a PNG image ({why})", path.display());
    if bytes.len() < 24 || bytes[..8] != *b"\x89PNG\r\n\x1a\n" {
        return Err(not_png("missing the PNG signature"));
    }
    if bytes[12..16] != *b"IHDR" {
        return Err(not_png("the first chunk is not IHDR"));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (w, h) = (be(16) as usize, be(20) as usize);
    if w != h || !(min..=max).contains(&w) {
        return Err(format!(
            "{}: the image is {w}×{h} px; argen score needs a square image of {min} to {max} px",
            path.display()
        ));
    }
    argen_shapes::RgbImage::from_png_bytes(&bytes).map_err(|e| {
        e.to_string()
            .replace("<memory>", &path.display().to_string())
    })
}
