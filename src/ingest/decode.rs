//! Text encodings of legacy exports: detection and per-field strict decoding.
//!
//! CSV is split on raw bytes (CP932 never uses `"`, `,`, CR or LF as a trail byte, so
//! splitting before decoding is safe), then each field is decoded strictly: a field
//! with bytes that are not valid in the file's encoding makes its row quarantined as
//! `undecodable_bytes` instead of being silently replaced with U+FFFD.
//!
//! CP932 is decoded with `encoding_rs::SHIFT_JIS` (the WHATWG Shift_JIS decoder is
//! Microsoft's CP932 / Windows-31J). It differs from Python's `cp932` codec only on the
//! single bytes 0xA0 and 0xFD–0xFF, which Python maps to private-use characters and we
//! treat as undecodable (they never stand for a character in a real export).

use crate::layout::EncodingChoice;

/// An encoding in use for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 without BOM.
    Utf8,
    /// UTF-8 with a BOM.
    Utf8Bom,
    /// CP932 / Windows-31J.
    Cp932,
}

impl Encoding {
    /// Name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8-bom",
            Encoding::Cp932 => "cp932",
        }
    }
}

/// How many bytes of a file detection looks at.
pub const DETECT_SAMPLE_BYTES: usize = 1 << 20;

/// Choose the encoding of a file from its first bytes: a UTF-8 BOM; else, among the
/// sample's lines that hold non-ASCII bytes, UTF-8 when at least half are valid UTF-8
/// (so one corrupt row does not flip the whole file); else CP932.
pub fn detect(choice: EncodingChoice, sample: &[u8]) -> Encoding {
    let has_bom = sample.starts_with(b"\xEF\xBB\xBF");
    match choice {
        EncodingChoice::Cp932 => Encoding::Cp932,
        EncodingChoice::Utf8 if has_bom => Encoding::Utf8Bom,
        EncodingChoice::Utf8 => Encoding::Utf8,
        EncodingChoice::Auto if has_bom => Encoding::Utf8Bom,
        EncodingChoice::Auto => {
            let mut non_ascii = 0usize;
            let mut valid = 0usize;
            let mut lines = sample.split(|&b| b == b'\n').peekable();
            while let Some(line) = lines.next() {
                let is_last = lines.peek().is_none();
                if line.is_ascii() {
                    continue;
                }
                match std::str::from_utf8(line) {
                    Ok(_) => {
                        non_ascii += 1;
                        valid += 1;
                    }
                    // A sample cut in the middle of a character: ignore that last line.
                    Err(e) if is_last && e.error_len().is_none() => {}
                    Err(_) => non_ascii += 1,
                }
            }
            if valid * 2 >= non_ascii {
                Encoding::Utf8
            } else {
                Encoding::Cp932
            }
        }
    }
}

/// Decode one field strictly; `None` when it holds undecodable bytes. NUL bytes never
/// stand for text in an export (they are corruption), so they count as undecodable.
pub fn decode_field(encoding: Encoding, bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    if bytes.contains(&0) {
        return None;
    }
    match encoding {
        Encoding::Utf8 | Encoding::Utf8Bom => std::str::from_utf8(bytes)
            .ok()
            .map(std::borrow::Cow::Borrowed),
        Encoding::Cp932 => {
            if bytes.is_ascii() {
                // ASCII is identical in CP932 (0x5C stays a backslash in CP932 data
                // exchanged as Windows-31J; encoding_rs agrees).
                return std::str::from_utf8(bytes)
                    .ok()
                    .map(std::borrow::Cow::Borrowed);
            }
            encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_bom_utf8_and_cp932() {
        assert_eq!(
            detect(EncodingChoice::Auto, b"\xEF\xBB\xBFa,b\n"),
            Encoding::Utf8Bom
        );
        assert_eq!(
            detect(EncodingChoice::Auto, "宛名,氏名\n".as_bytes()),
            Encoding::Utf8
        );
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("宛名番号,氏名\n品川,太郎\n");
        assert_eq!(detect(EncodingChoice::Auto, &sjis), Encoding::Cp932);
        assert_eq!(detect(EncodingChoice::Auto, b"a,b\n1,2\n"), Encoding::Utf8);
    }

    #[test]
    fn one_bad_line_does_not_flip_a_utf8_file() {
        let mut text = "宛名,氏名\n1,品川\n2,大井\n".as_bytes().to_vec();
        text.extend_from_slice(b"3,\xFF\n");
        assert_eq!(detect(EncodingChoice::Auto, &text), Encoding::Utf8);
    }

    #[test]
    fn strict_decoding_rejects_bad_bytes() {
        assert!(decode_field(Encoding::Cp932, b"\x95\x5C").is_some()); // 表
        assert!(decode_field(Encoding::Cp932, b"a\xFDb").is_none());
        assert!(decode_field(Encoding::Utf8, b"a\xFFb").is_none());
    }
}
