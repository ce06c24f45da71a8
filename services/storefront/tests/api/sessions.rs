//! Sessions: cookies and their flags, CSRF, sign-in redirects, refresh, return paths, and the
//! shopper's address passed on to the gateway.

use crate::helpers::{STOCKED, Shop, cookie_value, form_token, jar, set_cookies};

#[tokio::test]
async fn forms_without_a_valid_csrf_token_get_a_clear_403_page() {
    let shop = Shop::start().await;
    let (signed_in, token) = shop.session().await;
    let session_only: String = signed_in
        .split("; ")
        .filter(|c| !c.starts_with("souk_csrf="))
        .collect::<Vec<_>>()
        .join("; ");
    let add = [("product_id", STOCKED), ("quantity", "1")];
    for (cookies, csrf) in [
        (signed_in.as_str(), ""),                // no token
        (signed_in.as_str(), "forged"),          // a made-up token
        (session_only.as_str(), token.as_str()), // a token without its cookie
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
    // Another browser's token does not fit this browser's cookies.
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
async fn a_csrf_cookie_and_token_planted_from_another_session_are_refused() {
    // The attack: someone who can set cookies for the shop (a sibling subdomain, when cookies
    // are not __Host-) plants their own nonce in the victim's browser and posts a form with the
    // token that goes with it, which they got from a session of their own.
    let shop = Shop::start().await;
    let (attackers, attackers_token) = shop.session().await;
    let (anonymous, anonymous_token) = shop.csrf().await;
    let (victims, _) = shop.session().await;
    let planted = |nonce_from: &str| {
        let nonce = cookie_value(nonce_from, "souk_csrf");
        jar(&victims, &[format!("souk_csrf={nonce}; Path=/")])
    };
    let add = |token: &str| {
        vec![
            ("product_id", STOCKED.to_owned()),
            ("quantity", "1".to_owned()),
            ("csrf", token.to_owned()),
        ]
    };
    for (what, cookies, token) in [
        (
            "the attacker's signed-in pair",
            planted(&attackers),
            &attackers_token,
        ),
        ("a signed-out pair", planted(&anonymous), &anonymous_token),
    ] {
        let form = add(token);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = shop.post("/cart/add", &cookies, &form).await;
        assert_eq!(refused.status(), 403, "{what}");
        for path in ["/signout", "/checkout"] {
            assert_eq!(
                shop.post(path, &cookies, &form).await.status(),
                403,
                "{what} {path}"
            );
        }
    }
    assert!(
        shop.seen.lock().unwrap().logouts.is_empty(),
        "no forged sign-out got through"
    );
}

#[tokio::test]
async fn the_csrf_nonce_is_new_at_sign_in_and_sign_out() {
    let shop = Shop::start().await;
    let (before, token_before) = shop.csrf().await;
    let signed_in = shop
        .post(
            "/signin",
            &before,
            &[
                ("csrf", &token_before),
                ("email", "a@example.com"),
                ("password", "pw"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), 303);
    let after = jar(&before, &set_cookies(&signed_in));
    assert_ne!(
        cookie_value(&before, "souk_csrf"),
        cookie_value(&after, "souk_csrf")
    );
    // A token from before signing in (planted or not) is worth nothing after.
    let form = [
        ("product_id", STOCKED),
        ("quantity", "1"),
        ("csrf", &token_before),
    ];
    assert_eq!(shop.post("/cart/add", &after, &form).await.status(), 403);
    // Signing out makes another.
    let page = shop.get("/", &after).await;
    let after = jar(&after, &set_cookies(&page));
    let token = form_token(&page.text().await.unwrap());
    let out = shop.post("/signout", &after, &[("csrf", &token)]).await;
    assert_eq!(out.status(), 303);
    let out_cookies = jar(&after, &set_cookies(&out));
    assert_ne!(
        cookie_value(&after, "souk_csrf"),
        cookie_value(&out_cookies, "souk_csrf")
    );
    assert_eq!(cookie_value(&out_cookies, "souk_at"), "", "signed out");
}

#[tokio::test]
async fn signing_out_ends_the_login_at_identity() {
    // A copied refresh cookie must not outlive the sign-out: the storefront calls logout.
    let shop = Shop::start().await;
    let (signed_in, token) = shop.session().await;
    let out = shop.post("/signout", &signed_in, &[("csrf", &token)]).await;
    assert_eq!(out.status(), 303);
    let logouts = shop.seen.lock().unwrap().logouts.clone();
    assert_eq!(logouts.len(), 1, "{logouts:?}");
    let body: serde_json::Value = serde_json::from_str(&logouts[0]).unwrap();
    assert_eq!(body, serde_json::json!({"refresh_token": "r1"}));
}

#[tokio::test]
async fn session_cookies_of_two_sessions_are_no_session() {
    let shop = Shop::start().await;
    let (first, _) = shop.session().await;
    let (second, _) = shop.session().await;
    // The access token of one session beside the refresh token of another (one was planted).
    let mixed = format!(
        "souk_at={}; souk_rt={}",
        cookie_value(&first, "souk_at"),
        cookie_value(&second, "souk_rt")
    );
    let cart = shop.get("/cart", &mixed).await;
    assert_eq!(cart.status(), 303, "sent to sign in");
    let cleared = set_cookies(&cart);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("souk_at=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    // Each session alone works.
    assert_eq!(shop.get("/cart", &first).await.status(), 200);
}

#[tokio::test]
async fn outside_loopback_cookies_are_secure_host_only_and_unprefixed_ones_are_ignored() {
    let shop = Shop::start().await;
    let page = shop
        .client
        .get(shop.url("/signin"))
        .header("host", "shop.example")
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&page);
    let nonce = cookies
        .iter()
        .find(|c| c.starts_with("__Host-souk_csrf="))
        .expect("a __Host- nonce cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(nonce.contains(flag), "{nonce} lacks {flag}");
    }
    assert!(!nonce.contains("Domain"), "{nonce}");
    // A session cookie a sibling host could set (no prefix) is not a session there.
    let (local, _) = shop.session().await;
    let planted = shop
        .client
        .get(shop.url("/cart"))
        .header("host", "shop.example")
        .header("cookie", &local)
        .send()
        .await
        .unwrap();
    assert_eq!(
        planted.status(),
        303,
        "unprefixed cookies are ignored outside loopback"
    );
    // On the machine itself (the browser at 127.0.0.1) they are plain: no HTTPS there.
    let local_page = shop.get("/signin", "").await;
    assert!(
        set_cookies(&local_page)
            .iter()
            .any(|c| c.starts_with("souk_csrf=") && !c.contains("Secure"))
    );
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
        .find(|c| c.starts_with("souk_at=") && c.contains("~good;"))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
        assert!(access.contains(flag), "{access} lacks {flag}");
    }
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("souk_rt=") && c.contains("~r1;"))
        .unwrap();
    assert!(refresh.contains("HttpOnly") && refresh.contains("SameSite=Lax"));
    let session = |c: &str| {
        c.split('=')
            .nth(1)
            .unwrap()
            .split('~')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(session(access), session(refresh), "both name one session");
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
    let (session, _) = shop.session().await;
    let sid = cookie_value(&session, "souk_at")
        .split('~')
        .next()
        .unwrap()
        .to_owned();
    let stale = shop
        .get(
            "/orders/01930000-0000-7000-8000-00000000000a",
            &format!("souk_at={sid}~stale"),
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
    let (session, _) = shop.session().await;
    let sid = cookie_value(&session, "souk_at")
        .split('~')
        .next()
        .unwrap()
        .to_owned();
    let cart = shop
        .get("/cart", &format!("souk_at={sid}~stale; souk_rt={sid}~r1"))
        .await;
    assert_eq!(cart.status(), 200);
    let cookies = set_cookies(&cart);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("souk_at={sid}~good"))),
        "the same session: {cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("souk_rt={sid}~r2"))),
        "rotated: {cookies:?}"
    );
    assert!(cart.text().await.unwrap().contains("$69.98"));
    // No access cookie at all (it expired in the browser): refreshed before the call.
    assert_eq!(
        shop.get("/cart", &format!("souk_rt={sid}~r1"))
            .await
            .status(),
        200
    );
    // A refresh token that no longer works: sign in.
    assert_eq!(
        shop.get("/cart", &format!("souk_rt={sid}~old"))
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn pages_forbid_script_frames_and_sniffing_and_are_never_compressed() {
    let shop = Shop::start().await;
    let (signed_in, _) = shop.session().await;
    // A search page: the query is reflected beside the CSRF token of the sign-out form.
    let page = shop
        .client
        .get(shop.url("/products?q=csrf%3D"))
        .header("cookie", &signed_in)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "style-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store, no-transform");
    assert!(
        headers.get("content-encoding").is_none(),
        "a page with a token is not compressed: {headers:?}"
    );
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "no script on a page");
    // Each render masks the token afresh, so compression elsewhere could not find it either.
    let again = shop
        .get("/products?q=csrf%3D", &signed_in)
        .await
        .text()
        .await
        .unwrap();
    assert_ne!(form_token(&html), form_token(&again));
    // The stylesheet, which holds no secret, is still compressed.
    let css = shop
        .client
        .get(shop.url("/static/shop.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-encoding"], "gzip");
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
