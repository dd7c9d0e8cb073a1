//! The built-in secret scrubber, on by default: values under secret-looking keys,
//! credentials inside URLs, and well-known token shapes in any string become
//! `[redacted]`, before the user's own `redact` hook sees them.
//!
//! Owns the rules and nothing else: which keys name a secret ([`secret_key`]) and which
//! parts of a string are one ([`scrub`]). Never allocates for a string with nothing to
//! redact, never uses a regular expression engine (one forward scan that skips what
//! cannot hold a secret), and never looks at numbers or booleans (`max_tokens: 1000` is
//! not a secret).

use std::borrow::Cow;

/// What stands in for a secret (and for a masked header).
pub(crate) const REDACTED: &str = "[redacted]";

/// Key names (lowercase, without `_`, `-`, `.` or spaces) whose string or structured values
/// are secrets.
const SECRET_KEYS: [&str; 16] = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "apikey",
    "token",
    "authorization",
    "auth",
    "bearer",
    "cookie",
    "credential",
    "credentials",
    "privatekey",
    "sessionid",
    "mcpsessionid",
];
/// Key name endings that name a secret (`client_secret`, `github_token`, `x-api-key`...).
const SECRET_SUFFIXES: [&str; 8] = [
    "password",
    "secret",
    "apikey",
    "token",
    "privatekey",
    "accesskey",
    "credentials",
    "signature",
];
/// Key name endings that look like a secret's but name a cursor (`nextPageToken`).
const NOT_SECRET_SUFFIXES: [&str; 4] = ["pagetoken", "nexttoken", "continuationtoken", "synctoken"];

/// Whether a value under `key` is a secret (when it is a string, an object or an array).
pub(crate) fn secret_key(key: &str) -> bool {
    if key.len() > 64 {
        return false;
    }
    let mut folded = [0u8; 64];
    let mut n = 0;
    for byte in key.bytes() {
        if matches!(byte, b'_' | b'-' | b'.' | b' ') {
            continue;
        }
        folded[n] = byte.to_ascii_lowercase();
        n += 1;
    }
    let Ok(name) = std::str::from_utf8(&folded[..n]) else {
        return false;
    };
    if NOT_SECRET_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    SECRET_KEYS.contains(&name) || SECRET_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `text` with every secret in it replaced by `[redacted]`: a URL's `user:password@`, a
/// `Bearer` token, a private key block, and words shaped like well-known tokens (Stripe
/// `sk_live_`, OpenAI and Anthropic `sk-`, GitHub `ghp_`/`github_pat_`, AWS `AKIA`,
/// Slack `xox?-`, Google `AIza`, npm `npm_`, JWTs). A word is a run of bytes that may be
/// part of a token or a URL (all ASCII, so every cut is a character boundary); only words
/// of at least [`SHORTEST`] bytes can hold one, and the scan skips ahead past any stretch
/// that cannot (in prose, most of it).
pub(crate) fn scrub(text: &str) -> Cow<'_, str> {
    if text.contains("PRIVATE KEY-----") && text.contains("-----BEGIN") {
        return Cow::Borrowed(REDACTED);
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut at = 0;
    while at + SHORTEST <= bytes.len() {
        // A word of SHORTEST bytes starting at `at` needs every byte of the window; the
        // last byte that is not a word byte tells how far to skip.
        if let Some(gap) = bytes[at..at + SHORTEST]
            .iter()
            .rposition(|&b| !word_byte(b))
        {
            at += gap + 1;
            continue;
        }
        let start = at;
        let mut end = start + SHORTEST;
        while end < bytes.len() && word_byte(bytes[end]) {
            end += 1;
        }
        at = end + 1;
        // Trailing punctuation ends a sentence, not a token.
        while end > start && matches!(bytes[end - 1], b'.' | b':' | b'?' | b'&' | b'#') {
            end -= 1;
        }
        let word = &text[start..end];
        let range = if (word.len() >= 16 && after_bearer(bytes, start)) || token_shaped(word) {
            Some((start, end))
        } else {
            url_credentials(word).map(|(s, e)| (start + s, start + e))
        };
        if let Some((s, e)) = range {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[last..s]);
            out.push_str(REDACTED);
            last = e;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[last..]);
            Cow::Owned(out)
        }
    }
}

/// The shortest word that can hold a secret shape (a URL with credentials, `s://u:p@h`).
const SHORTEST: usize = 9;

/// Whether a byte may be part of a token or a URL.
fn word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'_' | b'-'
                | b'.'
                | b'/'
                | b'+'
                | b'='
                | b':'
                | b'@'
                | b'%'
                | b'~'
                | b'?'
                | b'&'
                | b'#'
        )
}

