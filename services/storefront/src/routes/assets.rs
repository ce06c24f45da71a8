//! The storefront's own assets: its stylesheet, its icon and the product pictures (drawn here
//! per SKU, so no page ever fetches anything from another host).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use souk_chassis::Path;

/// The hand-written stylesheet.
pub(super) const STYLESHEET: &str = include_str!("../../static/shop.css");
const FAVICON: &str = include_str!("../../static/favicon.svg");

/// `GET /static/shop.css`.
pub(super) async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET.to_owned())
}

/// `GET /static/favicon.svg`.
pub(super) async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON.to_owned())
}

/// `GET /assets/products/{sku}.svg`: a picture for the product, drawn from its SKU's category
/// (the demo catalog's `image_url`s point here).
pub(super) async fn product_image(Path(file): Path<String>) -> Response {
    let sku = file.strip_suffix(".svg").unwrap_or("");
    let valid = !sku.is_empty()
        && sku.len() <= 40
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return StatusCode::NOT_FOUND.into_response();
    }
    asset("image/svg+xml", picture(&sku.to_ascii_uppercase()))
}

fn asset(content_type: &'static str, body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// An SVG for `sku`: the category's colours and symbol, shifted a little per product.
fn picture(sku: &str) -> String {
    let (prefix, number) = sku.split_once('-').unwrap_or((sku, ""));
    let seed = number
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let (hue, symbol) = match prefix {
        "KIT" => (
            18,
            r##"<circle cx="185" cy="160" r="70" fill="#3a3a3a"/><circle cx="185" cy="160" r="56" fill="#555"/><rect x="250" y="150" width="95" height="20" rx="10" fill="#3a3a3a"/>"##,
        ),
        "HOM" => (
            40,
            r##"<polygon points="200,70 300,150 100,150" fill="#8a5a2b"/><rect x="125" y="150" width="150" height="90" fill="#f4e6cf"/><rect x="185" y="185" width="30" height="55" fill="#8a5a2b"/>"##,
        ),
        "OUT" => (
            130,
            r##"<polygon points="200,70 310,235 90,235" fill="#2f6d3a"/><polygon points="200,120 235,235 165,235" fill="#1d4426"/>"##,
        ),
        "ELE" => (
            215,
            r##"<rect x="105" y="80" width="190" height="120" rx="10" fill="#1f2a38"/><rect x="117" y="92" width="166" height="96" rx="4" fill="#5fa8e8"/><rect x="185" y="200" width="30" height="25" fill="#1f2a38"/><rect x="150" y="225" width="100" height="10" rx="5" fill="#1f2a38"/>"##,
        ),
        "BOO" => (
            350,
            r##"<rect x="120" y="70" width="150" height="170" rx="6" fill="#7b1f2e"/><rect x="135" y="70" width="12" height="170" fill="#5a1521"/><rect x="165" y="105" width="85" height="12" rx="3" fill="#f3dfc1"/><rect x="165" y="125" width="60" height="8" rx="3" fill="#f3dfc1"/>"##,
        ),
        "TOY" => (
            280,
            r##"<rect x="110" y="150" width="80" height="80" rx="8" fill="#e0533d"/><rect x="210" y="150" width="80" height="80" rx="8" fill="#3d7de0"/><rect x="160" y="70" width="80" height="80" rx="8" fill="#f2b632"/>"##,
        ),
        "APP" => (
            250,
            r##"<path d="M150 80 L120 95 L90 140 L125 160 L140 140 L140 240 L260 240 L260 140 L275 160 L310 140 L280 95 L250 80 Q200 115 150 80 Z" fill="#34495e"/>"##,
        ),
        "BEA" => (
            320,
            r##"<rect x="165" y="110" width="70" height="130" rx="14" fill="#c2577f"/><rect x="182" y="80" width="36" height="34" rx="4" fill="#3a2a33"/><rect x="178" y="150" width="44" height="40" rx="4" fill="#f7d9e4"/>"##,
        ),
        "SPO" => (
            30,
            r##"<circle cx="200" cy="155" r="80" fill="#e67e22"/><path d="M120 155 H280 M200 75 V235 M143 98 Q200 155 143 212 M257 98 Q200 155 257 212" stroke="#7a3d0c" stroke-width="5" fill="none"/>"##,
        ),
        "GAR" => (
            95,
            r##"<rect x="160" y="170" width="80" height="70" rx="6" fill="#a0522d"/><ellipse cx="170" cy="125" rx="28" ry="50" fill="#3c8d40" transform="rotate(-25 170 125)"/><ellipse cx="230" cy="125" rx="28" ry="50" fill="#4caf50" transform="rotate(25 230 125)"/><rect x="196" y="110" width="8" height="62" fill="#2e6b31"/>"##,
        ),
        _ => (
            200,
            r##"<rect x="130" y="90" width="140" height="140" rx="12" fill="#5b6b7b"/>"##,
        ),
    };
    let hue = (hue + seed % 24) % 360;
    let light = 86 + seed % 6;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300" width="400" height="300" role="img"><rect width="400" height="300" fill="hsl({hue},55%,{light}%)"/><circle cx="{cx}" cy="{cy}" r="120" fill="hsl({hue},60%,{ring}%)" opacity="0.5"/>{symbol}<text x="388" y="290" font-family="sans-serif" font-size="14" text-anchor="end" fill="hsl({hue},30%,30%)">{sku}</text></svg>"##,
        cx = 60 + seed % 280,
        cy = 40 + seed % 220,
        ring = light - 8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_product_gets_a_picture_of_its_own() {
        let a = picture("KIT-0001");
        let b = picture("KIT-0002");
        assert!(a.starts_with("<svg") && a.ends_with("</svg>"));
        assert_ne!(a, b);
        assert!(a.contains("KIT-0001"));
    }
}
