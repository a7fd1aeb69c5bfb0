//! The JSON log format (`RINIT_LOG_FORMAT=json`, `logs.format: json`):
//! every line rinit writes, its own and each relayed service line, as one
//! JSON object, so log shippers (Loki, Fluent Bit, Cloud Logging) need no
//! regex. Pieces are already at most 16 KiB (the relay splits longer
//! lines), so an encoded line is bounded by 6 × 16 KiB plus the envelope.
//! Invalid UTF-8 becomes U+FFFD; control characters are `\u00XX`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static JSON: AtomicBool = AtomicBool::new(false);

/// Switches the format for every line written from now on.
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// `RINIT_LOG_FORMAT`'s values; None for anything else.
pub fn parse_format(text: &str) -> Option<bool> {
    match text {
        "json" => Some(true),
        "text" => Some(false),
        _ => None,
    }
}

/// One relayed service line: `{"ts":…,"service":…,"stream":…,"msg":…}`.
pub fn service_line(out: &mut Vec<u8>, service: &str, stream: &str, msg: &[u8]) {
    open(out, now_millis());
    field(out, "service", service.as_bytes());
    field(out, "stream", stream.as_bytes());
    field(out, "msg", msg);
    out.extend_from_slice(b"}\n");
}

/// One of rinit's own lines: `{"ts":…,"service":"rinit","level":…,"msg":…}`.
pub fn own_line(out: &mut Vec<u8>, level: &str, msg: &[u8]) {
    open(out, now_millis());
    field(out, "service", b"rinit");
    field(out, "stream", b"stderr");
    field(out, "level", level.as_bytes());
    field(out, "msg", msg);
    out.extend_from_slice(b"}\n");
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn open(out: &mut Vec<u8>, millis: u64) {
    out.extend_from_slice(b"{\"ts\":\"");
    rfc3339_millis(out, millis);
    out.push(b'"');
}

fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    escape(out, value);
    out.push(b'"');
}

/// A JSON string body for `bytes`, invalid UTF-8 replaced.
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let hex = b"0123456789abcdef";
                    let n = c as usize;
                    out.extend_from_slice(b"\\u00");
                    out.push(hex[n >> 4]);
                    out.push(hex[n & 15]);
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (UTC), by
/// the days-to-civil arithmetic of the proleptic Gregorian calendar.
pub fn rfc3339_millis(out: &mut Vec<u8>, millis: u64) {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    digits(out, y, 4);
    for (sep, n, width) in [
        (b'-', m, 2),
        (b'-', d, 2),
        (b'T', rem / 3600, 2),
        (b':', rem % 3600 / 60, 2),
        (b':', rem % 60, 2),
        (b'.', millis % 1000, 3),
    ] {
        out.push(sep);
        digits(out, n, width);
    }
    out.push(b'Z');
}

/// `n` in decimal, zero-padded to `width` (at most 4) digits.
fn digits(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = n;
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shifted so that eras of 400 years start on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(millis: u64) -> String {
        let mut out = Vec::new();
        rfc3339_millis(&mut out, millis);
        String::from_utf8(out).unwrap()
    }

    fn esc(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        escape(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_of_known_instants() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @951782400` = 2000-02-29 00:00:00 (a leap day of a
        // century leap year).
        assert_eq!(ts(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(ts(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(ts(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(ts(1_796_256_000_007), "2026-12-03T00:00:00.007Z");
    }

    #[test]
    fn escaping_quotes_controls_and_bad_utf8() {
        assert_eq!(esc(b"plain"), "plain");
        assert_eq!(esc(b"a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(esc(b"\t\r\n\x01\x1b\x7f"), "\\t\\r\\n\\u0001\\u001b\\u007f");
        assert_eq!(esc("é✓".as_bytes()), "é✓");
        assert_eq!(esc(b"a\xffb\xc3"), "a\u{fffd}b\u{fffd}");
        assert_eq!(esc(b"nul\0"), "nul\\u0000");
    }

    #[test]
    fn a_service_line_is_one_json_object() {
        let mut out = Vec::new();
        service_line(&mut out, "web", "stdout", b"GET / \"200\"");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"ts\":\""), "{text}");
        assert!(
            text.ends_with(
                ",\"service\":\"web\",\"stream\":\"stdout\",\"msg\":\"GET / \\\"200\\\"\"}\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches('\n').count(), 1);
    }

    #[test]
    fn formats() {
        assert_eq!(parse_format("json"), Some(true));
        assert_eq!(parse_format("text"), Some(false));
        assert_eq!(parse_format("JSON"), None);
    }
}
