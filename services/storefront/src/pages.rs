//! The pages: one askama template per page (checked at compile time, `templates/`), the frame
//! they share, and the error pages.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::gateway::{
    Availability, Card, Cart, Category, GatewayError, HistoryPage, Order, Product, Purchase,
};

/// What every page's frame needs: the account links and the CSRF token of its forms.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// Whether the shopper has a session (sign out, or sign in and sign up).
    pub signed_in: bool,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// The search box's words.
    pub q: String,
}

/// A 200 HTML page.
pub fn render(template: &impl Template) -> Result<Response, PageError> {
    render_with(StatusCode::OK, template)
}

/// An HTML page with `status`.
pub fn render_with(status: StatusCode, template: &impl Template) -> Result<Response, PageError> {
    let html = template.render().map_err(|e| {
        tracing::error!(error = %e, "a template failed to render");
        PageError::Broken
    })?;
    Ok((status, Html(html)).into_response())
}

/// A 303 to `location` (a path on this site).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Percent-encodes `text` for a query string.
pub fn encode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .to_owned()
}

/// Why a page could not be shown; each has its own page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 404.
    #[error("not found")]
    NotFound,
    /// The shopper must sign in (a redirect to the sign-in page, coming back afterwards).
    #[error("sign in required")]
    SignIn,
    /// 403: a form without a valid CSRF token.
    #[error("forbidden")]
    Forbidden,
    /// 400: a form or query the storefront cannot read.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 429, with the seconds to wait when known.
    #[error("too many requests")]
    TooMany(Option<u64>),
    /// The gateway refused for a reason the page does not handle itself.
    #[error("refused ({status}): {detail}")]
    Refused {
        /// The gateway's status.
        status: StatusCode,
        /// Its explanation.
        detail: String,
    },
    /// 503: the part of the shop this page needs is unavailable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A template failed: a bug, logged.
    #[error("a page failed to render")]
    Broken,
}

impl From<GatewayError> for PageError {
    fn from(error: GatewayError) -> Self {
        match error {
            GatewayError::Unauthorized => Self::SignIn,
            GatewayError::NotFound => Self::NotFound,
            GatewayError::TooMany(wait) => Self::TooMany(wait),
            GatewayError::Rejected { status, problem } => Self::Refused {
                status,
                detail: problem
                    .detail
                    .or(problem.title)
                    .unwrap_or_else(|| "the shop refused this request".into()),
            },
            GatewayError::Unavailable(reason) => Self::Unavailable(reason),
        }
    }
}

impl PageError {
    /// Its page, in the shopper's frame.
    pub fn page(self, chrome: Chrome) -> Response {
        let (status, title, message) = match &self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "We looked everywhere, but there is nothing at this address. The product may have been removed, or the link may be mistyped.".to_owned(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "For your safety we only accept forms sent from this shop's own pages. Go back, reload the page and try again.".to_owned(),
            ),
            Self::BadRequest(detail) => (
                StatusCode::BAD_REQUEST,
                "We could not read that request",
                detail.clone(),
            ),
            Self::TooMany(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Slow down a little",
                match wait {
                    Some(seconds) => format!("Too many attempts in a short time. Please try again in {seconds} seconds."),
                    None => "Too many attempts in a short time. Please try again in a minute.".to_owned(),
                },
            ),
            Self::Refused { status, detail } => (
                if status.is_client_error() { *status } else { StatusCode::BAD_REQUEST },
                "The shop could not do that",
                detail.clone(),
            ),
            Self::Unavailable(reason) => {
                tracing::warn!(%reason, "a page's part of the shop is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "This part of the shop is unavailable",
                    "This part of the shop is unavailable right now, the rest still works. Please try again in a moment, or keep browsing.".to_owned(),
                )
            }
            Self::Broken | Self::SignIn => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side",
                "We have logged the problem. Please try again.".to_owned(),
            ),
        };
        let page = ErrorPage {
            chrome,
            status: status.as_u16(),
            title,
            message,
            // Only a kept trace (sampled: flags 01) can be opened by whoever is told its id.
            trace_id: souk_chassis::telemetry::exporting()
                .then(|| souk_chassis::telemetry::traceparent(&tracing::Span::current()))
                .flatten()
                .filter(|t| t.ends_with("-01"))
                .and_then(|t| t.split('-').nth(1).map(str::to_owned)),
        };
        let retry_after = match &self {
            Self::TooMany(Some(wait)) => Some(*wait),
            Self::Unavailable(_) => Some(5),
            _ => None,
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => status.into_response(),
        };
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::try_from(seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// An error page.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The frame.
    pub chrome: Chrome,
    /// The HTTP status.
    pub status: u16,
    /// Its headline.
    pub title: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// The trace of this request, when traces are collected: the shopper can quote it, and
    /// whoever runs the shop opens it (`souk trace <id>`, or the trace page).
    pub trace_id: Option<String>,
}

/// The home page.
#[derive(Debug, Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// The frame.
    pub chrome: Chrome,
    /// Every category.
    pub categories: Vec<Category>,
    /// A few products.
    pub featured: Vec<Product>,
}

