//! souk's identity service: accounts, passwords (Argon2id), short-lived EdDSA access tokens,
//! rotating refresh tokens, and the signing keys that the gateway and services verify with.
//!
//! Only identity reads its tables; everyone else learns who a caller is from the signed token.

pub mod config;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod routes;
pub mod store;
pub mod tokens;

use axum::Router;
use souk_chassis::config::ConfigError;
use souk_chassis::db::DbError;
use souk_chassis::{Env, Health, Secret, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use routes::{ApiDoc, AppState};
use store::{Store, StoreError};

/// The service's name.
pub const NAME: &str = "identity";

/// How often each instance reloads the signing keys from the store (another may have rotated).
pub const KEY_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

/// Why identity could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The store failed.
    #[error("cannot prepare accounts or keys")]
    Store(#[from] StoreError),
    /// Keys could not be made or loaded.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The administrator from SOUK_ADMIN_EMAIL / SOUK_ADMIN_PASSWORD is invalid.
    #[error("SOUK_ADMIN_EMAIL / SOUK_ADMIN_PASSWORD: {0}")]
    Admin(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
}

/// The first administrator, from `SOUK_ADMIN_EMAIL` and `SOUK_ADMIN_PASSWORD`.
#[derive(Debug, Clone)]
pub struct AdminAccount {
    /// Email.
    pub email: String,
    /// Password.
    pub password: Secret,
}

impl AdminAccount {
    /// The administrator named in `env`, if both variables are set.
    pub fn from_env(env: &Env) -> Option<Self> {
        Some(Self {
            email: env.get("SOUK_ADMIN_EMAIL")?.to_owned(),
            password: Secret::new(env.get("SOUK_ADMIN_PASSWORD")?),
        })
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Reads identity's config: defaults < `SOUK_CONFIG` file < `SOUK_IDENTITY__*` variables.
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    souk_chassis::config::load(NAME, env.config_file().as_deref(), env)
}

/// A ready identity service.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Everything it serves.
    pub router: Router,
    /// Its state (store, keys).
    pub state: AppState,
    /// Its health, to mark it draining on shutdown.
    pub health: Health,
}

/// Opens the store, makes a signing key if there is none, creates the administrator if one is
/// named, and builds the router.
pub async fn build(config: Config, admin: Option<AdminAccount>) -> Result<Identity, StartError> {
    let store = Store::open(&config.database).await?;
    let keys = load_keys(&store, &config).await?;
    let state = AppState::new(store.clone(), config, keys);
    if let Some(admin) = admin {
        ensure_admin(&state, &admin).await?;
    }
    // Keyed login buckets would grow with every email ever tried: prune the full ones.
    let logins = std::sync::Arc::downgrade(&state.logins);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        while let Some(logins) = {
            tick.tick().await;
            logins.upgrade()
        } {
            logins.retain_recent();
        }
    });
    // Another instance may rotate the keys: reload them from the store now and then, so this one
    // signs with the current key and publishes every valid one.
    let (weak_keys, store_for_keys, config_for_keys) = (
        std::sync::Arc::downgrade(&state.keys),
        state.store.clone(),
        std::sync::Arc::clone(&state.config),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD);
        tick.tick().await;
        while let Some(keys) = {
            tick.tick().await;
            weak_keys.upgrade()
        } {
            match load_keys(&store_for_keys, &config_for_keys).await {
                Ok(fresh) => {
                    *keys
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot reload the signing keys; keeping the ones in force")
                }
            }
        }
    });
    // Make the dummy hash now, so the first unknown-email login is not slower than the rest.
    hashing::warm_up().await;
    let health = Health::new().with_check(store.database().clone());
    let http = state.config.http.clone();
    let router =
        souk_chassis::http::service_router(routes::app(state.clone()), health.clone(), &http);
    Ok(Identity {
        router,
        state,
        health,
    })
}

/// The keys in force, making the first one on a new store.
async fn load_keys(store: &Store, config: &Config) -> Result<keys::KeySet, StartError> {
    // A retired key stays published as long as a token it signed can still be valid.
    let since = now() - config.access_ttl_secs - 60;
    let mut stored = store.keys(since).await?;
    if !stored.iter().any(|k| k.retired_at.is_none()) {
        store
            .rotate_keys(&keys::StoredKey::generate(now())?, now())
            .await?;
        stored = store.keys(since).await?;
    }
    Ok(keys::KeySet::from_stored(&stored)?)
}

/// Reloads the keys in force from the store (what every instance does every [`KEY_RELOAD`]), so
/// a rotation made by another instance reaches this one.
pub async fn reload_keys(state: &AppState) -> Result<(), StartError> {
    let fresh = load_keys(&state.store, &state.config).await?;
    *state
        .keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    Ok(())
}

/// Makes a new signing key the signer; tokens signed by the old one stay valid until they expire.
pub async fn rotate_keys(state: &AppState) -> Result<(), StartError> {
    state
        .store
        .rotate_keys(&keys::StoredKey::generate(now())?, now())
        .await?;
    let fresh = load_keys(&state.store, &state.config).await?;
    *state
        .keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    Ok(())
}

async fn ensure_admin(state: &AppState, admin: &AdminAccount) -> Result<(), StartError> {
    let email = domain::Email::parse(&admin.email).map_err(StartError::Admin)?;
    if state.store.user_by_email(email.as_str()).await?.is_some() {
        state.store.promote(email.as_str()).await?;
        return Ok(());
    }
    let password = domain::Password::new(admin.password.expose(), email.as_str())
        .map_err(|e| StartError::Admin(format!("the password {e}")))?;
    let hash = state
        .hasher
        .hash(password.expose().to_owned())
        .await
        .map_err(|e| StartError::Admin(e.to_string()))?;
    let user = store::User {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.as_str().to_owned(),
        name: "Administrator".into(),
        password_hash: hash,
        role: domain::Role::Admin,
    };
    state.store.insert_user(&user, now()).await?;
    tracing::info!(email = %user.email, "administrator created");
    Ok(())
}

/// Serves identity on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    admin: Option<AdminAccount>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let identity = build(config, admin).await?;
    identity.health.drain_on(&shutdown);
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(%addr, engine = identity.state.store.database().engine(), "identity listening");
    souk_chassis::serve(listener, identity.router, shutdown)
        .await
        .map_err(StartError::Serve)?;
    identity.state.store.database().close().await;
    Ok(())
}

/// Loads config from `env`, binds, and serves until SIGTERM or Ctrl-C.
pub async fn serve_from_env(env: &Env) -> Result<(), StartError> {
    let config = load_config(env)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let shutdown = Shutdown::on_os_signals(config.http.drain_timeout());
    run(config, AdminAccount::from_env(env), listener, shutdown).await
}
