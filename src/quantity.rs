//! Kubernetes resource quantities (`500m`, `1Gi`, `2`, `1e3`) as exact values.
//!
//! The API server hands quantities back in canonical form (`1000m` becomes `1`, `1024Mi` becomes `1Gi`,
//! `0.5` becomes `500m`), so a written and a live quantity must be compared by value, not by text, or every
//! pass would see drift that is not there. [`canonical`] writes that form, as the simulated cluster does.
//! Pure Kubernetes knowledge: nothing of Keelson.

/// A quantity's exact value: `mantissa * 10^exponent`, with trailing zeros moved into the exponent so that
/// equal values have equal representations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
}

const DECIMAL_SUFFIXES: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BINARY_SUFFIXES: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

/// How a quantity was written, which decides how its canonical form is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Ki` .. `Ei`
    BinarySi,
    /// `n` .. `E`, or no suffix
    DecimalSi,
    /// `e3`, `E-2`
    DecimalExponent,
}

impl Quantity {
    /// Parses the Kubernetes quantity syntax: an optionally signed decimal number, then a binary suffix
    /// (`Ki` .. `Ei`), a decimal suffix (`n` .. `E`) or an exponent (`e3`, `E-2`). `None` when the text is
    /// not a quantity, or too large to hold exactly.
    pub fn parse(text: &str) -> Option<Quantity> {
        parse_with_format(text).map(|(q, _)| q)
    }

    /// The value in thousandths, rounded up (`250m` -> 250, `1Gi` -> 1073741824000), as the scheduler
    /// compares requests; `None` when it does not fit.
    pub fn milli_value(self) -> Option<i128> {
        let e = self.exponent.checked_add(3)?;
        if e >= 0 {
            self.mantissa
                .checked_mul(10i128.checked_pow(u32::try_from(e).ok()?)?)
        } else {
            let d = 10i128.checked_pow(u32::try_from(-e).ok()?)?;
            let (q, r) = (self.mantissa / d, self.mantissa % d);
            Some(if r > 0 { q + 1 } else { q })
        }
    }

    /// The value as a whole number, when it is one.
    fn integer(self) -> Option<i128> {
        let exponent = u32::try_from(self.exponent).ok()?;
        self.mantissa.checked_mul(10i128.checked_pow(exponent)?)
    }

    /// Kubernetes keeps nine decimal places (nano units); finer values round away from zero.
    fn rounded_to_nano(self) -> Option<Quantity> {
        if self.exponent >= -9 {
            return Some(self);
        }
        let shift = u32::try_from(-9 - i64::from(self.exponent)).ok()?;
        let divisor = 10i128.checked_pow(shift);
        let mantissa = match divisor {
            Some(d) => {
                let (quotient, remainder) = (self.mantissa / d, self.mantissa % d);
                quotient + remainder.signum()
            }
            // Smaller than any nano unit: one nano unit.
            None => self.mantissa.signum(),
        };
        Quantity {
            mantissa,
            exponent: -9,
        }
        .normalized()
    }

    fn normalized(mut self) -> Option<Quantity> {
        if self.mantissa == 0 {
            return Some(Quantity {
                mantissa: 0,
                exponent: 0,
            });
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent = self.exponent.checked_add(1)?;
        }
        Some(self)
    }
}

fn parse_with_format(text: &str) -> Option<(Quantity, Format)> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    // 38 digits always fit an i128; longer numbers are not quantities anyone writes.
    if digits.len() > 38 {
        return None;
    }
    let mut mantissa: i128 = digits.parse().ok()?;
    let mut exponent = -i32::try_from(fraction.len()).ok()?;
    let format;
    if let Some(&(_, power)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        mantissa = mantissa.checked_mul(1i128 << power)?;
        format = Format::BinarySi;
    } else if let Some(&(_, power)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
        exponent += power;
        format = Format::DecimalSi;
    } else {
        format = Format::DecimalExponent;
        let power = suffix.strip_prefix(['e', 'E'])?;
        let digits = power.strip_prefix(['+', '-']).unwrap_or(power);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        exponent = exponent.checked_add(power.parse::<i32>().ok()?)?;
    }
    if negative {
        mantissa = -mantissa;
    }
    Some((Quantity { mantissa, exponent }.normalized()?, format))
}

/// The text a Kubernetes API server stores for the quantity `text`, e.g. `1000m` -> `1`, `1024Mi` -> `1Gi`,
/// `0.5` -> `500m`, `1.5Gi` -> `1536Mi`, `2000` -> `2k`; `None` when `text` is not a quantity. The suffix
/// family is kept (binary stays binary unless the value is below 1Ki or fractional; an exponent stays an
/// exponent), the number is a whole one, and decimal exponents are multiples of three.
pub fn canonical(text: &str) -> Option<String> {
    let (quantity, format) = parse_with_format(text)?;
    let quantity = quantity.rounded_to_nano()?;
    if quantity.mantissa == 0 {
        return Some("0".to_string());
    }
    if format == Format::BinarySi
        && let Some(mut whole) = quantity.integer().filter(|n| n.abs() >= 1024)
    {
        let mut power = 0;
        while whole % 1024 == 0 && power < BINARY_SUFFIXES.len() {
            whole /= 1024;
            power += 1;
        }
        let suffix = match power {
            0 => "",
            p => BINARY_SUFFIXES[p - 1].0,
        };
        return Some(format!("{whole}{suffix}"));
    }
    let (mut mantissa, mut exponent) = (quantity.mantissa, quantity.exponent);
    match exponent.rem_euclid(3) {
        1 => {
            mantissa = mantissa.checked_mul(10)?;
            exponent -= 1;
        }
        2 => {
            mantissa = mantissa.checked_mul(100)?;
            exponent -= 2;
        }
        _ => {}
    }
    let decimal = DECIMAL_SUFFIXES.iter().find(|(_, p)| *p == exponent);
    Some(match (format, decimal) {
        (Format::DecimalExponent, _) | (_, None) if exponent != 0 => format!("{mantissa}e{exponent}"),
        (_, Some((suffix, _))) => format!("{mantissa}{suffix}"),
        _ => mantissa.to_string(),
    })
}

