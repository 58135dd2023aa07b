//! One value against its option's type, the way `oslo_config.types` converts it: booleans, integers and
//! floats with their bounds, ports, choices, dicts, ranges, IP addresses, host names and URIs. Values are
//! given after `$name` substitution. Messages quote the value unless the option is secret.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::schema::{Kind, Opt};

const TRUE_VALUES: [&str; 4] = ["true", "1", "on", "yes"];
const FALSE_VALUES: [&str; 4] = ["false", "0", "off", "no"];

/// Checks `value` against `opt`; the error says what is wrong with it.
pub fn check(opt: &Opt, value: &str) -> Result<(), String> {
    let shown = if opt.secret {
        "the value (secret, not shown)".to_string()
    } else {
        format!("`{}`", value.replace('\n', "\\n"))
    };
    match &opt.kind {
        Kind::Boolean => {
            let lower = value.to_lowercase();
            if TRUE_VALUES.contains(&lower.as_str()) || FALSE_VALUES.contains(&lower.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "{shown} is not a boolean (true/false, yes/no, on/off, 1/0)"
                ))
            }
        }
        Kind::Integer | Kind::Port => {
            let what = if opt.kind == Kind::Port {
                "a port number"
            } else {
                "an integer"
            };
            match parse_integer(value) {
                Blank::Empty => Ok(()),
                Blank::Invalid => Err(format!("{shown} is not {what}")),
                Blank::Value(n) => number_in_range(opt, n as f64, &shown),
            }
        }
        Kind::Float => match parse_float(value) {
            Blank::Empty => Ok(()),
            Blank::Invalid => Err(format!("{shown} is not a number")),
            Blank::Value(n) => number_in_range(opt, n, &shown),
        },
        Kind::String | Kind::MultiString => check_string_choices(opt, value, &shown),
        Kind::Dict => check_dict(value),
        Kind::Range => check_range(opt, value, &shown),
        Kind::IpAddress => {
            if value.is_empty() {
                Err("an IP address cannot be empty".into())
            } else if is_ip(value) {
                Ok(())
            } else {
                Err(format!("{shown} is not an IPv4 or IPv6 address"))
            }
        }
        Kind::Hostname => hostname(value, false).map_err(|why| format!("{shown} is not a host name: {why}")),
        Kind::HostAddress => {
            if is_ip(value) || hostname(value, false).is_ok() {
                Ok(())
            } else {
                Err(format!("{shown} is not an IP address or a host name"))
            }
        }
        Kind::HostDomain => {
            if is_ip(value) || hostname(value, false).is_ok() || hostname(value, true).is_ok() {
                Ok(())
            } else {
                Err(format!("{shown} is not an IP address or a domain name"))
            }
        }
        Kind::Uri => check_uri(value).map_err(|why| format!("{shown} is not a URI: {why}")),
        Kind::List | Kind::Other(_) => Ok(()),
    }
}

/// A number that may be blank: oslo.config reads a blank integer or float as "unset".
enum Blank<T> {
    Empty,
    Invalid,
    Value(T),
}

/// Python's `int()` on a string: surrounding whitespace, a sign, digits with single `_` between them.
fn parse_integer(value: &str) -> Blank<i128> {
    let s = value.trim();
    if s.is_empty() {
        return Blank::Empty;
    }
    let (negative, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if !python_digits(digits) {
        return Blank::Invalid;
    }
    match digits.replace('_', "").parse::<i128>() {
        Ok(n) if negative => Blank::Value(-n),
        Ok(n) => Blank::Value(n),
        Err(_) => Blank::Invalid,
    }
}

/// ASCII digits, with `_` only between two digits.
fn python_digits(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// Python's `float()` on a string.
fn parse_float(value: &str) -> Blank<f64> {
    let s = value.trim();
    if s.is_empty() {
        return Blank::Empty;
    }
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if ["inf", "infinity", "nan"].contains(&unsigned) && lower.len() - unsigned.len() <= 1 {
        return match lower.parse::<f64>() {
            Ok(n) => Blank::Value(n),
            Err(_) => Blank::Invalid,
        };
    }
    // Underscores only between digits; the rest is what Rust's own float syntax accepts.
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            let digit_before = i > 0 && chars[i - 1].is_ascii_digit();
            let digit_after = chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
            if !digit_before || !digit_after {
                return Blank::Invalid;
            }
        } else if !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
            return Blank::Invalid;
        }
    }
    match s.replace('_', "").parse::<f64>() {
        Ok(n) => Blank::Value(n),
        Err(_) => Blank::Invalid,
    }
}

