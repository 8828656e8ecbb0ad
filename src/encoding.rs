//! Content codings: `Accept-Encoding` negotiation (RFC 9110 §12.5.3) and
//! compression with zstd, br, gzip and deflate (zlib, §8.4.1.2).

use axum::http::HeaderValue;
use bytes::Bytes;
use std::cell::RefCell;

/// A content coding brisk can produce, in the server's order of preference
/// when the client weighs several alike: cheapest to make first, at the
/// levels a first answer is compressed at (BENCHMARKS.md: zstd 3 makes Q7
/// in 2.4 ms, gzip 1 in 2.6, br 2 in 8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Zstd,
    Gzip,
    Deflate,
    Br,
}

/// Codings a client weighs alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Codings(u8);

impl Codings {
    pub fn contains(self, coding: Coding) -> bool {
        self.0 & (1 << coding.index()) != 0
    }

    fn with(self, coding: Coding) -> Codings {
        Codings(self.0 | (1 << coding.index()))
    }
}

impl Coding {
    pub const ALL: [Coding; 4] = [Coding::Zstd, Coding::Gzip, Coding::Deflate, Coding::Br];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }

    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    /// The suffix that tells this coding's ETag from the identity's.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Zstd => "zst",
            Coding::Br => "br",
            Coding::Gzip => "gz",
            Coding::Deflate => "df",
        }
    }

    fn from_token(token: &str) -> Option<Coding> {
        Coding::ALL
            .into_iter()
            .find(|c| c.token().eq_ignore_ascii_case(token))
    }
}

/// What to send, given the client's `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiated {
    Identity,
    Encode(Coding),
    /// `identity;q=0` (or `*;q=0`) and no coding brisk has is acceptable: 406.
    NotAcceptable,
}

/// The weights a client gave, in thousandths (q=0.5 is 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptEncoding {
    codings: [Option<u16>; 4],
    identity: Option<u16>,
    star: Option<u16>,
}

impl AcceptEncoding {
    /// Parses the header; members that do not parse are ignored, so a
    /// malformed header never fails the request. No header means "anything";
    /// brisk then sends identity.
    pub fn parse(header: Option<&HeaderValue>) -> Option<AcceptEncoding> {
        let text = header?.to_str().ok()?;
        let mut accept = AcceptEncoding {
            codings: [None; 4],
            identity: None,
            star: None,
        };
        for member in text.split(',') {
            let mut parts = member.split(';');
            let name = parts.next().unwrap_or("").trim();
            if name.is_empty() {
                continue;
            }
            let mut weight = Some(1000);
            for parameter in parts {
                let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                if key.trim().eq_ignore_ascii_case("q") {
                    weight = parse_qvalue(value.trim());
                }
            }
            let Some(weight) = weight else { continue };
            if name == "*" {
                accept.star = Some(weight);
            } else if name.eq_ignore_ascii_case("identity") {
                accept.identity = Some(weight);
            } else if let Some(coding) = Coding::from_token(name) {
                accept.codings[coding.index()] = Some(weight);
            } else if name.eq_ignore_ascii_case("x-gzip") {
                accept.codings[Coding::Gzip.index()].get_or_insert(weight);
            }
        }
        Some(accept)
    }

    /// The codings weighed alike with `coding` (and acceptable): when one of
    /// them is already made, it may be sent instead of making `coding`.
    pub fn alike(&self, coding: Coding) -> Codings {
        let weight = |c: Coding| self.codings[c.index()].or(self.star);
        let Some(q) = weight(coding) else {
            return Codings::default().with(coding);
        };
        Coding::ALL
            .into_iter()
            .filter(|c| weight(*c) == Some(q))
            .fold(Codings::default(), Codings::with)
    }