/// Whether the field at `keys` (object keys from the object's root; list positions left out) holds a
/// quantity in the Kubernetes API: resource requests and limits (containers, claims), `emptyDir.sizeLimit`,
/// ResourceQuota `hard`, PersistentVolume `capacity`, pod and RuntimeClass `overhead`, LimitRange bounds.
pub fn is_quantity_field(keys: &[&str]) -> bool {
    let n = keys.len();
    let parent = |up: usize| if n > up { keys[n - 1 - up] } else { "" };
    matches!(
        (parent(2), parent(1)),
        ("resources", "requests" | "limits")
            | (_, "hard" | "capacity" | "overhead" | "podFixed")
            | (
                "limits",
                "max" | "min" | "default" | "defaultRequest" | "maxLimitRequestRatio"
            )
    ) || (parent(1) == "emptyDir" && parent(0) == "sizeLimit")
}

/// Whether two texts are the same quantity (`1000m` and `1`, `1Gi` and `1024Mi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    // Compared as stored: finer than nano units rounds up.
    let value = |text: &str| Quantity::parse(text).and_then(Quantity::rounded_to_nano);
    matches!((value(a), value(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values_round_up() {
        for (text, want) in [
            ("250m", 250),
            ("1", 1000),
            ("1Gi", 1_073_741_824_000),
            ("1n", 1),
            ("0", 0),
        ] {
            assert_eq!(
                Quantity::parse(text).and_then(Quantity::milli_value),
                Some(want),
                "{text}"
            );
        }
    }

    #[test]
    fn written_and_canonical_forms_are_the_same_value() {
        // (as written in a topology, as a Kubernetes API server returns it)
        let same = [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1e3", "1k"),
            ("100M", "1e8"),
            ("+1", "1"),
            ("0", "0m"),
            ("-1.5", "-1500m"),
            ("1E", "1e18"),
            ("12.", "12"),
            ("10e2147483646", "1e2147483647"),
            (".5", "500m"),
        ];
        for (written, canonical) in same {
            assert!(same_quantity(written, canonical), "{written} = {canonical}");
        }
        let different = [
            ("1", "1001m"),
            ("1Gi", "1G"),
            ("1Ki", "1k"),
            ("500m", "5"),
            ("1", "-1"),
        ];
        for (a, b) in different {
            assert!(!same_quantity(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn canonical_forms_are_the_api_servers() {
        let cases = [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1536", "1536"),
            ("2048Ki", "2Mi"),
            ("1e3", "1e3"),
            ("12e1", "120"),
            ("1.5e3", "1500"),
            ("100M", "100M"),
            ("500m", "500m"),
            ("0.1m", "100u"),
            ("0.0000000001", "1n"),
            ("-1.5", "-1500m"),
            ("-2048", "-2048"),
            ("-2Ki", "-2Ki"),
            ("+1", "1"),
            ("0Gi", "0"),
            ("1E", "1E"),
            ("1000E", "1e21"),
            ("1Ei", "1Ei"),
            ("1024Ei", "1024Ei"),
        ];
        for (written, stored) in cases {
            assert_eq!(canonical(written).as_deref(), Some(stored), "{written}");
            assert!(
                same_quantity(written, stored) || written == "0.0000000001",
                "{written}"
            );
        }
        assert_eq!(canonical("1GB"), None);
    }

    #[test]
    fn quantity_fields_by_path() {
        let yes: [&[&str]; 8] = [
            &[
                "spec",
                "template",
                "spec",
                "containers",
                "resources",
                "limits",
                "cpu",
            ],
            &["spec", "resources", "requests", "storage"],
            &["spec", "template", "spec", "volumes", "emptyDir", "sizeLimit"],
            &["spec", "hard", "requests.cpu"],
            &["spec", "capacity", "storage"],
            &["spec", "template", "spec", "overhead", "memory"],
            &["overhead", "podFixed", "cpu"],
            &["spec", "limits", "defaultRequest", "memory"],
        ];
        for keys in yes {
            assert!(is_quantity_field(keys), "{keys:?}");
        }
        let no: [&[&str]; 5] = [
            &["data", "sizeLimit"],
            &["data", "cpu"],
            &["spec", "replicas"],
            &["spec", "template", "spec", "containers", "resources", "limits"],
            &["metadata", "labels", "limits"],
        ];
        for keys in no {
            assert!(!is_quantity_field(keys), "{keys:?}");
        }
    }

    #[test]
    fn non_quantities_parse_to_none() {
        for bad in [
            "",
            ".",
            "Gi",
            "1GB",
            "1..5",
            "1.2.3",
            "one",
            "1 Gi",
            "1e",
            "1e+",
            "1ex",
            "-",
            "1KiB",
            &"9".repeat(39),
            "1e2147483647000",
        ] {
            assert_eq!(Quantity::parse(bad), None, "{bad:?}");
        }
    }
}
