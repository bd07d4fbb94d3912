//! Paging of lists, the same for every protocol: items sorted bytewise by a key, at most
//! `size` of them after the key a page token names. Each protocol reads its own parameters
//! into a [`Page`] and writes the next key as its own token.

/// Which part of a list a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// At most this many items (`usize::MAX`: all).
    pub size: usize,
    /// Only items whose key is greater than this.
    pub after: Option<String>,
}

impl Page {
    /// The whole list.
    pub fn all() -> Self {
        Page {
            size: usize::MAX,
            after: None,
        }
    }
}

/// The items of `page`, sorted by `key` (bytewise, whatever the database's collation), and
/// the key of the last one when more follow.
pub fn paginate<T, K: AsRef<str>>(
    mut items: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<String>) {
    items.sort_by(|a, b| key(a).as_ref().cmp(key(b).as_ref()));
    let mut rest: Vec<T> = match &page.after {
        Some(after) => items
            .into_iter()
            .filter(|i| key(i).as_ref() > after.as_str())
            .collect(),
        None => items,
    };
    let more = rest.len() > page.size;
    rest.truncate(page.size);
    let next = if more {
        rest.last().map(|i| key(i).as_ref().to_string())
    } else {
        None
    };
    (rest, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_in_key_order() {
        let items = vec!["c", "a", "b", "d"];
        let first = Page {
            size: 2,
            after: None,
        };
        let (got, next) = paginate(items.clone(), &first, |s| *s);
        assert_eq!((got, next.as_deref()), (vec!["a", "b"], Some("b")));
        let second = Page {
            size: 2,
            after: next,
        };
        assert_eq!(
            paginate(items.clone(), &second, |s| *s),
            (vec!["c", "d"], None)
        );
        assert_eq!(paginate(items, &Page::all(), |s| *s).0.len(), 4);
    }
}
