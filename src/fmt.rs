//! Human-readable formats shared by the CLI and the library's messages: sizes, times, modes.

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// A mode as every `--json` output writes it: the permission bits in octal, `"0644"`.
pub fn json_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

/// Whether logs on standard error may use colour: only on a terminal, and not with `NO_COLOR` set.
pub fn log_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `s` made safe to print on a terminal: control characters (C0, DEL, C1) are written as escapes
/// (`\n`, `\t`, `\x1b`, `\u{9b}`) and a backslash as `\\`, so a name from someone else's share cannot
/// move the cursor, recolour the screen or hide itself.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || c == '\\') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `s` with the secret part of every `noisefs://` link (after `#`: a key or a password salt) replaced by
/// `…`, for logs: they name blocks, never keys.
pub fn redact_links(s: &str) -> String {
    const SCHEME: &str = "noisefs://";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(SCHEME) {
        let (before, link) = rest.split_at(at);
        out.push_str(before);
        let end = link.find(char::is_whitespace).unwrap_or(link.len());
        let (token, after) = link.split_at(end);
        match token.split_once('#') {
            Some((root, _)) => {
                out.push_str(root);
                out.push_str("#…");
            }
            None => out.push_str(token),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Bytes from a human size: `1500`, `10K`, `1.5MiB`, `2 GB` (K, M, G, T are powers of 1024, with or
/// without `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 1500, 10K, 1.5MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit `{other}` in `{s}` (use K, M, G or T)")),
    };
    Ok((value * (1u64 << shift) as f64).round() as u64)
}

/// A duration from `30` (seconds), `30s`, `5m`, `12h`, `7d` or `2w`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a duration (examples: 30s, 5m, 12h, 7d)");
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// Seconds since the epoch from `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC), or an age such as `7d`,
/// `12h`, `30m` (that long before `now`).
pub fn parse_date(s: &str, now: i64) -> Result<i64, String> {
    let t = s.trim();
    let bad = || format!("`{s}` is not a date (examples: 2026-01-31, 2026-01-31T08:00, 7d, 12h)");
    if t.ends_with(|c: char| "smhdw".contains(c)) {
        if let Ok(age) = parse_duration(t) {
            return Ok(now - i64::try_from(age.as_secs()).map_err(|_| bad())?);
        }
    }
    let (date, time) = t.split_once(['T', ' ']).unwrap_or((t, ""));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, day] = d[..] else { return Err(bad()) };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, day) * 86_400;
    if !time.is_empty() {
        let parts: Vec<i64> = time
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [h, mi] if h < 24 && mi < 60 => secs += h * 3600 + mi * 60,
            [h, mi, sec] if h < 24 && mi < 60 && sec < 61 => secs += h * 3600 + mi * 60 + sec,
            _ => return Err(bad()),
        }
    }
    Ok(secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_lose_their_secrets_in_logs() {
        assert_eq!(
            super::redact_links("get noisefs://bafkrei#c2VjcmV0 -o x noisefs://b2#argon2id.AQ"),
            "get noisefs://bafkrei#… -o x noisefs://b2#…"
        );
        assert_eq!(
            super::redact_links("no link, noisefs://bare"),
            "no link, noisefs://bare"
        );
    }

    use super::*;

    #[test]
    fn names_print_without_their_control_characters() {
        assert_eq!(printable("report.txt"), "report.txt");
        assert_eq!(printable("é 日本"), "é 日本");
        assert_eq!(printable("\x1b[2Jevil\x07"), "\\x1b[2Jevil\\x07");
        assert_eq!(printable("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(printable("x\u{9b}y\u{7f}"), "x\\u{9b}y\\x7f");
        assert_eq!(printable("back\\slash"), "back\\\\slash");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("2 gb"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("7b"), Ok(7));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5X").unwrap_err().contains("unknown size unit"));
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date("1970-01-01", 0), Ok(0));
        assert_eq!(parse_date("2026-11-24", 0), Ok(1_795_478_400));
        assert_eq!(
            format_time(parse_date("2000-02-29T13:45", 0).unwrap()),
            "2000-02-29 13:45"
        );
        assert_eq!(parse_date("2000-02-29 13:45:30", 0), Ok(951_831_930));
        assert_eq!(parse_date("7d", 1_000_000), Ok(1_000_000 - 7 * 86_400));
        assert_eq!(parse_date("2h", 10_000), Ok(10_000 - 7200));
        assert_eq!(parse_date("1w", 0), Ok(-604_800));
        assert_eq!(parse_date("30m", 0), Ok(-1800));
        assert_eq!(parse_date("5s", 0), Ok(-5));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-01",
            "2026-01-01T25:00",
            "2026-01-01T10",
            "xd",
        ] {
            assert!(parse_date(bad, 0).unwrap_err().contains("not a date"), "{bad}");
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        for (s, secs) in [
            ("30", 30),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86_400),
            ("2w", 1_209_600),
        ] {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for bad in ["", "s", "5x", "-3s", "1.5m", "99999999999999999999w"] {
            assert!(
                parse_duration(bad).unwrap_err().contains("not a duration"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(1_795_000_000), "2026-11-18 11:06");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(mode_string(0o754), "rwxr-xr--");
    }
}