fn format_bound(bound: f64) -> String {
    if bound.fract() == 0.0 && bound.abs() < 1e15 {
        format!("{}", bound as i64)
    } else {
        format!("{bound}")
    }
}

fn number_in_range(opt: &Opt, n: f64, shown: &str) -> Result<(), String> {
    if !opt.choices.is_empty() {
        let matches = opt
            .choices
            .iter()
            .any(|c| c.parse::<f64>().is_ok_and(|choice| choice == n));
        return if matches {
            Ok(())
        } else {
            Err(format!("{shown} is not one of {}", opt.choices.join(", ")))
        };
    }
    if let Some(min) = opt.min {
        if n < min {
            return Err(format!("{shown} is below the minimum {}", format_bound(min)));
        }
    }
    if let Some(max) = opt.max {
        if n > max {
            return Err(format!("{shown} is above the maximum {}", format_bound(max)));
        }
    }
    Ok(())
}

fn check_string_choices(opt: &Opt, value: &str, shown: &str) -> Result<(), String> {
    if opt.choices.is_empty() || opt.choices.iter().any(|c| c == value) {
        return Ok(());
    }
    // The data does not say whether the type ignores case (oslo.log's rotation interval does): a value
    // that differs only in case is given the benefit of the doubt.
    if opt.choices.iter().any(|c| c.eq_ignore_ascii_case(value)) {
        return Ok(());
    }
    let listed: Vec<String> = opt
        .choices
        .iter()
        .map(|c| {
            if c.is_empty() {
                "`` (empty)".to_string()
            } else {
                format!("`{c}`")
            }
        })
        .collect();
    Err(format!("{shown} is not one of {}", listed.join(", ")))
}

/// `key:value` pairs separated by commas; a comma inside a value is allowed when the next part has no
/// colon (oslo.config rejoins parts until each pair has one).
fn check_dict(value: &str) -> Result<(), String> {
    let s = value.trim();
    if s.is_empty() {
        return Ok(());
    }
    let mut parts: std::collections::VecDeque<&str> = s.split(',').collect();
    let mut keys = std::collections::BTreeSet::new();
    while let Some(first) = parts.pop_front() {
        let mut pair = first.to_string();
        while !pair.contains(':') {
            match parts.pop_front() {
                Some(next) => {
                    pair.push(',');
                    pair.push_str(next);
                }
                None => return Err("a dict value is `KEY:VALUE` pairs separated by commas".into()),
            }
        }
        let key = pair.split(':').next().unwrap_or("").trim().to_string();
        if key.is_empty() {
            return Err("a dict key must not be empty".into());
        }
        if !keys.insert(key.clone()) {
            return Err(format!("the dict key `{key}` is given twice"));
        }
    }
    Ok(())
}

fn range_bound(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = digits == "0" && !s.starts_with('-')
        || (!digits.is_empty() && !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit()));
    if canonical { s.parse().ok() } else { None }
}

