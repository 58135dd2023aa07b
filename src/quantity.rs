//! Kubernetes resource quantities (`500m`, `1Gi`, `2`, `1e3`) as exact values.
//!
//! The API server hands quantities back in canonical form (`1000m` becomes `1`, `1024Mi` becomes `1Gi`,
//! `0.5` becomes `500m`), so a written and a live quantity must be compared by value, not by text, or every
//! pass would see drift that is not there.

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

impl Quantity {
    /// Parses the Kubernetes quantity syntax: an optionally signed decimal number, then a binary suffix
    /// (`Ki` .. `Ei`), a decimal suffix (`n` .. `E`) or an exponent (`e3`, `E-2`). `None` when the text is
    /// not a quantity, or too large to hold exactly.
    pub fn parse(text: &str) -> Option<Quantity> {
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
        if let Some(&(_, power)) = BINARY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
            mantissa = mantissa.checked_mul(1i128 << power)?;
        } else if let Some(&(_, power)) = DECIMAL_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
            exponent += power;
        } else {
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
        Quantity { mantissa, exponent }.normalized()
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

/// Whether two texts are the same quantity (`1000m` and `1`, `1Gi` and `1024Mi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    matches!((Quantity::parse(a), Quantity::parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

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
