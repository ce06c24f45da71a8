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
use souk_chassis::service::{Running, Wiring};
use souk_chassis::{Env, Health, Secret};

pub use config::Config;
pub use routes::{ApiDoc, AppState};
pub use souk_chassis::service::StartError;
use store::{Store, StoreError};

/// The service's name.
pub const NAME: &str = "identity";

/// How often each instance reloads the signing keys from the store (another may have rotated).
pub const KEY_RELOAD: std::time::Duration = std::time::Duration::from_secs(30);

/// What in identity's own start-up failed (a [`StartError::Setup`]).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The store failed.
    #[error("cannot prepare accounts or keys")]
    Store(#[from] StoreError),
    /// Keys could not be made or loaded.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The secret that seals the signing keys is missing, weak or unreadable.
    #[error("identity.key_secret / identity.key_file: {0}")]
    Seal(#[from] souk_chassis::seal::SealError),
    /// The administrator from SOUK_ADMIN_EMAIL / SOUK_ADMIN_PASSWORD is invalid.
    #[error("SOUK_ADMIN_EMAIL / SOUK_ADMIN_PASSWORD: {0}")]
    Admin(String),
}

/// The first administrator, from `SOUK_ADMIN_EMAIL` and `SOUK_ADMIN_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub async fn build(config: Config, admin: Option<AdminAccount>) -> Result<Identity, SetupError> {
    let secret = souk_chassis::seal::secret_from(&config.key_secret, &config.key_file)?;
    let sealer = souk_chassis::seal::Sealer::new(&secret, SEALING_PURPOSE)?;
    let store = Store::open(&config.database).await?;
    let keys = load_keys(&store, &config, &sealer).await?;
    let state = AppState::new(store.clone(), config, keys, sealer);
    if let Some(admin) = admin {
        ensure_admin(&state, &admin).await?;
    }
    spawn_purge(&state);
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
    let (weak_keys, store_for_keys, config_for_keys, sealer) = (
        std::sync::Arc::downgrade(&state.keys),
        state.store.clone(),
        std::sync::Arc::clone(&state.config),
        state.sealer.clone(),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_RELOAD);
        tick.tick().await;
        while let Some(keys) = {
            tick.tick().await;
            weak_keys.upgrade()
        } {
            match load_keys(&store_for_keys, &config_for_keys, &sealer).await {
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

/// What the signing keys' sealing key is derived for (chassis `seal`).
const SEALING_PURPOSE: &str = "souk identity signing keys";

/// The keys in force, making the first one on a new store; keys stored in the clear by an
/// older version are sealed in place.
async fn load_keys(
    store: &Store,
    config: &Config,
    sealer: &souk_chassis::seal::Sealer,
) -> Result<keys::KeySet, SetupError> {
    // A retired key stays published as long as a token it signed can still be valid.
    let since = now() - config.access_ttl_secs - 60;
    let mut stored = store.keys(since).await?;
    if !stored.iter().any(|k| k.retired_at.is_none()) {
        store
            .rotate_keys(&keys::StoredKey::generate(now(), sealer)?, now())
            .await?;
        stored = store.keys(since).await?;
    }
    for key in stored.iter_mut().filter(|k| k.is_plain()) {
        *key = key.sealed(sealer)?;
        store.reseal_key(&key.kid, &key.pkcs8).await?;
        tracing::info!(kid = %key.kid, "a signing key stored in the clear is now sealed");
    }
    Ok(keys::KeySet::from_stored(&stored, sealer)?)
}

/// Deletes the refresh tokens of ended logins every `purge_interval_secs`, while the service
/// lives, so the table holds live logins (and their used tokens, for reuse detection) only.
fn spawn_purge(state: &AppState) {
    let (config, store) = (
        std::sync::Arc::downgrade(&state.config),
        state.store.clone(),
    );
    let every = std::time::Duration::from_secs(state.config.purge_interval_secs.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        while {
            tick.tick().await;
            config.upgrade().is_some()
        } {
            match store.purge_refresh(now()).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "refresh tokens of ended logins purged"),
                Err(err) => tracing::warn!(error = %err, "cannot purge ended refresh tokens"),
            }
        }
    });
}

/// Reloads the keys in force from the store (what every instance does every [`KEY_RELOAD`]), so
/// a rotation made by another instance reaches this one.
pub async fn reload_keys(state: &AppState) -> Result<(), SetupError> {
    let fresh = load_keys(&state.store, &state.config, &state.sealer).await?;
    *state
        .keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    Ok(())
}

/// Makes a new signing key the signer; tokens signed by the old one stay valid until they expire.
pub async fn rotate_keys(state: &AppState) -> Result<(), SetupError> {
    state
        .store
        .rotate_keys(&keys::StoredKey::generate(now(), &state.sealer)?, now())
        .await?;
    let fresh = load_keys(&state.store, &state.config, &state.sealer).await?;
    *state
        .keys
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    Ok(())
}

/// Creates the administrator named at start. An account that already has the address is never
/// made an administrator silently: registration does not prove an email, so whoever registered
/// the address first would own the shop. It is promoted only when its password is the
/// administrator's (the operator made it); otherwise identity refuses to start.
async fn ensure_admin(state: &AppState, admin: &AdminAccount) -> Result<(), SetupError> {
    let email = domain::Email::parse(&admin.email).map_err(SetupError::Admin)?;
    if let Some(existing) = state.store.user_by_email(email.as_str()).await? {
        if existing.role == domain::Role::Admin {
            return Ok(());
        }
        let owned = state
            .hasher
            .verify(
                admin.password.expose().to_owned(),
                Some(existing.password_hash),
            )
            .await
            .map_err(|e| SetupError::Admin(e.to_string()))?;
        if !owned {
            return Err(SetupError::Admin(format!(
                "{} is the address of an existing account that is not an administrator, and its password is not SOUK_ADMIN_PASSWORD: \
                 refusing to make it an administrator (anyone may have registered it). Name another address, or remove that account",
                email.as_str()
            )));
        }
        state.store.promote(email.as_str()).await?;
        tracing::warn!(email = %email.as_str(), "an existing account whose password is the administrator's is now an administrator");
        return Ok(());
    }
    let password = domain::Password::new(admin.password.expose(), email.as_str())
        .map_err(|e| SetupError::Admin(format!("the password {e}")))?;
    let hash = state
        .hasher
        .hash(password.expose().to_owned())
        .await
        .map_err(|e| SetupError::Admin(e.to_string()))?;
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

/// Identity, as the service skeleton runs it (`souk-identity`, `souk serve identity`, the
/// monolith).
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl souk_chassis::service::Service for Service {
    const NAME: &'static str = NAME;
    type Config = Config;
    const OPENAPI: Option<fn() -> String> = Some(ApiDoc::json);

    /// Its section, and the first administrator from `SOUK_ADMIN_EMAIL` / `SOUK_ADMIN_PASSWORD`.
    fn load(env: &Env) -> Result<Config, ConfigError> {
        let mut config: Config =
            souk_chassis::config::load(NAME, env.config_file().as_deref(), env)?;
        config.admin = AdminAccount::from_env(env);
        Ok(config)
    }

    async fn start(mut config: Config, _wiring: &Wiring) -> Result<Running, StartError> {
        let admin = config.admin.take();
        let identity = build(config, admin).await.map_err(StartError::setup)?;
        let database = identity.state.store.database().clone();
        Ok(Running::new(identity.router, identity.health).closing(database))
    }
}

souk_chassis::service_config!(Config);
