//! Decompression bombs for the hostile-input tests.
#![allow(dead_code)]

use std::io::Write;

/// A PNG that declares `width` x `height` RGB pixels and carries a few hundred bytes of zlib data:
/// its first 64 KiB of rows, all zeros. A whole image of zeros would compress about 1000:1, so the
/// 10.8 GB image of 60000x60000 fits a file of about 10 MB; the decoder must refuse it from the
/// header.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend((data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend(kind);
        png.extend(data);
        let crc = crc32fast::hash(&png[start..]);
        png.extend(crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter choice, not interlaced
    chunk(&mut png, b"IHDR", &header);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    zlib.write_all(&[0u8; 64 << 10]).unwrap(); // filter bytes 0 and black pixels alike
    chunk(&mut png, b"IDAT", &zlib.finish().unwrap());
    chunk(&mut png, b"IEND", &[]);
    png
}
