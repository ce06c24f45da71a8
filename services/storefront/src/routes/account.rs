//! Accounts: sign up, sign in (tokens into cookies), sign out (the login ended at identity).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;

use super::{App, EmptyForm, form, query};
use crate::gateway::GatewayError;
use crate::pages::{self, AccountPage, FieldErrors, PageError, see_other};
use crate::session::{Shopper, safe_return_path};

/// The sign-in page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct NextQuery {
    next: String,
}

/// The sign-in and sign-up forms.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct AccountForm {
    name: String,
    email: String,
    password: String,
    next: String,
}

/// `GET /signin?next=`.
pub(super) async fn signin_page(shopper: Shopper, RawQuery(raw): RawQuery) -> Response {
    page(shopper, raw, "signin")
}

/// `GET /signup?next=`.
pub(super) async fn signup_page(shopper: Shopper, RawQuery(raw): RawQuery) -> Response {
    page(shopper, raw, "signup")
}

fn page(shopper: Shopper, raw: Option<String>, mode: &'static str) -> Response {
    let result = query::<NextQuery>(raw.as_deref()).and_then(|asked| {
        pages::render(&AccountPage {
            chrome: shopper.chrome(),
            mode,
            next: safe_return_path(&asked.next),
            name: String::new(),
            email: String::new(),
            error: None,
            fields: FieldErrors::default(),
        })
    });
    shopper.finish(result)
}

/// `POST /signin`.
pub(super) async fn signin(State(app): State<App>, mut shopper: Shopper, body: Bytes) -> Response {
    let result = async {
        let asked: AccountForm = form(&shopper, &body)?;
        let next = safe_return_path(&asked.next);
        match app
            .gateway
            .login(asked.email.trim(), &asked.password, &shopper.anonymous())
            .await
        {
            Ok(tokens) => {
                shopper.signed_in_with(&tokens);
                Ok(see_other(&next))
            }
            Err(GatewayError::Unauthorized | GatewayError::Rejected { .. }) => {
                let again = retry_page(&shopper, "signin", &asked, next);
                pages::render_with(
                    StatusCode::UNAUTHORIZED,
                    &AccountPage {
                        error: Some("That email and password do not match an account.".into()),
                        ..again
                    },
                )
            }
            Err(other) => Err(other.into()),
        }
    }
    .await;
    shopper.finish(result)
}

/// `POST /signup`: makes the account, then signs in.
pub(super) async fn signup(State(app): State<App>, mut shopper: Shopper, body: Bytes) -> Response {
    let result = async {
        let asked: AccountForm = form(&shopper, &body)?;
        let next = safe_return_path(&asked.next);
        let who = shopper.anonymous();
        let email = asked.email.trim();
        match app
            .gateway
            .register(asked.name.trim(), email, &asked.password, &who)
            .await
        {
            Ok(()) => {}
            Err(GatewayError::Rejected { status, problem }) => {
                let mut page = retry_page(&shopper, "signup", &asked, next);
                if status == StatusCode::CONFLICT {
                    page.fields.push(
                        "email",
                        "An account with this email exists. Sign in instead.",
                    );
                } else {
                    for error in problem.errors {
                        page.fields.push(&error.field, error.message);
                    }
                    if page.fields.is_empty() {
                        page.error = problem.detail.or(problem.title);
                    }
                }
                return pages::render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
            }
            Err(other) => return Err(other.into()),
        }
        let tokens = app.gateway.login(email, &asked.password, &who).await?;
        shopper.signed_in_with(&tokens);
        Ok(see_other(&next))
    }
    .await;
    shopper.finish(result)
}

fn retry_page(
    shopper: &Shopper,
    mode: &'static str,
    asked: &AccountForm,
    next: String,
) -> AccountPage {
    AccountPage {
        chrome: shopper.chrome(),
        mode,
        next,
        name: asked.name.clone(),
        email: asked.email.clone(),
        error: None,
        fields: FieldErrors::default(),
    }
}

/// `POST /signout`: ends the login at identity (logout) and clears the cookies.
pub(super) async fn signout(State(app): State<App>, mut shopper: Shopper, body: Bytes) -> Response {
    let result: Result<Response, PageError> = match form::<EmptyForm>(&shopper, &body) {
        Ok(EmptyForm {}) => {
            shopper.sign_out(&app).await;
            Ok(see_other("/"))
        }
        Err(error) => Err(error),
    };
    shopper.finish(result)
}
