//! The request target a client may send: origin-form (`/path?query`) in normal form, nothing
//! else. Routes and their policies are chosen on the path as the gateway reads it; a path that
//! an upstream could read otherwise — dot segments it would resolve, an encoded slash or dot it
//! would decode, an absolute-form target whose authority it might prefer to `Host` — could reach
//! a route the gateway did not choose (a public prefix, then `../admin`). Such targets are
//! refused with a 400 rather than rewritten, so what is forwarded is exactly what was routed.

use http::Uri;

/// Why a request's `Host` is refused: more than one (which would the upstream believe?), or
/// none on HTTP/1.1 (RFC 9112 §3.2 asks for a 400 both times).
pub fn check_host(headers: &http::HeaderMap, version: http::Version) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err("the request has more than one Host header"),
        (None, _) if version == http::Version::HTTP_11 => {
            Err("an HTTP/1.1 request needs a Host header")
        }
        _ => Ok(()),
    }
}

/// Why a target is refused; `Ok` when it is origin-form in normal form.
pub fn check(uri: &Uri) -> Result<(), &'static str> {
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err("send the path only (origin-form), not an absolute URL");
    }
    let path = uri.path();
    if !path.starts_with('/') {
        return Err("the path must start with /");
    }
    if path.contains("//") {
        return Err("the path has an empty segment (//)");
    }
    if path.contains('\\') {
        return Err("the path has a backslash");
    }
    for segment in path.split('/') {
        if segment == "." || segment == ".." {
            return Err("the path has a dot segment (. or ..)");
        }
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("the path has a % not followed by two hex digits")?;
            // Unreserved characters have one spelling (RFC 3986 §6.2.2.2), and `/`, `\`, `.`
            // and NUL encoded would make a path mean one thing here and another upstream.
            if decoded.is_ascii_alphanumeric()
                || matches!(decoded, b'-' | b'.' | b'_' | b'~' | b'/' | b'\\' | 0)
            {
                return Err("the path percent-encodes a character that has a plain spelling");
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(target: &str) -> Result<(), &'static str> {
        check(&target.parse::<Uri>().unwrap())
    }

    #[test]
    fn origin_form_in_normal_form_passes() {
        for good in [
            "/",
            "/api/v1/products?q=a%20b&x=../y",
            "/api/v1/products/01930000-0000-7000-8000-000000000001",
            "/assets/products/kit-0001.svg",
            "/caf%C3%A9",
            "/a%20b",
            "/a.b/c..d/.e",
        ] {
            assert_eq!(checked(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn ambiguous_targets_are_refused() {
        for bad in [
            "http://evil.example/api/v1/products",
            "/api/v1/products/../admin/products",
            "/api/v1/products/./x",
            "/api/v1/products/..",
            "/api/v1/%2e%2e/admin",
            "/api/v1/%2E%2E/admin",
            "/api/v1/products%2f..%2fadmin",
            "/api/v1/%61dmin/products",
            "/api//v1/products",
            "/api/v1/products%00",
            "/api/v1/products%5c..",
            "/api/v1/products%zz",
            "/api/v1/products%2",
        ] {
            assert!(checked(bad).is_err(), "{bad} passed");
        }
    }
}
