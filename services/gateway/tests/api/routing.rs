//! Routing: longest prefix on segment boundaries, prefix rewrite, method filter, and the
//! problem+json answers for what no route takes.

use serde_json::Value;

use crate::helpers::{Stub, TestGateway, assert_problem, server_section, toml_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_prefix_wins_on_segment_boundaries_and_the_prefix_is_rewritten() {
    let catalog = Stub::start("catalog").await;
    let orders = Stub::start("orders").await;
    let api = Stub::start("api").await;
    // The access log is on in this one test, so that its code path runs too.
    let gateway = TestGateway::start_with(&format!(
        r#"{server}
        [[routes]]
        name = "api"
        prefix = "/api"
        upstream = "api"

        [[routes]]
        name = "products"
        prefix = "/api/v1/products"
        upstream = "catalog"
        rewrite = "/v1/products"

        [[routes]]
        name = "orders"
        prefix = "/api/v1/orders"
        methods = ["GET", "POST"]
        upstream = "orders"
        rewrite = "/v1/orders/"

        [[routes]]
        name = "stock"
        prefix = "/stock"
        methods = ["GET", "POST"]
        upstream = "orders"

        [upstreams.catalog]
        endpoints = {catalog}
        [upstreams.orders]
        endpoints = {orders}
        [upstreams.api]
        endpoints = {api}
        "#,
        server = server_section(true),
        catalog = toml_list(&[catalog.addr]),
        orders = toml_list(&[orders.addr]),
        api = toml_list(&[api.addr]),
    ));

    let cases = [
        ("/api/v1/products/7", "catalog", "/v1/products/7", None),
        ("/api/v1/products", "catalog", "/v1/products", None),
        (
            "/api/v1/products/7?q=red%20shoes&page=2",
            "catalog",
            "/v1/products/7",
            Some("q=red%20shoes&page=2"),
        ),
        (
            "/api/v1/products?q=a",
            "catalog",
            "/v1/products",
            Some("q=a"),
        ),
        // Not on a segment boundary: the shorter prefix takes it, unrewritten.
        ("/api/v1/productsx", "api", "/api/v1/productsx", None),
        ("/api/v2/anything", "api", "/api/v2/anything", None),
        ("/api", "api", "/api", None),
        (
            "/api/v1/orders/12?full=1",
            "orders",
            "/v1/orders/12",
            Some("full=1"),
        ),
    ];
    for (path, stub, upstream_path, query) in cases {
        let response = gateway.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["stub"], stub, "{path}: {echo}");
        assert_eq!(echo["path"], upstream_path, "{path}: {echo}");
        assert_eq!(
            echo["query"],
            query.map_or(Value::Null, Value::from),
            "{path}: {echo}"
        );
    }
    let posted = gateway
        .client
        .post(gateway.url("/api/v1/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.json::<Value>().await.unwrap()["method"], "POST");
    assert_eq!(
        (catalog.hits(), orders.hits(), api.hits()),
        (4, 2, 3),
        "each request reached exactly one upstream"
    );

    // A method the longest matching prefix does not take is a 405 naming what it takes — never
    // a fall through to a shorter prefix (here `/api`) that knows nothing of the path…
    let refused = gateway
        .client
        .delete(gateway.url("/api/v1/orders/12"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["allow"], "GET, POST");
    assert_problem(refused, 405).await;
    assert_eq!(api.hits(), 3, "the shorter prefix's upstream was not asked");
    // …and the same where no shorter prefix exists.
    let refused = gateway
        .client
        .delete(gateway.url("/stock/12"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["allow"], "GET, POST");
    let body = assert_problem(refused, 405).await;
    assert!(body["detail"].is_string(), "{body}");

    for unknown in ["/", "/apix", "/shop/api/v1/products"] {
        assert_problem(gateway.get(unknown).await, 404).await;
    }
    assert_eq!(
        (catalog.hits(), orders.hits(), api.hits()),
        (4, 2, 3),
        "errors made by the gateway reach no upstream"
    );
}
