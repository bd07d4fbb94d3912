//! tarn-secrets: keeping secrets out of what Tarn prints and records.
//!
//! Every message, log line, report and Delta log entry that shows a database URL or a
//! connection string shows it through [`redact_url`], the one place that knows where
//! passwords hide in one.
//!
//! ```
//! use tarn_secrets::redact_url;
//! assert_eq!(redact_url("postgres://app:pw@db/shop"), "postgres://***@db/shop");
//! assert_eq!(
//!     redact_url("postgres://db/shop?sslmode=require&password=pw"),
//!     "postgres://db/shop?sslmode=require&password=***"
//! );
//! assert_eq!(redact_url("host=db password=pw"), "host=db password=***");
//! ```

/// `text` (a URL such as `postgres://user:pw@host/db?password=pw`, or a `key=value`
/// connection string such as `host=db password=pw`) with every secret replaced by `***`:
///
/// - the user info of a URL (`user:password@`, up to the last `@`, so a password holding an
///   unescaped `@`, `/` or `?` is hidden whole), as `***@`;
/// - the value of every parameter whose name says it holds a secret (`password`, `pass`,
///   `pwd`, `sslpassword`, `sslkey`, `token`, `secret`, `sig`, and any name containing
///   `password`, `passwd`, `secret`, `token`, `credential` or `signature`), in a URL query
///   (`?password=…`, `&pass=…`) or a connection string (`password='…'`). Names are compared
///   without case and after percent-decoding (`pass%77ord`).
///
/// Text without either comes back unchanged. Over-redacting is preferred to a leak: with an
/// `@` in a query value, everything before it is hidden.
pub fn redact_url(text: &str) -> String {
    let masked = mask_secret_parameters(text);
    let Some(start) = masked.find("://").map(|s| s + 3) else {
        return masked;
    };
    match masked[start..].rfind('@') {
        Some(at) => format!("{}***{}", &masked[..start], &masked[start + at..]),
        None => masked,
    }
}

