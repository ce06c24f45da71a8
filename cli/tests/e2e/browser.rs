//! The storefront in a real browser: headless Chromium driven over WebDriver (fantoccini and
//! chromedriver) against the whole shop from the built `souk` binary.
//!
//! These run when `SOUK_TEST_CHROMEDRIVER` names the chromedriver binary (Debian's
//! `chromium-driver` installs `/usr/bin/chromedriver`); without it they say they were skipped.
//! Screenshots of the main pages are kept under `<target dir>/souk-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::helpers::{Shop, free_port, signal};

const CHROMEDRIVER_VAR: &str = "SOUK_TEST_CHROMEDRIVER";
/// How long a page may take to show what the test waits for (a saga, the history projection).
const SETTLE: Duration = Duration::from_secs(30);

/// A chromedriver this test started, killed (by its pid) when dropped, and its browser profile.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chromedriver binary, or `None` (with a note why the tests are skipped).
fn chromedriver(test: &str) -> Option<String> {
    match std::env::var(CHROMEDRIVER_VAR) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            eprintln!(
                "skipped {test}: {CHROMEDRIVER_VAR} is not set (set it to a chromedriver binary, e.g. /usr/bin/chromedriver from Debian's chromium-driver)"
            );
            None
        }
    }
}

/// Starts chromedriver on a free port and opens a headless Chromium session on it.
async fn browser(chromedriver: &str) -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{CHROMEDRIVER_VAR}={chromedriver} cannot start: {e}"));
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
        &format!("--user-data-dir={}", driver._profile.path().display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), json!({ "args": args }));
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return (driver, client),
            // chromedriver takes a moment to listen.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("no WebDriver session from {chromedriver}: {err}"),
        }
    }
}

