//! Sessions: cookies and their flags, CSRF, sign-in redirects, refresh, return paths, and the
//! shopper's address passed on to the gateway.

use crate::helpers::{STOCKED, Shop, form_token, set_cookies};

#[tokio::test]
async fn forms_without_a_valid_csrf_token_get_a_clear_403_page() {
    let shop = Shop::start().await;
    let (cookie, token) = shop.csrf().await;
    let signed_in = format!("{cookie}; souk_at=good");
    let add = [("product_id", STOCKED), ("quantity", "1")];
    for (cookies, csrf) in [
        (signed_in.as_str(), ""),         // no token
        (signed_in.as_str(), "forged"),   // a made-up token
        ("souk_at=good", token.as_str()), // a token without its cookie
    ] {
        let mut form = add.to_vec();
        form.push(("csrf", csrf));
        let refused = shop.post("/cart/add", cookies, &form).await;
        assert_eq!(refused.status(), 403, "{cookies} {csrf}");
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("This form has expired")
        );
    }
    // Another browser's token does not fit this browser's cookie.
    let (_, other_token) = shop.csrf().await;
    let mut form = add.to_vec();
    form.push(("csrf", &other_token));
    assert_eq!(
        shop.post("/cart/add", &signed_in, &form).await.status(),
        403
    );
    // Its own token does.
    let mut form = add.to_vec();
    form.push(("csrf", &token));
    let accepted = shop.post("/signout", &signed_in, &form).await;
    assert_eq!(accepted.status(), 303);
}

#[tokio::test]
async fn signing_in_sets_http_only_same_site_cookies_and_returns_to_the_page() {
    let shop = Shop::start().await;
    let fresh = shop.get("/signin?next=/cart", "").await;
    let csrf_cookie = set_cookies(&fresh)
        .into_iter()
        .find(|c| c.starts_with("souk_csrf="))
        .unwrap();
    assert!(
        csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Lax")
            && csrf_cookie.contains("Path=/"),
        "{csrf_cookie}"
    );
    let cookie = csrf_cookie.split(';').next().unwrap().to_owned();
    let token = form_token(&fresh.text().await.unwrap());
    let signed_in = shop
        .post(
            "/signin",
            &cookie,
            &[
                ("csrf", &token),
                ("email", "ada@example.com"),
                ("password", "pw"),
                ("next", "/cart"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/cart");
    let cookies = set_cookies(&signed_in);
    let access = cookies
        .iter()
        .find(|c| c.starts_with("souk_at=good"))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
        assert!(access.contains(flag), "{access} lacks {flag}");
    }
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("souk_rt=r1"))
        .unwrap();
    assert!(refresh.contains("HttpOnly") && refresh.contains("SameSite=Lax"));
    // The gateway was told who the shopper is (the trusted peer forwarded 203.0.113.9).
    assert!(
        shop.seen
            .lock()
            .unwrap()
            .forwarded_for
            .iter()
            .any(|f| f == "203.0.113.9")
    );
}

#[tokio::test]
async fn signed_out_shoppers_are_sent_to_sign_in_and_back() {
    let shop = Shop::start().await;
    let cart = shop.get("/cart", "").await;
    assert_eq!(cart.status(), 303);
    assert_eq!(cart.headers()["location"], "/signin?next=%2Fcart");
    // A token the gateway refuses, and no refresh token: sign in again, the stale cookie cleared.
    let stale = shop
        .get(
            "/orders/01930000-0000-7000-8000-00000000000a",
            "souk_at=stale",
        )
        .await;
    assert_eq!(stale.status(), 303);
    assert!(
        stale.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/signin?next=%2Forders%2F")
    );
    assert!(
        set_cookies(&stale)
            .iter()
            .any(|c| c.starts_with("souk_at=;") && c.contains("Max-Age=0"))
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_with_the_refresh_token() {
    let shop = Shop::start().await;
    let cart = shop.get("/cart", "souk_at=stale; souk_rt=r1").await;
    assert_eq!(cart.status(), 200);
    let cookies = set_cookies(&cart);
    assert!(
        cookies.iter().any(|c| c.starts_with("souk_at=good")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("souk_rt=r2")),
        "rotated: {cookies:?}"
    );
    assert!(cart.text().await.unwrap().contains("$69.98"));
    // No access cookie at all (it expired in the browser): refreshed before the call.
    assert_eq!(shop.get("/cart", "souk_rt=r1").await.status(), 200);
    // A refresh token that no longer works: sign in.
    assert_eq!(shop.get("/cart", "souk_rt=old").await.status(), 303);
}

#[tokio::test]
async fn return_paths_never_leave_the_site() {
    let shop = Shop::start().await;
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let page = shop
            .get(&format!("/signin?next={}", urlencode(evil)), "")
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(r#"name="next" value="/""#), "{evil}");
        let (cookie, token) = shop.csrf().await;
        let signed_in = shop
            .post(
                "/signin",
                &cookie,
                &[
                    ("csrf", &token),
                    ("email", "a@example.com"),
                    ("password", "pw"),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(signed_in.status(), 303);
        assert_eq!(signed_in.headers()["location"], "/", "{evil}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}
