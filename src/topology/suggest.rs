//! "Did you mean ...?" for names that nearly match: the closest candidate by edit distance, when it is
//! close enough to be a typo rather than another name.

/// The candidate nearest to `name`: at most 1 edit away for names of up to 4 characters, at most 2 for
/// longer ones (`memcache` -> `memcached`, `keystnoe` -> `keystone`); ties go to the first in order.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; three rows suffice for transpositions.
    let width = b.len() + 1;
    let mut before: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current: Vec<usize> = vec![0; width];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        let rows = [
            ("", "", 0),
            ("memcached", "memcached", 0),
            ("memcache", "memcached", 1),
            ("keystnoe", "keystone", 1),
            ("rabitmq", "rabbitmq", 1),
            ("nova", "neutron", 6),
            ("", "abc", 3),
            ("glance", "glance-api", 4),
        ];
        for (a, b, want) in rows {
            assert_eq!(edit_distance(a, b), want, "{a} {b}");
            assert_eq!(edit_distance(b, a), want, "{b} {a}");
        }
    }

    #[test]
    fn suggests_only_near_misses() {
        let known = [
            "mariadb",
            "memcached",
            "keystone",
            "nova-api",
            "nova-compute",
            "db",
        ];
        let rows = [
            ("memcache", Some("memcached")),
            ("mariabd", Some("mariadb")),
            ("nova-apis", Some("nova-api")),
            ("nova", None),
            ("horizon", None),
            ("dc", Some("db")),
            ("xy", None),
        ];
        for (name, want) in rows {
            assert_eq!(closest(name, known), want, "{name}");
        }
    }
}