/// Where screenshots are kept: `<target dir>/souk-screenshots/`.
fn screenshots() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(&tmp).join("souk-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}

/// Waits until the page (reloaded by itself or by `reload`) contains `text`.
async fn wait_for_text(browser: &Client, text: &str, reload: bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let source = browser.source().await.unwrap();
        if source.contains(text) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {text:?}; last:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if reload {
            browser.refresh().await.unwrap();
        }
    }
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Searches for `words`, opens the first result, waits until it is in stock, adds it to the cart.
async fn search_and_add(browser: &Client, words: &str) -> String {
    fill(browser, "q", words).await;
    click(browser, "form.search button").await;
    wait_for_text(browser, "Results for", false).await;
    let first = browser.find(Locator::Css(".grid .card a")).await.unwrap();
    let name = first.text().await.unwrap();
    first.click().await.unwrap();
    wait_for_text(browser, "In stock", true).await;
    click(browser, "form.add button").await;
    wait_for_text(browser, "Your cart", false).await;
    name
}

/// Fills the checkout form with `card` and places the order; the order page's URL.
async fn check_out(browser: &Client, card: &str) -> String {
    browser.goto(&current_origin(browser).await).await.unwrap();
    click(browser, "a[href='/checkout']").await;
    wait_for_text(browser, "Shipping address", false).await;
    fill(browser, "name", "Ada Lovelace").await;
    fill(browser, "line1", "12 St James's Square").await;
    fill(browser, "city", "London").await;
    fill(browser, "postal_code", "SW1Y 4JH").await;
    fill(browser, "card_number", card).await;
    fill(browser, "exp_month", "12").await;
    fill(browser, "exp_year", "2031").await;
    fill(browser, "cvc", "123").await;
    click(browser, "form[action='/checkout'] button[type=submit]").await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path().starts_with("/orders/") {
            return url.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "checkout never reached an order page: {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cart page of the shop the browser is on.
async fn current_origin(browser: &Client) -> String {
    let url = browser.current_url().await.unwrap();
    format!("{}/cart", url.origin().ascii_serialization())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_signs_up_buys_two_products_sees_the_order_confirmed_and_a_declined_card_cancelled()
 {
    let Some(chromedriver) = chromedriver("the storefront's browser tests") else {
        return;
    };
    let shop = Shop::up(&[]).await;
    let (_driver, browser) = browser(&chromedriver).await;
    let home = format!("http://{}/", shop.gateway);

    browser.goto(&home).await.unwrap();
    wait_for_text(&browser, "Featured products", false).await;
    screenshot(&browser, "home").await;

    // The product page aggregate, as a browser asks for it (Accept-Encoding: gzip, deflate, br,
    // zstd): the composed object, decoded by the browser, never a part's answer.
    let page: serde_json::Value = shop
        .get("/api/v1/products?limit=1")
        .await
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap();
    browser
        .goto(&format!("{home}api/v1/products/{id}/details"))
        .await
        .unwrap();
    let text = browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let details: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(details["product"]["id"], id, "{details}");
    assert!(details["availability"].is_object(), "{details}");
    assert_eq!(details["degraded"], json!([]), "{details}");
    browser.goto(&home).await.unwrap();

    // Sign up: the account is made and the shopper is signed in.
    click(&browser, "a[href='/signup']").await;
    fill(&browser, "name", "Ada Lovelace").await;
    fill(&browser, "email", "ada@example.com").await;
    fill(&browser, "password", "analytical engine notes").await;
    click(&browser, "form[action='/signup'] button[type=submit]").await;
    wait_for_text(&browser, "Sign out", false).await;

    // Two products, found by searching.
    let first = search_and_add(&browser, "skillet").await;
    browser
        .goto(&format!("{home}products?q=headphones"))
        .await
        .unwrap();
    screenshot(&browser, "list").await;
    let second = search_and_add(&browser, "headphones").await;
    browser
        .goto(&format!("{home}products?q=skillet"))
        .await
        .unwrap();
    click(&browser, ".grid .card a").await;
    wait_for_text(&browser, "In stock", true).await;
    screenshot(&browser, "product").await;

    // The cart holds both; a quantity changes.
    browser.goto(&format!("{home}cart")).await.unwrap();
    let cart = wait_for_text(&browser, &second, false).await;
    assert!(cart.contains(&first), "{cart}");
    let quantity = browser
        .find(Locator::Css("form.qty input[name=quantity]"))
        .await
        .unwrap();
    quantity.clear().await.unwrap();
    quantity.send_keys("2").await.unwrap();
    click(&browser, "form.qty button").await;
    wait_for_text(&browser, "value=\"2\"", false).await;
    screenshot(&browser, "cart").await;

    // Checkout with the success card: the order page follows it to confirmed by itself.
    click(&browser, "a[href='/checkout']").await;
    wait_for_text(&browser, "4000 0000 0000 0002", false).await;
    screenshot(&browser, "checkout").await;
    let order = check_out(&browser, "4242 4242 4242 4242").await;
    assert!(order.contains("/orders/"), "{order}");
    wait_for_text(&browser, "Order confirmed", false).await;
    screenshot(&browser, "order").await;

    // It shows in the purchase history (a projection, so it may take a moment).
    let order_id = order.rsplit('/').next().unwrap().to_owned();
    browser.goto(&format!("{home}orders")).await.unwrap();
    wait_for_text(&browser, &order_id, true).await;
    wait_for_text(&browser, "badge confirmed", true).await;
    screenshot(&browser, "history").await;

    // The declined card: the order page shows the cancellation.
    search_and_add(&browser, "skillet").await;
    check_out(&browser, "4000000000000002").await;
    let cancelled = wait_for_text(&browser, "Order cancelled", false).await;
    assert!(cancelled.contains("declined"), "{cancelled}");
    screenshot(&browser, "order-declined").await;

    // A page that does not exist is a page, not a bare error.
    browser.goto(&format!("{home}no-such-page")).await.unwrap();
    wait_for_text(&browser, "Page not found", false).await;
    screenshot(&browser, "error-404").await;

    // The same shop on a phone-sized screen.
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&home).await.unwrap();
    wait_for_text(&browser, "Featured products", false).await;
    screenshot(&browser, "home-phone").await;
    browser.goto(&format!("{home}cart")).await.unwrap();
    wait_for_text(&browser, "Your cart", false).await;
    screenshot(&browser, "cart-phone").await;
    browser.set_window_size(1280, 1400).await.unwrap();

    // Signing out ends the session: the cart asks to sign in, and comes back afterwards.
    click(&browser, "form[action='/signout'] button").await;
    // The click only starts the form's submission: a navigation begun before its answer arrives
    // would be replaced by the redirect that answer carries. Wait for the signed-out page first.
    wait_for_text(&browser, "<a href=\"/signin\">Sign in</a>", false).await;
    browser.goto(&format!("{home}cart")).await.unwrap();
    wait_for_text(&browser, "Sign in</h1>", false).await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/signin");
    assert_eq!(url.query(), Some("next=%2Fcart"));
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_inventory_killed_the_product_page_still_renders_and_the_service_map_shows_it_down() {
    let Some(chromedriver) = chromedriver("the storefront's browser tests") else {
        return;
    };
    let shop = Shop::up(&[]).await;
    let (_driver, browser) = browser(&chromedriver).await;
    let home = format!("http://{}/", shop.gateway);
    browser
        .goto(&format!("{home}products?q=tent"))
        .await
        .unwrap();
    click(&browser, ".grid .card a").await;
    wait_for_text(&browser, "In stock", true).await;
    let product = browser.current_url().await.unwrap().to_string();

    // The map, before: every service is a box, inventory among them, up.
    // The read-only listener: a browser opens the map with no token.
    let map = format!("http://{}/map", shop.metrics);
    browser.goto(&map).await.unwrap();
    wait_for_css(&browser, "[data-service=inventory][data-status=up]").await;
    let boxes = browser
        .find_all(Locator::Css("#services .box"))
        .await
        .unwrap();
    assert_eq!(boxes.len(), 8, "a box per service behind the gateway");

    // Killed and kept down (the supervisor would restart it within a second otherwise).
    shop.hold("inventory", true).await;
    let killed = Instant::now();
    signal(shop.pid_of("inventory").await, Signal::SIGKILL);
    wait_for_css(&browser, "[data-service=inventory][data-status=down]").await;
    let seen = killed.elapsed();
    assert!(
        seen < Duration::from_secs(5),
        "the map showed inventory down only after {seen:?}"
    );
    eprintln!(
        "the service map showed inventory down {} ms after the kill",
        seen.as_millis()
    );
    for untouched in ["catalog", "cart", "orders"] {
        let css = format!("[data-service={untouched}][data-status=up]");
        assert!(
            browser.find(Locator::Css(&css)).await.is_ok(),
            "{untouched} should still be up"
        );
    }
    screenshot(&browser, "service-map-inventory-down").await;

    // The product page still renders, without availability.
    browser.goto(&product).await.unwrap();
    let page = wait_for_text(&browser, "Availability unknown", false).await;
    assert!(
        page.contains("Add to cart"),
        "the rest of the page is there"
    );
    screenshot(&browser, "product-inventory-down").await;

    // Let go: inventory comes back, and the map says so.
    shop.hold("inventory", false).await;
    browser.goto(&map).await.unwrap();
    wait_for_css(&browser, "[data-service=inventory][data-status=up]").await;
    browser.close().await.unwrap();
}

/// Waits until the page has an element matching `css`.
async fn wait_for_css(browser: &Client, css: &str) {
    let deadline = Instant::now() + SETTLE;
    while browser.find(Locator::Css(css)).await.is_err() {
        assert!(Instant::now() < deadline, "the page never showed {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most recent trace the gateway holds that `filter` (a `/traces` query) admits, whose root
/// is named `root` and whose services include all of `services`.
async fn find_trace(shop: &Shop, filter: &str, root: &str, services: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let list = shop.traces(filter).await;
        let found = list["traces"].as_array().and_then(|traces| {
            traces
                .iter()
                .find(|t| {
                    t["root_name"] == root
                        && services
                            .iter()
                            .all(|s| t["services"].as_array().unwrap().contains(&json!(s)))
                })
                .cloned()
        });
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no trace with {services:?} for {filter}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_s_checkout_is_drawn_as_a_waterfall_and_a_slowed_inventory_shows_as_the_slow_span()
 {
    let Some(chromedriver) = chromedriver("the trace page's browser test") else {
        return;
    };
    let shop = Shop::up(&[]).await;
    // Inventory slowed by the gateway's fault injector: every call to it waits 100 ms first
    // (under the product page's 150 ms for availability, so the page still shows it).
    let fault = shop
        .client
        .put(format!("http://{}/faults/upstreams/inventory", shop.admin))
        .bearer_auth(&shop.token)
        .json(&json!({ "delay_ms": 100, "delay_percent": 100 }))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success(), "{}", fault.status());
    let (_driver, browser) = browser(&chromedriver).await;
    let home = format!("http://{}/", shop.gateway);
    browser.goto(&home).await.unwrap();
    click(&browser, "a[href='/signup']").await;
    fill(&browser, "name", "Grace Hopper").await;
    fill(&browser, "email", "grace@example.com").await;
    fill(&browser, "password", "compilers all the way").await;
    click(&browser, "form[action='/signup'] button[type=submit]").await;
    wait_for_text(&browser, "Sign out", false).await;
    // The product page asks inventory for availability through the gateway: slowed.
    search_and_add(&browser, "skillet").await;
    let order = check_out(&browser, "4242424242424242").await;
    browser.goto(&order).await.unwrap();
    wait_for_text(&browser, "Order confirmed", false).await;

    // From the service map, through its link, to the list of traces.
    browser
        .goto(&format!("http://{}/map", shop.metrics))
        .await
        .unwrap();
    click(&browser, "a[href='waterfall']").await;
    wait_for_text(&browser, "<title>souk — traces</title>", false).await;

    // The checkout: the storefront's POST /checkout, through orders' saga to payments.
    let checkout = find_trace(
        &shop,
        "service=payments&route=storefront&limit=100",
        "POST storefront",
        &["storefront", "orders", "payments", "inventory"],
    )
    .await;
    let id = checkout["trace_id"].as_str().unwrap();
    click(&browser, &format!("a[href*='trace={id}']")).await;
    let page = wait_for_text(&browser, "saga charge", false).await;
    for row in [
        "saga reserve",
        "saga commit",
        "POST /v1/payments",
        "INSERT sagas",
    ] {
        assert!(page.contains(row), "the checkout's waterfall shows {row}");
    }
    screenshot(&browser, "waterfall-checkout").await;

    // The product page's trace: the injected 100 ms on the way to inventory is its slow span.
    let slowed = find_trace(
        &shop,
        "service=inventory&min_ms=100&limit=100",
        "GET storefront",
        &["storefront", "catalog"],
    )
    .await;
    let id = slowed["trace_id"].as_str().unwrap();
    browser
        .goto(&format!("http://{}/waterfall?trace={id}", shop.metrics))
        .await
        .unwrap();
    wait_for_text(&browser, "injected delay", false).await;
    let rows = browser
        .find_all(Locator::Css("details.span"))
        .await
        .unwrap();
    let mut delays = Vec::new();
    for row in rows {
        let text = row.text().await.unwrap();
        if text.contains("injected delay") {
            let ms = row
                .find(Locator::Css(".ms"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            delays.push(ms);
        }
    }
    let slow = delays.iter().any(|ms| {
        ms.trim_end_matches(" ms")
            .replace(',', "")
            .parse::<f64>()
            .is_ok_and(|ms| ms >= 100.0)
    });
    assert!(slow, "an injected delay of at least 100 ms: {delays:?}");
    // A row opens on a click, with its attributes.
    click(&browser, "details.span summary").await;
    let opened = browser
        .find(Locator::Css("details.span[open]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        opened.contains("http.route") && opened.contains("souk.attempts"),
        "{opened}"
    );
    screenshot(&browser, "waterfall-inventory-slowed").await;
    browser.close().await.unwrap();
}