/// The product list.
#[derive(Debug, Template)]
#[template(path = "products.html")]
pub struct ProductsPage {
    /// The frame.
    pub chrome: Chrome,
    /// Categories, for the filter.
    pub categories: Vec<Category>,
    /// The category shown, if any.
    pub category: Option<Category>,
    /// The products on this page.
    pub products: Vec<Product>,
    /// The next page's link.
    pub next: Option<String>,
    /// The first page's link, when this is a later one.
    pub first: Option<String>,
}

/// A product's page.
#[derive(Debug, Template)]
#[template(path = "product.html")]
pub struct ProductPage {
    /// The frame.
    pub chrome: Chrome,
    /// The product.
    pub product: Product,
    /// What one can buy now; `None` when it is unknown.
    pub availability: Option<Availability>,
    /// Its category's name, when known.
    pub category_name: String,
}

/// The cart.
#[derive(Debug, Template)]
#[template(path = "cart.html")]
pub struct CartPage {
    /// The frame.
    pub chrome: Chrome,
    /// The cart.
    pub cart: Cart,
}

/// Sign in or sign up.
#[derive(Debug, Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// The frame.
    pub chrome: Chrome,
    /// `signin` or `signup`.
    pub mode: &'static str,
    /// Where to go afterwards.
    pub next: String,
    /// What the shopper typed (never the password).
    pub name: String,
    /// Their email.
    pub email: String,
    /// A message for the whole form.
    pub error: Option<String>,
    /// Messages per field.
    pub fields: FieldErrors,
}

/// The checkout form.
#[derive(Debug, Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage {
    /// The frame.
    pub chrome: Chrome,
    /// What is being bought.
    pub cart: Cart,
    /// This render's idempotency key: a double submit places one order.
    pub key: String,
    /// What the shopper typed (never the card number or CVC).
    pub form: CheckoutForm,
    /// A message for the whole form.
    pub error: Option<String>,
    /// Messages per field.
    pub fields: FieldErrors,
}

/// The checkout form's fields.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct CheckoutForm {
    /// CSRF token.
    pub csrf: String,
    /// Idempotency key.
    pub key: String,
    /// Recipient.
    pub name: String,
    /// Street.
    pub line1: String,
    /// More.
    pub line2: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Country code.
    pub country: String,
    /// Card number (never shown again).
    pub card_number: String,
    /// Expiry month.
    pub exp_month: String,
    /// Expiry year.
    pub exp_year: String,
    /// CVC (never shown again).
    pub cvc: String,
}

/// An order's page, following it until it settles.
#[derive(Debug, Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    /// The frame.
    pub chrome: Chrome,
    /// The order.
    pub order: Order,
}

/// The purchase history.
#[derive(Debug, Template)]
#[template(path = "history.html")]
pub struct HistoryView {
    /// The frame.
    pub chrome: Chrome,
    /// The purchases on this page.
    pub purchases: Vec<Purchase>,
    /// The next page's link.
    pub next: Option<String>,
}

impl HistoryView {
    /// The page for `page`.
    pub fn new(chrome: Chrome, page: HistoryPage) -> Self {
        Self {
            chrome,
            next: page
                .next_cursor
                .map(|c| format!("/orders?cursor={}", encode(&c))),
            purchases: page.items,
        }
    }
}

/// Field errors by field name.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    /// The message for `field`, or empty.
    pub fn get(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map_or("", |(_, m)| m.as_str())
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one.
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }
}

impl Order {
    /// The id's last part, as shoppers quote it.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// Why it was cancelled, in words.
    pub fn reason(&self) -> &'static str {
        cancel_reason(self.cancel_reason.as_deref())
    }

    /// When it was placed.
    pub fn when(&self) -> String {
        when(&self.created_at)
    }
}

impl Purchase {
    /// The order id's last part.
    pub fn short_id(&self) -> &str {
        short_id(&self.order_id)
    }

    /// Why it was cancelled, in words.
    pub fn reason(&self) -> &'static str {
        cancel_reason(self.cancel_reason.as_deref())
    }

    /// When it was placed.
    pub fn when(&self) -> String {
        when(&self.placed_at)
    }
}

impl Card {
    /// `Visa ending 4242`.
    pub fn label(&self) -> String {
        let mut chars = self.brand.chars();
        let brand = chars
            .next()
            .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
            .unwrap_or_default();
        format!("{brand} ending {}", self.last4)
    }
}

fn short_id(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// How a cancellation reads.
fn cancel_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("payment_declined") => "Your card was declined. Nothing was charged.",
        Some("payment_failed") => "The payment could not be completed. Nothing was charged.",
        Some("out_of_stock") => "Some items ran out of stock before we could reserve them.",
        Some("timeout") => "The order could not be completed in time. Nothing was charged.",
        _ => "The order was cancelled.",
    }
}

/// An RFC 3339 time as a shopper reads it: `2026-11-30 16:04 UTC`.
fn when(time: &str) -> String {
    match (time.get(..10), time.get(11..16)) {
        (Some(date), Some(clock)) => format!("{date} {clock} UTC"),
        _ => time.to_owned(),
    }
}