/// Whether a parameter named `name` holds a secret.
fn is_secret(name: &str) -> bool {
    let name: String = percent_decode(name)
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect();
    matches!(
        name.as_str(),
        "pass" | "pwd" | "sslkey" | "sig" | "key" | "apikey" | "accountkey" | "sastoken"
    ) || [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `%XX` escapes decoded (`+` as a space, as in a query), bytes that do not form UTF-8
/// replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces the value of every `name=value` parameter whose name says it holds a secret.
/// A parameter starts the text or follows `?`, `&`, `;` or white space.
///
/// In a URL (text with `://`) a value ends only at `&` or `#`: the `url` crate (which the
/// database drivers parse with) takes a space, tab or line break in a query value as part
/// of the value (encoding or dropping it), so `?password=open sesame` connects with the
/// password `open sesame`, and all of it must be hidden. The values of other parameters
/// are searched too, so a secret name after white space inside one is hidden as well.
///
/// In a `key=value` connection string a value ends at white space or, quoted (`'…'`), at
/// its closing quote.
fn mask_secret_parameters(text: &str) -> String {
    let in_url = text.contains("://");
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts_name = i == 0
            || matches!(
                bytes[i - 1],
                b'?' | b'&' | b';' | b' ' | b'\t' | b'\n' | b'\r'
            );
        if !starts_name {
            i += 1;
            continue;
        }
        let name_end = text[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.%[]+".contains(c)))
            .map_or(bytes.len(), |n| i + n);
        if name_end == i || name_end >= bytes.len() || bytes[name_end] != b'=' {
            i += 1;
            continue;
        }
        let value_start = name_end + 1;
        let value_end = if in_url {
            text[value_start..]
                .find(['&', '#'])
                .map_or(bytes.len(), |n| value_start + n)
        } else if bytes.get(value_start) == Some(&b'\'') {
            // A quoted value: up to the closing quote (`\'` and `''` stay inside).
            let mut j = value_start + 1;
            loop {
                match bytes.get(j) {
                    None => break bytes.len(),
                    Some(b'\\') => j += 2,
                    Some(b'\'') if bytes.get(j + 1) == Some(&b'\'') => j += 2,
                    Some(b'\'') => break j + 1,
                    Some(_) => j += 1,
                }
            }
            .min(bytes.len())
        } else {
            text[value_start..]
                .find(|c: char| c == '&' || c == '#' || c.is_whitespace())
                .map_or(bytes.len(), |n| value_start + n)
        };
        if is_secret(&text[i..name_end]) {
            out.push_str(&text[copied..value_start]);
            out.push_str("***");
            copied = value_end;
            i = value_end.max(i + 1);
        } else if in_url {
            // Look inside the value too (`?x=1 password=…` is hidden from `password` on).
            i = value_start;
        } else {
            i = value_end.max(i + 1);
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_hidden_whole() {
        for (url, want) in [
            ("postgres://app:pw@db/shop", "postgres://***@db/shop"),
            ("postgres://app@db/shop", "postgres://***@db/shop"),
            ("mysql://root:p@ss/w?rd@db:3306/x", "mysql://***@db:3306/x"),
            ("postgresql://u:p%40ss@h/d", "postgresql://***@h/d"),
            ("mysql://db/shop", "mysql://db/shop"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn secret_parameters_are_hidden_wherever_they_are() {
        for (url, want) in [
            (
                "postgres://db/shop?password=pw",
                "postgres://db/shop?password=***",
            ),
            (
                "postgres://db/shop?sslmode=require&password=pw&application_name=x",
                "postgres://db/shop?sslmode=require&password=***&application_name=x",
            ),
            (
                "postgres://app:pw@db/shop?PASSWORD=pw2#frag",
                "postgres://***@db/shop?PASSWORD=***#frag",
            ),
            (
                "postgres://db/shop?sslpassword=k&pass=a&pwd=b&pass%77ord=c&ssl-key=d",
                "postgres://db/shop?sslpassword=***&pass=***&pwd=***&pass%77ord=***&ssl-key=***",
            ),
            (
                "postgres://db/shop?password=se@cret",
                "postgres://db/shop?password=***",
            ),
            (
                "host=db user=app password='a b\\' c' dbname=shop",
                "host=db user=app password=*** dbname=shop",
            ),
            (
                "s3://bucket/t?X-Amz-Signature=abc&X-Amz-Security-Token=t",
                "s3://bucket/t?X-Amz-Signature=***&X-Amz-Security-Token=***",
            ),
            // Names that merely contain a secret word's letters elsewhere stay.
            (
                "postgres://db/shop?sslmode=require&passive=1",
                "postgres://db/shop?sslmode=require&passive=1",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn no_secret_survives_in_any_shape() {
        let secret = "Zq9secret";
        for url in [
            format!("postgres://u:{secret}@h/d"),
            format!("postgres://h/d?password={secret}"),
            format!("postgres://h/d?a=1&password={secret}&b=2"),
            format!("postgres://h/d?sslpassword={secret}"),
            format!("postgres://h/d?pass={secret}"),
            format!("mysql://u:{secret}@h/d?password={secret}"),
            format!("postgres://u:{secret}@h/d?application_name=a@b"),
            format!("postgres://u:x?{secret}@h/d"),
            format!("host=h password={secret}"),
            format!("host=h\tpassword='{secret}'"),
        ] {
            let shown = redact_url(&url);
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        // A secret in two parts: the `url` crate keeps white space inside a query value
        // (a space is encoded, a tab or line break dropped), so the driver connects with
        // both parts, and neither may show.
        let (one, two) = ("Zq9open", "Wx7sesame");
        for sep in [
            " ", "\t", "\n", "\r\n", "%20", "+", "%09", "%0A", "' '", "  ",
        ] {
            let secret = format!("{one}{sep}{two}");
            for url in [
                format!("postgres://h/d?password={secret}"),
                format!("postgres://h/d?password={secret}&sslmode=require"),
                format!("postgres://h/d?sslmode=require&password={secret}"),
                format!("postgres://h/d?a=1&b=2&password={secret}#frag"),
                format!("postgres://h/d?application_name=x&pass%77ord={secret}"),
                format!("postgres://h/d?sslmode=require&PassWord={secret}&application_name=y"),
                format!("postgres://h/d?password='{secret}'"),
                format!("postgres://u:{secret}@h/d?sslpassword={secret}"),
                format!("mysql://root@h:3306/d?ssl-mode=DISABLED&password={secret}"),
                format!("postgres://h/d?options=-c%20a%3Db password={secret}"),
            ] {
                let shown = redact_url(&url);
                assert!(
                    !shown.contains(one) && !shown.contains(two),
                    "{url:?} -> {shown:?}"
                );
            }
        }
    }

    #[test]
    fn a_url_query_value_ends_only_at_an_ampersand_or_a_hash() {
        for (url, want) in [
            (
                "postgres://h/d?password=open sesame",
                "postgres://h/d?password=***",
            ),
            (
                "postgres://h/d?password=open\tsesame&sslmode=require#f",
                "postgres://h/d?password=***&sslmode=require#f",
            ),
            (
                "postgres://h/d?application_name=my app&password=a b",
                "postgres://h/d?application_name=my app&password=***",
            ),
            // A connection string's value still ends at white space.
            (
                "host=h password=pw dbname=d",
                "host=h password=*** dbname=d",
            ),
        ] {
            assert_eq!(redact_url(url), want, "{url:?}");
        }
    }
}
