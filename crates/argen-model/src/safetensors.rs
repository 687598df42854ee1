//! A small, defensive parser for the safetensors format.
//!
//! Layout: an 8-byte little-endian header length `n`, then `n` bytes of UTF-8 JSON mapping each
//! tensor name to `{"dtype": .., "shape": [..], "data_offsets": [begin, end]}` (offsets relative
//! to the byte right after the header), an optional `"__metadata__"` string map, then the data.
//!
//! Every length and offset is checked (with overflow-checked arithmetic) before any byte is
//! touched, so a truncated or hostile file yields [`ModelError::Safetensors`], never a panic.
//! As in the reference implementation, the tensors must tile the data section exactly: no two
//! overlap, none leaves a gap, and no bytes follow the last one. [`SafeTensors::open`] reads the
//! header first (at most [`MAX_HEADER_LEN`] bytes, and never more than the file holds) and the
//! data only once the header is valid; [`SafeTensors::expect`] rejects a weight holding NaN or
//! an infinity ([`ModelError::NonFinite`], naming the file and the tensor).
//! The parser is fuzzed (`fuzz/fuzz_targets/safetensors_header.rs`) and run over a committed
//! corpus plus mutations in the test suite.

use crate::error::{ModelError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest header accepted (the reference implementation's limit).
pub const MAX_HEADER_LEN: u64 = 100 * 1024 * 1024;

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// Any other safetensors dtype (parsed, but not usable as a weight).
    Other(OtherDtype),
}

/// Safetensors dtypes that the runtime parses but does not compute with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherDtype {
    /// f64
    F64,
    /// i64
    I64,
    /// i32
    I32,
    /// i16
    I16,
    /// i8
    I8,
    /// u8
    U8,
    /// bool
    Bool,
    /// u16
    U16,
    /// u32
    U32,
    /// u64
    U64,
    /// 8-bit floats (E4M3 / E5M2)
    F8,
}

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F64" => Dtype::Other(OtherDtype::F64),
            "I64" => Dtype::Other(OtherDtype::I64),
            "I32" => Dtype::Other(OtherDtype::I32),
            "I16" => Dtype::Other(OtherDtype::I16),
            "I8" => Dtype::Other(OtherDtype::I8),
            "U8" => Dtype::Other(OtherDtype::U8),
            "BOOL" => Dtype::Other(OtherDtype::Bool),
            "U16" => Dtype::Other(OtherDtype::U16),
            "U32" => Dtype::Other(OtherDtype::U32),
            "U64" => Dtype::Other(OtherDtype::U64),
            "F8_E4M3" | "F8_E5M2" => Dtype::Other(OtherDtype::F8),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(o) => match o {
                OtherDtype::F64 | OtherDtype::I64 | OtherDtype::U64 => 8,
                OtherDtype::I32 | OtherDtype::U32 => 4,
                OtherDtype::I16 | OtherDtype::U16 => 2,
                OtherDtype::I8 | OtherDtype::U8 | OtherDtype::Bool | OtherDtype::F8 => 1,
            },
        }
    }

    /// The safetensors spelling.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::Other(o) => match o {
                OtherDtype::F64 => "F64",
                OtherDtype::I64 => "I64",
                OtherDtype::I32 => "I32",
                OtherDtype::I16 => "I16",
                OtherDtype::I8 => "I8",
                OtherDtype::U8 => "U8",
                OtherDtype::Bool => "BOOL",
                OtherDtype::U16 => "U16",
                OtherDtype::U32 => "U32",
                OtherDtype::U64 => "U64",
                OtherDtype::F8 => "F8",
            },
        }
    }
}

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Byte range inside the data section.
    pub begin: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
}

/// A parsed header: tensor table and metadata, validated against the data length.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// Tensors by name (sorted).
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The `__metadata__` map, if any.
    pub metadata: BTreeMap<String, String>,
    /// Offset of the data section in the file.
    pub data_start: usize,
}

/// Parses and validates the header of a safetensors file held in `bytes` (the whole file).
///
/// Errors are plain messages; [`SafeTensors::from_bytes`] attaches the file name.
pub fn parse_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    let n = header_len(bytes, bytes.len() as u64)?;
    parse_prefix(&bytes[..8 + n], bytes.len() as u64)
}

