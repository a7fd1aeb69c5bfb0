//! Signal numbers and names for Linux, as plain data so that the core and
//! the config parser need no libc. The numbers are the generic Linux ones
//! (x86, arm, riscv); `os::signals` checks them against libc in a test.

pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGCONT: i32 = 18;

const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// `SIGTERM`, `TERM`, `term` or `15` to 15.
pub fn parse(text: &str) -> Option<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// `SIGTERM` for 15; realtime and unknown numbers as `SIG<n>`.
pub fn name(sig: i32) -> String {
    match NAMES.iter().find(|(_, v)| *v == sig) {
        Some((n, _)) => format!("SIG{n}"),
        None => format!("SIG{sig}"),
    }
}

/// The signals that end the container gracefully.
pub fn starts_shutdown(sig: i32) -> bool {
    matches!(sig, SIGTERM | SIGINT | SIGQUIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_prefixes() {
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("term"), Some(15));
        assert_eq!(parse("SIGINT"), Some(2));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("SIGNOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
    }

    #[test]
    fn names_round_trip() {
        for (_, n) in NAMES {
            assert_eq!(parse(&name(n)), Some(n));
        }
        assert_eq!(name(40), "SIG40");
    }
}
