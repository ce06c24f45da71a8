//! A route's path: a prefix matched on whole segments (`/api/v1/products` takes
//! `/api/v1/products/7`), or, with `exact = true`, one path only. Either may hold `{name}`
//! segments that match any one non-empty segment (`/api/v1/cart/items/{product_id}`), so a route
//! can name exactly the paths an operation lives at — and a 405's `Allow` can list exactly the
//! methods of that path, not those of its neighbours under the same prefix.
//!
//! Plain prefixes (no `{…}`, not exact), the shop's common case, keep the old string comparison;
//! only patterns walk the segments.

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A route's path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exact: bool,
    /// `None` for a plain prefix: matched as a string.
    segments: Option<Vec<Segment>>,
}

/// Where a path stands against a pattern, for ordering routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    segments: usize,
    exact: bool,
    literals: usize,
    length: usize,
}

impl Pattern {
    /// `text` as a pattern; `Err` names what is wrong with it.
    pub fn parse(text: &str, exact: bool) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must start with /"));
        }
        let templated = text.contains('{') || text.contains('}');
        if !templated && !exact {
            return Ok(Self {
                text: text.to_owned(),
                exact,
                segments: None,
            });
        }
        let mut names = std::collections::HashSet::new();
        let segments = split(text)
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if is_name(name) && names.insert(name) => {
                    Ok(Segment::Param(name.to_owned()))
                }
                Some(name) => Err(format!(
                    "{{{name}}} in {text:?}: a parameter is a unique name of letters, digits or _"
                )),
                None if segment.contains(['{', '}']) => Err(format!(
                    "{segment:?} in {text:?}: a parameter is a whole segment, {{name}}"
                )),
                None => Ok(Segment::Literal(segment.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            exact,
            segments: Some(segments),
        })
    }

    /// A pattern that matches no path.
    pub fn nothing() -> Self {
        Self {
            text: String::new(),
            exact: true,
            segments: Some(vec![
                Segment::Literal(String::new()),
                Segment::Literal(String::new()),
            ]),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it takes exactly one path.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// The names of its parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().flatten().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// How specific it is: more segments first, then an exact path before a prefix, then more
    /// literal segments, then a longer text. The most specific matching route owns a path.
    pub fn specificity(&self) -> Specificity {
        let (segments, literals) = match &self.segments {
            Some(segments) => (
                segments.len(),
                segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count(),
            ),
            None => {
                let n = split(&self.text).count();
                (n, n)
            }
        };
        Specificity {
            segments,
            exact: self.exact,
            literals,
            length: self.text.len(),
        }
    }

    /// Whether `path` (no query) is this pattern's, or under it for a prefix.
    pub fn matches(&self, path: &str) -> bool {
        let Some(segments) = &self.segments else {
            return prefix_matches(&self.text, path);
        };
        let mut given = split(path);
        for segment in segments {
            match (segment, given.next()) {
                (Segment::Literal(literal), Some(value)) if literal == value => {}
                (Segment::Param(_), Some(value)) if !value.is_empty() => {}
                _ => return false,
            }
        }
        !self.exact || given.next().is_none()
    }

    /// `path_and_query` (which this pattern matches) with its matched part replaced by
    /// `rewrite`, whose `{name}`s take the values the path gave them; the rest and the query
    /// are kept.
    pub fn rewrite(&self, rewrite: &str, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.find('?') {
            Some(at) => path_and_query.split_at(at),
            None => (path_and_query, ""),
        };
        let Some(segments) = &self.segments else {
            return splice(rewrite, &path_and_query[self.text.len().min(path.len())..]);
        };
        let mut given = split(path);
        let mut values = Vec::with_capacity(segments.len());
        for segment in segments {
            let value = given.next().unwrap_or_default();
            if let Segment::Param(name) = segment {
                values.push((name.as_str(), value));
            }
        }
        let mut out = String::with_capacity(path_and_query.len() + rewrite.len());
        for (i, segment) in split(rewrite).enumerate() {
            if i > 0 || rewrite.starts_with('/') {
                out.push('/');
            }
            let name = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            match name.and_then(|name| values.iter().find(|(n, _)| *n == name)) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(segment),
            }
        }
        if rewrite.ends_with('/') && rewrite.len() > 1 {
            out.push('/');
        }
        for rest in given {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(rest);
        }
        if out.is_empty() {
            out.push('/');
        }
        out.push_str(query);
        out
    }

    /// The public path of `upstream_path` (a path template from the upstream's own OpenAPI
    /// document, `{name}` for its parameters) when this route, forwarding as `served_under`
    /// (its rewrite, or its own pattern), serves it; the upstream's parameter names are kept.
    pub fn public_path(&self, served_under: &str, upstream_path: &str) -> Option<String> {
        let Some(segments) = &self.segments else {
            let rest = upstream_path.strip_prefix(served_under.trim_end_matches('/'))?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            return Some(format!("{}{rest}", self.text.trim_end_matches('/')));
        };
        // Which upstream segment each of the route's parameters lands in.
        let served: Vec<&str> = split(served_under).collect();
        let mut given = split(upstream_path);
        let mut by_name = Vec::new();
        for part in &served {
            let value = given.next()?;
            match part.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if value.starts_with('{') => by_name.push((name, value)),
                Some(_) => return None,
                None if *part == value => {}
                None => return None,
            }
        }
        let rest: Vec<&str> = given.collect();
        if self.exact && !rest.is_empty() {
            return None;
        }
        let mut out = String::new();
        for segment in segments {
            out.push('/');
            match segment {
                Segment::Literal(literal) => out.push_str(literal),
                Segment::Param(name) => {
                    let (_, value) = by_name.iter().find(|(n, _)| n == name)?;
                    out.push_str(value);
                }
            }
        }
        for segment in rest {
            out.push('/');
            out.push_str(segment);
        }
        Some(out)
    }
}