    /// The best coding for a body (of those weighed highest, the cheapest to
    /// make); `compressible` is false for bodies below the threshold, which
    /// go as identity whenever identity is acceptable.
    pub fn choose(&self, compressible: bool) -> Negotiated {
        // Identity is acceptable unless refused; when the client did not
        // weigh it (alone or through `*`), any acceptable coding beats it.
        let identity = self.identity.or(self.star);
        let best = Coding::ALL
            .into_iter()
            .filter_map(|c| Some((c, self.codings[c.index()].or(self.star)?)))
            .filter(|(_, q)| *q > 0)
            // highest weight; ties go to the earlier (preferred) coding
            .fold(None, |best: Option<(Coding, u16)>, (c, q)| match best {
                Some((_, bq)) if bq >= q => best,
                _ => Some((c, q)),
            });
        let identity_refused = identity == Some(0);
        match best {
            Some((coding, q)) if identity.is_none_or(|i| q >= i) => {
                if compressible || identity_refused {
                    Negotiated::Encode(coding)
                } else {
                    Negotiated::Identity
                }
            }
            _ if !identity_refused => Negotiated::Identity,
            _ => Negotiated::NotAcceptable,
        }
    }
}

/// Negotiates from the header (absent: identity).
pub fn negotiate(header: Option<&HeaderValue>, compressible: bool) -> Negotiated {
    match AcceptEncoding::parse(header) {
        Some(accept) => accept.choose(compressible),
        None => Negotiated::Identity,
    }
}

/// `q=0`, `q=0.5`, `q=1.000`: at most three decimals, from 0 to 1.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Compression levels per coding, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub zstd: i32,
    pub br: u32,
    pub gzip: u32,
    pub deflate: u32,
}

impl Levels {
    pub fn level(&self, coding: Coding) -> i32 {
        match coding {
            Coding::Zstd => self.zstd,
            Coding::Br => self.br as i32,
            Coding::Gzip => self.gzip as i32,
            Coding::Deflate => self.deflate as i32,
        }
    }
}

/// Compresses a whole body at `level`. gzip and deflate are libdeflate's,
/// whose levels run from 1 to 12: at 1 it is as fast as zlib-rs at 1 and
/// 20-25% smaller on the demo's answers, at 12 8% smaller than zlib at 9
/// (BENCHMARKS.md).
pub fn compress(coding: Coding, level: i32, input: &[u8]) -> Bytes {
    let mut out = match coding {
        Coding::Zstd => zstd::bulk::compress(input, level).expect("zstd compresses any input"),
        Coding::Br => {
            let mut out = Vec::with_capacity(input.len() / 4 + 64);
            let params = brotli::enc::BrotliEncoderParams {
                quality: level,
                lgwin: 22,
                size_hint: input.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &input[..], &mut out, &params)
                .expect("writing to a Vec cannot fail");
            out
        }
        Coding::Gzip | Coding::Deflate => return deflate(coding == Coding::Gzip, level, input),
    };
    // the cache weighs what it holds by length: hold no more than that
    out.shrink_to_fit();
    Bytes::from(out)
}

/// gzip (or zlib) by libdeflate, with this thread's compressor and output
/// buffer: made afresh for each body, their fresh memory was faulted in
/// page by page (the kernel's page clearing took 4% of a Q7 miss).
fn deflate(gzip: bool, level: i32, input: &[u8]) -> Bytes {
    use libdeflater::{CompressionLvl, Compressor};
    thread_local! {
        static DEFLATE: RefCell<Option<(i32, Compressor, Vec<u8>)>> = const { RefCell::new(None) };
    }
    DEFLATE.with_borrow_mut(|kept| {
        if !matches!(kept, Some((kept_level, ..)) if *kept_level == level) {
            let made = CompressionLvl::new(level).unwrap_or_else(|_| CompressionLvl::best());
            *kept = Some((level, Compressor::new(made), Vec::new()));
        }
        let (_, compressor, out) = kept.as_mut().expect("made above");
        let bound = if gzip {
            compressor.gzip_compress_bound(input.len())
        } else {
            compressor.zlib_compress_bound(input.len())
        };
        if out.len() < bound {
            out.resize(bound, 0);
        }
        let written = if gzip {
            compressor.gzip_compress(input, out)
        } else {
            compressor.zlib_compress(input, out)
        }
        .expect("the bound holds any input");
        let bytes = Bytes::copy_from_slice(&out[..written]);
        // a buffer grown for a rare large body is not kept
        if out.len() > KEPT_BUFFER {
            *out = Vec::new();
        }
        bytes
    })
}

/// The largest output buffer a thread keeps between bodies (Q7's 600 KB
/// fits): at most 32 blocking threads, each gone after a second idle, hold
/// one.
const KEPT_BUFFER: usize = 1 << 20;

