//! An 8-bit RGB image and its PNG input/output.
//!
//! Any PNG colour type and bit depth is accepted on input (grey, grey+alpha, palette, RGB,
//! RGBA; 1–16 bits): it is expanded to 8-bit RGB, alpha being dropped. Output is always 8-bit
//! RGB.

use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Largest side accepted when decoding (guards memory against hostile headers).
pub const MAX_SIDE: usize = 8192;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl RgbImage {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Self {
        RgbImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Wraps raw row-major RGB bytes; errors if `data.len() != width * height * 3`.
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if width.checked_mul(height).and_then(|p| p.checked_mul(3)) != Some(data.len()) {
            return Err(Error::Argument {
                param: "data",
                reason: format!(
                    "{} bytes cannot be a {width}x{height} RGB image ({} expected)",
                    data.len(),
                    width.saturating_mul(height).saturating_mul(3)
                ),
            });
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The raw row-major RGB bytes.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// The raw bytes, mutable.
    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The pixel at `(x, y)`; panics if out of bounds (callers index within `width × height`).
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at `(x, y)`; panics if out of bounds.
    pub fn put(&mut self, x: usize, y: usize, px: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.data[i..i + 3].copy_from_slice(&px);
    }

    /// Errors with [`Error::WrongSize`] unless the image is `width × height`.
    pub fn expect_size(&self, width: usize, height: usize) -> Result<()> {
        if (self.width, self.height) != (width, height) {
            return Err(Error::WrongSize {
                path: PathBuf::from("<memory>"),
                expected: (width, height),
                found: (self.width, self.height),
            });
        }
        Ok(())
    }

    /// Encodes as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            // Writing into a Vec cannot fail for a consistent image; the size invariant is
            // kept by every constructor.
            let mut w = enc
                .write_header()
                .expect("PNG header of a valid image into a Vec");
            w.write_image_data(&self.data)
                .expect("PNG data of a valid image into a Vec");
        }
        out
    }

    /// Writes an 8-bit RGB PNG file.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_png()).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Decodes PNG bytes (any colour type / depth, see the module doc).
    pub fn from_png_bytes(bytes: &[u8]) -> Result<Self> {
        decode(Cursor::new(bytes), Path::new("<memory>"))
    }

    /// Reads a PNG file (any colour type / depth, see the module doc).
    pub fn load_png(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        decode(BufReader::new(f), path)
    }

    /// Reads a PNG file and checks that it is `width × height`.
    pub fn load_png_sized(path: &Path, width: usize, height: usize) -> Result<Self> {
        let img = Self::load_png(path)?;
        img.expect_size(width, height).map_err(|e| match e {
            Error::WrongSize {
                expected, found, ..
            } => Error::WrongSize {
                path: path.to_owned(),
                expected,
                found,
            },
            other => other,
        })?;
        Ok(img)
    }
}

fn decode<R: Read + Seek>(mut r: R, path: &Path) -> Result<RgbImage> {
    let not_png = |reason: String| Error::NotPng {
        path: path.to_owned(),
        reason,
    };
    let mut sig = [0u8; 8];
    let n = read_up_to(&mut r, &mut sig).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    if n < 8 || sig != [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'] {
        return Err(not_png("missing the PNG signature".into()));
    }
    r.seek(std::io::SeekFrom::Start(0))
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
    let mut dec = png::Decoder::new_with_limits(
        r,
        png::Limits {
            bytes: MAX_SIDE * MAX_SIDE * 8,
        },
    );
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| not_png(e.to_string()))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(not_png(format!(
            "image is {w}x{h}; sides must be in 1..={MAX_SIDE}"
        )));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| not_png(e.to_string()))?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(not_png("palette was not expanded".into()));
        }
    };
    if frame.bit_depth != png::BitDepth::Eight {
        return Err(not_png(format!(
            "unexpected bit depth {:?}",
            frame.bit_depth
        )));
    }
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let mut data = Vec::with_capacity(fw * fh * 3);
    for y in 0..fh {
        let row = &buf[y * frame.line_size..y * frame.line_size + fw * channels];
        for px in row.chunks_exact(channels) {
            match channels {
                1 | 2 => data.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => data.extend_from_slice(&px[..3]),
            }
        }
    }
    RgbImage::from_raw(fw, fh, data)
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip() {
        let mut img = RgbImage::new(5, 3);
        img.put(4, 2, [1, 2, 3]);
        img.put(0, 0, [255, 128, 0]);
        let back = RgbImage::from_png_bytes(&img.to_png()).unwrap();
        assert_eq!(back, img);
    }

    #[test]
    fn non_png_and_truncated_png_are_clear_errors() {
        let e = RgbImage::from_png_bytes(b"GIF89a....").unwrap_err();
        assert!(e.to_string().contains("not a readable PNG"), "{e}");
        assert!(e.to_string().contains("signature"), "{e}");
        let png = RgbImage::new(4, 4).to_png();
        let e = RgbImage::from_png_bytes(&png[..png.len() / 2]).unwrap_err();
        assert!(matches!(e, Error::NotPng { .. }), "{e}");
        assert!(RgbImage::from_png_bytes(&[]).is_err());
    }

    #[test]
    fn grey_and_rgba_pngs_are_expanded() {
        for (ct, ch) in [
            (png::ColorType::Grayscale, 1),
            (png::ColorType::GrayscaleAlpha, 2),
            (png::ColorType::Rgba, 4),
        ] {
            let mut out = Vec::new();
            {
                let mut enc = png::Encoder::new(&mut out, 2, 1);
                enc.set_color(ct);
                enc.set_depth(png::BitDepth::Eight);
                let mut w = enc.write_header().unwrap();
                let data: Vec<u8> = (0..2 * ch).map(|i| 10 * (i as u8 + 1)).collect();
                w.write_image_data(&data).unwrap();
            }
            let img = RgbImage::from_png_bytes(&out).unwrap();
            assert_eq!((img.width(), img.height()), (2, 1));
            let p = img.get(0, 0);
            if ch < 3 {
                assert_eq!(p, [10, 10, 10]);
            } else {
                assert_eq!(p, [10, 20, 30]);
            }
        }
    }

    #[test]
    fn wrong_size_is_reported_with_both_sizes() {
        let dir = std::env::temp_dir().join(format!("argen-shapes-img-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("small.png");
        RgbImage::new(32, 16).save_png(&p).unwrap();
        let e = RgbImage::load_png_sized(&p, 64, 64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("32x16") && e.contains("64x64") && e.contains("small.png"),
            "{e}"
        );
        let e = RgbImage::load_png(&dir.join("missing.png")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn from_raw_checks_length() {
        assert!(RgbImage::from_raw(2, 2, vec![0; 11]).is_err());
        assert!(RgbImage::from_raw(usize::MAX, 2, vec![]).is_err());
    }
}