/// `N` or `N-M` with integers (negatives allowed), within the option's bounds.
fn check_range(opt: &Opt, value: &str, shown: &str) -> Result<(), String> {
    let invalid = || format!("{shown} is not a range (`N` or `N-M`)");
    // The separator is the first `-` that is not a sign.
    let split = value
        .char_indices()
        .skip(1)
        .find(|(i, c)| *c == '-' && value.as_bytes()[i - 1] != b'-')
        .map(|(i, _)| i);
    let (left, right) = match split {
        Some(i) => (range_bound(&value[..i]), Some(range_bound(&value[i + 1..]))),
        None => (range_bound(value), None),
    };
    let left = left.ok_or_else(invalid)?;
    let right = match right {
        Some(bound) => bound.ok_or_else(invalid)?,
        None => left,
    };
    let (low, high) = (left.min(right), left.max(right));
    if opt.min.is_some_and(|min| (low as f64) < min) || opt.max.is_some_and(|max| (high as f64) > max) {
        let min = opt.min.map(format_bound).unwrap_or_else(|| "-inf".into());
        let max = opt.max.map(format_bound).unwrap_or_else(|| "inf".into());
        return Err(format!("{shown} is outside {min}..{max}"));
    }
    Ok(())
}

fn is_ip(value: &str) -> bool {
    value.parse::<Ipv4Addr>().is_ok() || value.parse::<Ipv6Addr>().is_ok()
}

/// oslo.config's Hostname: at most 253 characters, labels of 1-63 letters, digits and `-` (and `_` for a
/// domain name) not starting or ending with `-`, a top-level label that is not all digits.
fn hostname(value: &str, underscore: bool) -> Result<(), String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let last = name.rsplit('.').next().unwrap_or("");
    if !last.chars().any(|c| c.is_ascii_alphabetic() || c == '-') {
        return Err("its top-level label has no letter".into());
    }
    for label in name.split('.') {
        let allowed = label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || (underscore && c == '_'));
        if label.is_empty() || label.len() > 63 || !allowed || label.starts_with('-') || label.ends_with('-')
        {
            return Err(format!("`{label}` is not a valid label"));
        }
    }
    Ok(())
}

fn unreserved_or_sub_delim(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=".contains(c)
}