/// Reads the 8-byte header length of a file of `file_len` bytes starting with `prefix` and
/// checks it against [`MAX_HEADER_LEN`] and the file length.
fn header_len(prefix: &[u8], file_len: u64) -> std::result::Result<usize, String> {
    if file_len < 8 || prefix.len() < 8 {
        return Err(format!(
            "file is {file_len} bytes long, shorter than the 8-byte header length"
        ));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&prefix[..8]);
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_LEN {
        return Err(format!(
            "header length {n} exceeds the limit {MAX_HEADER_LEN}"
        ));
    }
    let avail = file_len - 8;
    if n > avail {
        return Err(format!(
            "header length {n} exceeds the {avail} bytes after the length field (truncated file?)"
        ));
    }
    Ok(n as usize)
}

/// Parses the header in `prefix` (the length field and the JSON, nothing more) of a file of
/// `file_len` bytes, and checks that the tensors tile the data section exactly: sorted by
/// offset, each starts where the previous one ended, the first at 0, the last at the end of
/// the file (no overlap, no gap, no trailing bytes).
fn parse_prefix(prefix: &[u8], file_len: u64) -> std::result::Result<Header, String> {
    let n = header_len(prefix, file_len)?;
    if prefix.len() < 8 + n {
        return Err("header is cut short".into());
    }
    let data_start = 8 + n;
    let data_len = usize::try_from(file_len - data_start as u64)
        .map_err(|_| format!("data section of {file_len} bytes is too large for this machine"))?;
    let text = std::str::from_utf8(&prefix[8..data_start])
        .map_err(|e| format!("header is not UTF-8: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let obj = json
        .as_object()
        .ok_or_else(|| "header is not a JSON object".to_string())?;
    let mut header = Header {
        data_start,
        ..Header::default()
    };
    for (name, entry) in obj {
        if name == "__metadata__" {
            let m = entry
                .as_object()
                .ok_or_else(|| "`__metadata__` is not an object".to_string())?;
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("metadata value `{k}` is not a string"))?;
                header.metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        let info = parse_entry(name, entry, data_len)?;
        header.tensors.insert(name.clone(), info);
    }
    check_tiling(&header, data_len)?;
    Ok(header)
}

/// Checks that the tensors' byte ranges tile `[0, data_len)` exactly.
fn check_tiling(header: &Header, data_len: usize) -> std::result::Result<(), String> {
    let mut ranges: Vec<(usize, usize, &str)> = header
        .tensors
        .iter()
        .map(|(name, t)| (t.begin, t.end, name.as_str()))
        .collect();
    ranges.sort_unstable();
    let mut at = 0usize;
    let mut prev = "";
    for (begin, end, name) in ranges {
        if begin < at {
            return Err(format!(
                "tensor `{name}`: data [{begin}, {end}) overlaps tensor `{prev}`, which ends at {at}"
            ));
        }
        if begin > at {
            return Err(format!(
                "tensor `{name}`: data starts at {begin}, leaving a gap of {} bytes after {}",
                begin - at,
                if prev.is_empty() {
                    "the header".to_string()
                } else {
                    format!("tensor `{prev}`")
                }
            ));
        }
        at = end;
        prev = name;
    }
    if at != data_len {
        return Err(format!(
            "{} bytes after the last tensor's data (the data section has {data_len} bytes, the \
             tensors cover {at})",
            data_len - at
        ));
    }
    Ok(())
}

fn parse_entry(
    name: &str,
    entry: &serde_json::Value,
    data_len: usize,
) -> std::result::Result<TensorInfo, String> {
    let e = entry
        .as_object()
        .ok_or_else(|| format!("tensor `{name}`: entry is not an object"))?;
    let dtype_s = e
        .get("dtype")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("tensor `{name}`: missing string field `dtype`"))?;
    let dtype = Dtype::parse(dtype_s)
        .ok_or_else(|| format!("tensor `{name}`: unknown dtype `{dtype_s}`"))?;
    let shape_v = e
        .get("shape")
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("tensor `{name}`: missing array field `shape`"))?;
    let mut shape = Vec::with_capacity(shape_v.len());
    let mut numel: usize = 1;
    for d in shape_v {
        let d = d
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| format!("tensor `{name}`: shape entry {d} is not a valid size"))?;
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| format!("tensor `{name}`: shape {shape_v:?} overflows"))?;
        shape.push(d);
    }
    let offs = e
        .get("data_offsets")
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("tensor `{name}`: missing array field `data_offsets`"))?;
    if offs.len() != 2 {
        return Err(format!(
            "tensor `{name}`: `data_offsets` must have 2 entries"
        ));
    }
    let off = |i: usize| {
        offs[i]
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| format!("tensor `{name}`: data offset {} is not valid", offs[i]))
    };
    let (begin, end) = (off(0)?, off(1)?);
    if begin > end {
        return Err(format!(
            "tensor `{name}`: data_offsets [{begin}, {end}] are reversed"
        ));
    }
    if end > data_len {
        return Err(format!(
            "tensor `{name}`: data ends at byte {end} but the data section has {data_len} bytes (truncated file?)"
        ));
    }
    let nbytes = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| format!("tensor `{name}`: byte size overflows"))?;
    if end - begin != nbytes {
        return Err(format!(
            "tensor `{name}`: {} data bytes for shape {shape:?} of {} (needs {nbytes})",
            end - begin,
            dtype.name()
        ));
    }
    Ok(TensorInfo {
        dtype,
        shape,
        begin,
        end,
    })
}