/// Whether the word before the one at `start` is `Bearer` (any case).
fn after_bearer(bytes: &[u8], start: usize) -> bool {
    let before = bytes[..start].trim_ascii_end();
    before.len() >= 6
        && before[before.len() - 6..].eq_ignore_ascii_case(b"bearer")
        && (before.len() == 6 || !word_byte(before[before.len() - 7]))
}

/// The byte range of the `user:password` in a URL's authority (`scheme://user:pw@host`).
fn url_credentials(word: &str) -> Option<(usize, usize)> {
    let scheme_end = word.find("://")?;
    let authority_start = scheme_end + 3;
    let rest = &word[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    // A user with a password, or a lone token long enough to be one.
    (userinfo.contains(':') || userinfo.len() >= 20)
        .then_some((authority_start, authority_start + at))
}

/// Whether a word is shaped like a well-known credential (dispatched on its first byte:
/// most words are looked at no further).
fn token_shaped(word: &str) -> bool {
    let tail = |prefix: &str, min: usize| {
        word.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() >= min
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        })
    };
    match word.as_bytes().first() {
        Some(b's') => {
            tail("sk_live_", 10) || tail("sk_test_", 10) || (tail("sk-", 32) && mixed(&word[3..]))
        }
        Some(b'r') => tail("rk_live_", 10) || tail("rk_test_", 10),
        Some(b'w') => tail("whsec_", 10),
        Some(b'g') => {
            ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]
                .iter()
                .any(|p| tail(p, 30))
                || tail("github_pat_", 22)
        }
        Some(b'n') => tail("npm_", 30),
        Some(b'x') => ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"]
            .iter()
            .any(|p| tail(p, 10)),
        Some(b'A') => tail("AIza", 30) || aws_key_id(word),
        Some(b'e') => jwt(word),
        _ => false,
    }
}

/// Whether `text` has digits, uppercase and lowercase letters, as random keys do (and
/// hyphenated words do not).
fn mixed(text: &str) -> bool {
    let has = |f: fn(&u8) -> bool| text.as_bytes().iter().any(f);
    has(u8::is_ascii_digit) && has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase)
}

/// An AWS access key id: `AKIA` or `ASIA` and 16 uppercase letters or digits.
fn aws_key_id(word: &str) -> bool {
    word.len() == 20
        && (word.starts_with("AKIA") || word.starts_with("ASIA"))
        && word[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A JSON Web Token: `eyJ...` header and payload and a signature, base64url.
fn jwt(word: &str) -> bool {
    let mut parts = word.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'='))
    };
    header.starts_with("eyJ")
        && payload.starts_with("eyJ")
        && header.len() >= 10
        && payload.len() >= 10
        && base64url(header)
        && base64url(payload)
        && base64url(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised_in_any_spelling() {
        for key in [
            "password",
            "Password",
            "user_password",
            "api_key",
            "apiKey",
            "X-API-Key",
            "token",
            "access_token",
            "githubToken",
            "client_secret",
            "Authorization",
            "private_key",
            "aws_secret_access_key",
            "credentials",
            "Mcp-Session-Id",
        ] {
            assert!(secret_key(key), "{key}");
        }
        for key in [
            "query",
            "limit",
            "max_tokens",
            "tokens",
            "token_count",
            "nextPageToken",
            "page_token",
            "author",
            "path",
            "passage",
            "secretary_name",
        ] {
            assert!(!secret_key(key), "{key}");
        }
    }

    #[test]
    fn secrets_in_text_are_replaced_and_the_rest_kept() {
        let cases = [
            (
                "key sk_live_4eC39HqLyjWDarjtT1zdp7dc ok",
                "key [redacted] ok",
            ),
            (
                "clone https://alice:hunter2@git.example.com/repo.git now",
                "clone https://[redacted]@git.example.com/repo.git now",
            ),
            (
                "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
                "Authorization: Bearer [redacted]",
            ),
            (
                "token ghp_16C7e42F292c6912E7710c838347Ae178B4a in the log",
                "token [redacted] in the log",
            ),
            ("id AKIAIOSFODNN7EXAMPLE.", "id [redacted]."),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt [redacted]",
            ),
            (
                "openai sk-proj-Ab3dEfGh1jKlMn0pQrStUvWxYz123456AbCd",
                "openai [redacted]",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input), expected, "{input}");
        }
        assert_eq!(
            scrub("-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----"),
            REDACTED
        );
    }
}
