//! Pages as a shopper sees them: content, degraded parts, error pages.

use crate::helpers::{DEGRADED, ORDER, STOCKED, Shop};

#[tokio::test]
async fn the_home_page_shows_categories_and_products_in_html_with_its_own_stylesheet() {
    let shop = Shop::start().await;
    let page = shop.get("/", "").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Kitchen &#38; Dining"), "{html}");
    assert!(html.contains("Cast Iron Skillet"));
    assert!(
        html.contains(r#"alt="Cast Iron Skillet""#),
        "pictures have alt text"
    );
    assert!(html.contains(r#"<link rel="stylesheet" href="/static/shop.css">"#));
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from another host"
    );
    let css = shop.get("/static/shop.css", "").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let picture = shop.get("/assets/products/kit-0001.svg", "").await;
    assert_eq!(picture.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn the_product_page_says_availability_unknown_when_inventory_is_degraded() {
    let shop = Shop::start().await;
    let degraded = shop.get(&format!("/products/{DEGRADED}"), "").await;
    assert_eq!(
        degraded.status(),
        200,
        "a degraded part never fails the page"
    );
    let html = degraded.text().await.unwrap();
    assert!(html.contains("Availability unknown"), "{html}");
    assert!(html.contains("Dutch Oven"));
    let stocked = shop
        .get(&format!("/products/{STOCKED}"), "")
        .await
        .text()
        .await
        .unwrap();
    assert!(stocked.contains("In stock"));
    assert!(!stocked.contains("Availability unknown"));
}

#[tokio::test]
async fn a_gateway_answering_503_gives_the_unavailable_page_and_the_rest_still_works() {
    let shop = Shop::start().await;
    let page = shop.get("/products?q=broken", "").await;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("This part of the shop is unavailable"),
        "{html}"
    );
    assert!(html.contains("the rest still works"));
    assert_eq!(shop.get("/products?q=skillet", "").await.status(), 200);
}

#[tokio::test]
async fn the_product_list_pages_with_the_catalogs_cursor_and_keeps_the_search() {
    let shop = Shop::start().await;
    let html = shop
        .get("/products?q=iron+pan&category=kitchen", "")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"href="/products?q=iron+pan&#38;category=kitchen&#38;cursor=abc""#),
        "{html}"
    );
    assert!(
        html.contains(r#"value="iron pan""#),
        "the search box keeps the words"
    );
    assert!(html.contains(r#"aria-current="page">Kitchen &#38; Dining"#));
}

#[tokio::test]
async fn unknown_paths_get_the_404_page_and_unknown_api_paths_problem_json() {
    let shop = Shop::start().await;
    let page = shop.get("/nowhere", "").await;
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("Page not found"));
    let not_a_product = shop.get("/products/not-a-uuid", "").await;
    assert_eq!(not_a_product.status(), 404);
    let api = shop.get("/api/v1/nothing", "").await;
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn invalid_forms_come_back_as_422_with_each_fields_error_beside_it() {
    let shop = Shop::start().await;
    let (cookie, token) = shop.csrf().await;
    let (signed_in, signed_in_token) = shop.session().await;
    // The gateway's field errors (a weak password), shown on the sign-up form.
    let signup = shop
        .post(
            "/signup",
            &cookie,
            &[
                ("csrf", &token),
                ("name", "Ada"),
                ("email", "ada@example.com"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(signup.status(), 422);
    let html = signup.text().await.unwrap();
    assert!(
        html.contains("is one of the most common passwords"),
        "{html}"
    );
    assert!(html.contains(r#"aria-describedby="password-error""#));
    assert!(
        html.contains(r#"value="ada@example.com""#),
        "what was typed is kept"
    );
    // The storefront's own checks on the checkout form; the card number is never echoed.
    let checkout = shop
        .post(
            "/checkout",
            &signed_in,
            &[
                ("csrf", &signed_in_token),
                ("key", "01930000-0000-7000-8000-0000000000aa"),
                ("name", "Ada"),
                ("line1", ""),
                ("city", "London"),
                ("postal_code", "N1"),
                ("country", "GB"),
                ("card_number", "4242 4242 4242 424x"),
                ("exp_month", "13"),
                ("exp_year", "2031"),
                ("cvc", "123"),
            ],
        )
        .await;
    assert_eq!(checkout.status(), 422);
    let html = checkout.text().await.unwrap();
    for field in ["line1", "card_number", "exp_month"] {
        assert!(
            html.contains(&format!(r#"id="{field}-error""#)),
            "{field}: {html}"
        );
    }
    assert!(
        !html.contains("424x"),
        "the card number is not written back"
    );
    assert!(html.contains(r#"value="London""#));
}

#[tokio::test]
async fn a_checkout_form_sent_twice_registers_one_card_and_places_one_order() {
    let shop = Shop::start().await;
    let (signed_in, token) = shop.session().await;
    let form = shop
        .get("/checkout", &signed_in)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("4000 0000 0000 0002"),
        "the test cards are listed"
    );
    let marker = r#"name="key" value=""#;
    let key = form[form.find(marker).unwrap() + marker.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let fields = [
        ("csrf", token.as_str()),
        ("key", key.as_str()),
        ("name", "Ada"),
        ("line1", "1 Main St"),
        ("city", "London"),
        ("postal_code", "N1"),
        ("country", "GB"),
        ("card_number", "4242 4242 4242 4242"),
        ("exp_month", "12"),
        ("exp_year", "2031"),
        ("cvc", "123"),
    ];
    for _ in 0..2 {
        let placed = shop.post("/checkout", &signed_in, &fields).await;
        assert_eq!(placed.status(), 303);
        assert_eq!(
            placed.headers()["location"],
            format!("/orders/{ORDER}").as_str()
        );
    }
    let seen = shop.seen.lock().unwrap();
    assert_eq!(seen.cards, 1, "one card for one form");
    assert_eq!(seen.orders.len(), 2);
    assert_eq!(
        seen.orders[0], seen.orders[1],
        "the same key and body: one order"
    );
    assert_eq!(seen.orders[0].0, key);
    assert!(
        !seen.orders[0].1.contains("4242"),
        "only payments sees the card number"
    );
}