/// A safetensors file read into memory.
#[derive(Debug)]
pub struct SafeTensors {
    path: PathBuf,
    bytes: Vec<u8>,
    header: Header,
}

/// A borrowed view of one tensor's raw data.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: &'a [usize],
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

impl SafeTensors {
    /// Reads and validates a file: the length field and header first (bounded by
    /// [`MAX_HEADER_LEN`] and the file's size), then exactly the data section the header
    /// describes — so a corrupt header is rejected before the data is read.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source: std::io::Error| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bad = |msg: String| ModelError::Safetensors {
            path: path.to_path_buf(),
            msg,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let file_len = meta.len();
        let mut reader = file.take(file_len);
        let mut bytes = vec![0u8; 8.min(file_len as usize)];
        reader.read_exact(&mut bytes).map_err(io)?;
        let n = header_len(&bytes, file_len).map_err(bad)?;
        bytes.resize(8 + n, 0);
        reader.read_exact(&mut bytes[8..]).map_err(io)?;
        let header = parse_prefix(&bytes, file_len).map_err(bad)?;
        let total =
            usize::try_from(file_len).map_err(|_| bad("file too large for this machine".into()))?;
        bytes
            .try_reserve_exact(total - bytes.len())
            .map_err(|_| bad(format!("cannot allocate {file_len} bytes to read the file")))?;
        reader.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() != total {
            return Err(bad(format!(
                "file shrank while being read ({} of {file_len} bytes)",
                bytes.len()
            )));
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            bytes,
            header,
        })
    }

    /// Validates an in-memory file; `path` is used in error messages.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<SafeTensors> {
        let path = path.as_ref().to_path_buf();
        let header = parse_header(&bytes).map_err(|msg| ModelError::Safetensors {
            path: path.clone(),
            msg,
        })?;
        Ok(SafeTensors {
            path,
            bytes,
            header,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.keys().map(|s| s.as_str())
    }

    /// A view of tensor `name`, if present.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let info = self.header.tensors.get(name)?;
        let start = self.header.data_start + info.begin;
        let end = self.header.data_start + info.end;
        Some(TensorView {
            dtype: info.dtype,
            shape: &info.shape,
            data: self.bytes.get(start..end)?,
        })
    }

    /// A view of tensor `name` with the exact `shape` and a float dtype, or a typed error
    /// naming the file and tensor.
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<TensorView<'_>> {
        let v = self.get(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        if v.shape != shape {
            return Err(ModelError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: v.shape.to_vec(),
            });
        }
        if let Dtype::Other(_) = v.dtype {
            return Err(ModelError::Dtype {
                path: self.path.clone(),
                name: name.to_string(),
                dtype: v.dtype.name().to_string(),
            });
        }
        if let Some((index, value)) = v.first_non_finite() {
            return Err(ModelError::NonFinite {
                path: self.path.clone(),
                name: name.to_string(),
                index,
                value,
            });
        }
        Ok(v)
    }
}

impl TensorView<'_> {
    /// The first NaN or infinite element (index, value) of a float tensor, if any.
    pub fn first_non_finite(&self) -> Option<(usize, f32)> {
        match self.dtype {
            Dtype::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .enumerate()
                .find(|(_, x)| !x.is_finite()),
            Dtype::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .enumerate()
                .find(|(_, x)| !x.is_finite())
                .map(|(i, x)| (i, x.to_f32())),
            Dtype::BF16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                .enumerate()
                .find(|(_, x)| !x.is_finite())
                .map(|(i, x)| (i, x.to_f32())),
            Dtype::Other(_) => None,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Decodes the data to f32 (F32 / F16 / BF16; other dtypes yield `None`).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let mut out = Vec::with_capacity(self.numel());
        match self.dtype {
            Dtype::F32 => out.extend(
                self.data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Dtype::F16 => out.extend(
                self.data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            Dtype::BF16 => out.extend(
                self.data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            ),
            Dtype::Other(_) => return None,
        }
        Some(out)
    }
}