/// The segments of `path` after its leading `/` (none for `/`).
fn split(path: &str) -> impl Iterator<Item = &str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    path.split('/').filter({
        let empty = path.is_empty();
        move |_| !empty
    })
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `prefix` matches whole path segments: `/a/b` matches `/a/b`, `/a/b/c` and `/a/b?x`, not `/a/bc`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// `rewrite` followed by `rest` (what came after the prefix, query included), with one `/`
/// between them.
fn splice(rewrite: &str, rest: &str) -> String {
    match (rewrite.ends_with('/'), rest.starts_with('/')) {
        (true, true) => format!("{rewrite}{}", &rest[1..]),
        (false, false) if !rest.is_empty() && !rest.starts_with('?') => {
            format!("{rewrite}/{rest}")
        }
        _ => format!("{rewrite}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, exact: bool) -> Pattern {
        Pattern::parse(text, exact).unwrap()
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let products = p("/api/v1/products", false);
        assert!(products.matches("/api/v1/products"));
        assert!(products.matches("/api/v1/products/7"));
        assert!(!products.matches("/api/v1/productsx"));
        assert!(p("/", false).matches("/anything"));
    }

    #[test]
    fn exact_patterns_take_one_path_and_parameters_one_segment() {
        let items = p("/api/v1/cart/items/{product_id}", true);
        assert!(items.matches("/api/v1/cart/items/7"));
        assert!(!items.matches("/api/v1/cart/items"));
        assert!(!items.matches("/api/v1/cart/items/"));
        assert!(!items.matches("/api/v1/cart/items/7/more"));
        let cart = p("/api/v1/cart", true);
        assert!(cart.matches("/api/v1/cart"));
        assert!(!cart.matches("/api/v1/cart/items"));
        let stock = p("/api/v1/admin/stock/{sku}", false);
        assert!(stock.matches("/api/v1/admin/stock/A-1/adjustments"));
        assert!(!stock.matches("/api/v1/admin/stock"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["api", "/a/{}", "/a/{x}/{x}", "/a/b{x}", "/a/{x-y}", "/a/x}"] {
            assert!(Pattern::parse(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_more_specific_pattern_sorts_first() {
        let items = p("/api/v1/cart/items/{id}", true).specificity();
        let cart = p("/api/v1/cart", true).specificity();
        let prefix = p("/api/v1/cart", false).specificity();
        let featured = p("/api/v1/products/featured", true).specificity();
        let product = p("/api/v1/products/{id}", true).specificity();
        assert!(items > cart && cart > prefix);
        assert!(featured > product);
        assert!(prefix > p("/", false).specificity());
    }

    #[test]
    fn rewrites_put_parameters_in_place_and_keep_the_rest() {
        let items = p("/api/v1/cart/items/{product_id}", true);
        assert_eq!(
            items.rewrite("/v1/cart/items/{product_id}", "/api/v1/cart/items/7?x=1"),
            "/v1/cart/items/7?x=1"
        );
        let stock = p("/api/v1/admin/stock/{sku}", false);
        assert_eq!(
            stock.rewrite(
                "/v1/admin/stock/{sku}",
                "/api/v1/admin/stock/A-1/adjustments"
            ),
            "/v1/admin/stock/A-1/adjustments"
        );
        let plain = p("/api/v1/products", false);
        assert_eq!(
            plain.rewrite("/v1/products", "/api/v1/products?q=a"),
            "/v1/products?q=a"
        );
        assert_eq!(
            plain.rewrite("/v1/products", "/api/v1/products/7"),
            "/v1/products/7"
        );
        assert_eq!(
            p("/api/v1/admin", false).rewrite("/v1/admin/", "/api/v1/admin/stock/1"),
            "/v1/admin/stock/1"
        );
        let cart = p("/api/v1/cart", true);
        assert_eq!(cart.rewrite("/v1/cart", "/api/v1/cart?x"), "/v1/cart?x");
    }

    #[test]
    fn upstream_templates_map_back_to_public_paths() {
        let items = p("/api/v1/cart/items/{product_id}", true);
        let served = "/v1/cart/items/{product_id}";
        assert_eq!(
            items.public_path(served, "/v1/cart/items/{id}").as_deref(),
            Some("/api/v1/cart/items/{id}"),
            "the upstream document's parameter names are kept"
        );
        assert_eq!(items.public_path(served, "/v1/cart/items"), None);
        assert_eq!(items.public_path(served, "/v1/cart/items/{id}/x"), None);
        assert_eq!(items.public_path(served, "/v1/cart/items/literal"), None);
        let cart = p("/api/v1/cart", true);
        assert_eq!(
            cart.public_path("/v1/cart", "/v1/cart").as_deref(),
            Some("/api/v1/cart")
        );
        assert_eq!(cart.public_path("/v1/cart", "/v1/cart/items/{id}"), None);
        let stock = p("/api/v1/admin/stock/{sku}", false);
        assert_eq!(
            stock
                .public_path("/v1/admin/stock/{sku}", "/v1/admin/stock/{sku}/adjustments")
                .as_deref(),
            Some("/api/v1/admin/stock/{sku}/adjustments")
        );
        let plain = p("/api/v1/products", false);
        assert_eq!(
            plain
                .public_path("/v1/products", "/v1/products/{id}")
                .as_deref(),
            Some("/api/v1/products/{id}")
        );
        assert_eq!(plain.public_path("/v1/products", "/v1/productsx"), None);
    }
}