/// Above this size a body is compressed (and, on PostgreSQL, enveloped) on
/// a blocking thread, not on the async worker.
pub const LARGE_BODY: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use Negotiated::*;

    fn pick(header: &str, compressible: bool) -> Negotiated {
        negotiate(Some(&HeaderValue::from_str(header).unwrap()), compressible)
    }

    #[test]
    fn negotiation_matrix() {
        assert_eq!(negotiate(None, true), Identity, "no header: identity");
        assert_eq!(pick("", true), Identity, "empty header: identity only");
        assert_eq!(pick("gzip", true), Encode(Coding::Gzip));
        assert_eq!(
            pick("gzip, deflate, br", true),
            Encode(Coding::Gzip),
            "ties go to the server's order: the cheapest to make"
        );
        assert_eq!(pick("gzip, deflate, br, zstd", true), Encode(Coding::Zstd));
        let alike = AcceptEncoding::parse(Some(&HeaderValue::from_static(
            "gzip, br;q=1, deflate;q=0.5",
        )))
        .unwrap()
        .alike(Coding::Gzip);
        assert!(alike.contains(Coding::Gzip) && alike.contains(Coding::Br));
        assert!(!alike.contains(Coding::Deflate) && !alike.contains(Coding::Zstd));
        assert_eq!(pick("br;q=0.5, gzip;q=0.8", true), Encode(Coding::Gzip));
        assert_eq!(
            pick("GZIP;Q=1", true),
            Encode(Coding::Gzip),
            "case-insensitive"
        );
        assert_eq!(pick("*", true), Encode(Coding::Zstd));
        assert_eq!(pick("*;q=0.5, br", true), Encode(Coding::Br));
        assert_eq!(pick("br;q=0, *", true), Encode(Coding::Zstd));
        assert_eq!(
            pick("gzip;q=0.5, identity", true),
            Identity,
            "identity weighed higher"
        );
        assert_eq!(
            pick("compress, sdch", true),
            Identity,
            "unknown codings only"
        );
        assert_eq!(pick("gzip;q=0", true), Identity);
        assert_eq!(pick("identity;q=0", true), NotAcceptable);
        assert_eq!(pick("identity;q=0, gzip", true), Encode(Coding::Gzip));
        assert_eq!(pick("*;q=0", true), NotAcceptable);
        assert_eq!(pick("*;q=0, identity", true), Identity);
        assert_eq!(pick("gzip", false), Identity, "small bodies go as identity");
        assert_eq!(
            pick("identity;q=0, gzip", false),
            Encode(Coding::Gzip),
            "unless identity is refused"
        );
        assert_eq!(pick("x-gzip", true), Encode(Coding::Gzip));
    }

    #[test]
    fn malformed_members_are_ignored() {
        assert_eq!(pick("gzip;q=2, br", true), Encode(Coding::Br));
        assert_eq!(pick("gzip;q=abc", true), Identity);
        assert_eq!(
            pick("gzip;q=0.1234, deflate", true),
            Encode(Coding::Deflate)
        );
        assert_eq!(pick(",,;;,br;;", true), Encode(Coding::Br));
        assert_eq!(pick("identity;q=-1, gzip", true), Encode(Coding::Gzip));
        assert_eq!(
            negotiate(Some(&HeaderValue::from_bytes(b"g\xffzip").unwrap()), true),
            Identity
        );
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.005"), Some(5));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.0001"), None);
        assert_eq!(parse_qvalue(".5"), None);
    }

    #[test]
    fn every_coding_round_trips() {
        use std::io::Read;
        let input: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"row {i}\"}},").into_bytes())
            .collect();
        for coding in Coding::ALL {
            let packed = compress(coding, 3, &input);
            assert!(packed.len() < input.len() / 4, "{coding:?}");
            let mut out = Vec::new();
            match coding {
                Coding::Zstd => out = zstd::decode_all(&packed[..]).unwrap(),
                Coding::Br => {
                    brotli::Decompressor::new(&packed[..], 4096)
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&packed[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Coding::Deflate => {
                    flate2::read::ZlibDecoder::new(&packed[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
            }
            assert_eq!(out, input, "{coding:?}");
        }
    }
}
