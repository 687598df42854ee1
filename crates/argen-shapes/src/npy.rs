//! Minimal writer of NumPy `.npy` files (format version 1.0): a magic string, a little-endian
//! header length, a Python-dict header padded with spaces to a multiple of 64 bytes and ending
//! in a newline, then the raw C-order data.

use std::io::Write;

/// Writes the header of an array of dtype `descr` (e.g. `|u1`, `<i4`) and `shape`.
pub(crate) fn write_header<W: Write>(
    w: &mut W,
    descr: &str,
    shape: &[usize],
) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(dict.len() as u16).to_le_bytes())?;
    w.write_all(dict.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned_and_well_formed() {
        let mut v = Vec::new();
        super::write_header(&mut v, "|u1", &[10, 64, 64, 3]).unwrap();
        assert_eq!(v.len() % 64, 0);
        assert_eq!(&v[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([v[8], v[9]]) as usize;
        assert_eq!(len + 10, v.len());
        let text = std::str::from_utf8(&v[10..]).unwrap();
        assert!(text
            .starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (10, 64, 64, 3), }"));
        assert!(text.ends_with('\n'));
        let mut v = Vec::new();
        super::write_header(&mut v, "<i4", &[7]).unwrap();
        assert!(std::str::from_utf8(&v[10..]).unwrap().contains("(7,)"));
    }
}