/// RFC 3986 as oslo.config requires it: a valid scheme and a host, and a valid path.
fn check_uri(value: &str) -> Result<(), String> {
    let Some((scheme, rest)) = value.split_once(':') else {
        return Err("it has no scheme (`scheme://host`)".into());
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(format!("`{scheme}` is not a valid scheme"));
    }
    let Some(after) = rest.strip_prefix("//") else {
        return Err("it has no host (`scheme://host`)".into());
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(close) => &host_port[..=close],
            None => return Err("an IP literal host lacks its `]`".into()),
        }
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    if host.is_empty() {
        return Err("it has no host (`scheme://host`)".into());
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok() || inner.starts_with(['v', 'V'])
    } else {
        host.chars().all(|c| unreserved_or_sub_delim(c) || c == '%')
    };
    if !host_ok {
        return Err(format!("`{host}` is not a valid host"));
    }
    let path = tail.split(['?', '#']).next().unwrap_or("");
    if !path
        .chars()
        .all(|c| unreserved_or_sub_delim(c) || ":@/%".contains(c))
    {
        return Err(format!("`{path}` is not a valid path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(kind: Kind) -> Opt {
        Opt {
            name: "x".into(),
            dest: "x".into(),
            kind,
            multi: false,
            default: None,
            computed_default: false,
            choices: Vec::new(),
            min: None,
            max: None,
            secret: false,
            removal: None,
        }
    }

    fn bounded(kind: Kind, min: Option<f64>, max: Option<f64>) -> Opt {
        Opt {
            min,
            max,
            ..opt(kind)
        }
    }

    #[test]
    fn values_are_converted_as_oslo_config_converts_them() {
        let cases: Vec<(Opt, &str, Option<&str>)> = vec![
            (opt(Kind::Boolean), "True", None),
            (opt(Kind::Boolean), "off", None),
            (opt(Kind::Boolean), "", Some("is not a boolean")),
            (opt(Kind::Boolean), "enabled", Some("`enabled` is not a boolean")),
            (opt(Kind::Boolean), "true # note", Some("is not a boolean")),
            (opt(Kind::Integer), " 42 ", None),
            (opt(Kind::Integer), "-1", None),
            (opt(Kind::Integer), "1_000", None),
            (opt(Kind::Integer), "", None),
            (opt(Kind::Integer), "4.5", Some("is not an integer")),
            (opt(Kind::Integer), "1__0", Some("is not an integer")),
            (
                bounded(Kind::Integer, Some(1.0), None),
                "0",
                Some("below the minimum 1"),
            ),
            (
                bounded(Kind::Port, Some(0.0), Some(65535.0)),
                "65536",
                Some("above the maximum 65535"),
            ),
            (
                bounded(Kind::Port, Some(0.0), Some(65535.0)),
                "http",
                Some("is not a port number"),
            ),
            (opt(Kind::Float), "1e3", None),
            (opt(Kind::Float), "inf", None),
            (opt(Kind::Float), ".5", None),
            (opt(Kind::Float), "1,5", Some("is not a number")),
            (
                bounded(Kind::Float, Some(0.0), None),
                "-0.5",
                Some("below the minimum 0"),
            ),
            (opt(Kind::Dict), "a:1,b:2", None),
            (opt(Kind::Dict), "a:1,2,b:3", None),
            (opt(Kind::Dict), "", None),
            (opt(Kind::Dict), "a", Some("KEY:VALUE")),
            (opt(Kind::Dict), "a:1,a:2", Some("given twice")),
            (opt(Kind::Dict), ":1", Some("must not be empty")),
            (opt(Kind::Range), "1-100", None),
            (opt(Kind::Range), "-5--1", None),
            (opt(Kind::Range), "7", None),
            (opt(Kind::Range), "1-", Some("is not a range")),
            (
                bounded(Kind::Range, Some(1.0), Some(10.0)),
                "0-5",
                Some("outside 1..10"),
            ),
            (opt(Kind::IpAddress), "10.0.0.1", None),
            (opt(Kind::IpAddress), "::1", None),
            (
                opt(Kind::IpAddress),
                "10.0.0",
                Some("not an IPv4 or IPv6 address"),
            ),
            (opt(Kind::HostAddress), "0.0.0.0", None),
            (opt(Kind::HostAddress), "memcached.openstack.svc", None),
            (
                opt(Kind::HostAddress),
                "node_1",
                Some("not an IP address or a host name"),
            ),
            (
                opt(Kind::HostAddress),
                "10.0.0.256",
                Some("not an IP address or a host name"),
            ),
            (opt(Kind::HostDomain), "node_1.example", None),
            (opt(Kind::Hostname), "-bad", Some("not a host name")),
            (opt(Kind::Uri), "http://keystone.openstack.svc:5000/v3", None),
            (opt(Kind::Uri), "http://[::1]:5000", None),
            (opt(Kind::Uri), "keystone:5000", Some("no host")),
            (opt(Kind::Uri), "http://", Some("no host")),
            (opt(Kind::Uri), "http://a b", Some("not a valid host")),
            (opt(Kind::List), "anything, at all", None),
        ];
        for (opt, value, want) in cases {
            match (check(&opt, value), want) {
                (Ok(()), None) => {}
                (Err(e), Some(fragment)) => assert!(e.contains(fragment), "{:?} {value:?}: {e}", opt.kind),
                (got, want) => panic!("{:?} {value:?}: got {got:?}, wanted {want:?}", opt.kind),
            }
        }
    }

    #[test]
    fn choices_are_exact_but_case_is_forgiven() {
        let strategy = Opt {
            choices: vec!["keystone".into(), "noauth2".into()],
            ..opt(Kind::String)
        };
        assert!(check(&strategy, "keystone").is_ok());
        assert!(check(&strategy, "Keystone").is_ok());
        let error = check(&strategy, "keystones").expect_err("not a choice");
        assert_eq!(error, "`keystones` is not one of `keystone`, `noauth2`");
        let numeric = Opt {
            choices: vec!["4".into(), "6".into()],
            ..opt(Kind::Integer)
        };
        assert!(check(&numeric, "6").is_ok());
        assert!(check(&numeric, "5").is_err());
    }

    #[test]
    fn secret_values_are_never_shown() {
        let secret = Opt {
            secret: true,
            ..opt(Kind::Integer)
        };
        let error = check(&secret, "hunter2").expect_err("not an integer");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("secret, not shown"), "{error}");
    }
}
