//! How passwords are stored: Argon2id PHC strings at OWASP's parameters, salted, never the
//! password itself.

use crate::helpers::{PASSWORD, spawn};

souk_chassis::backend_tests! { spawn;

    async fn passwords_are_stored_as_salted_argon2id_at_owasp_parameters(app) {
        app.registered("Ada@Example.com").await;
        app.registered("grace@example.com").await;
        let ada = app.state.store.user_by_email("ada@example.com").await.unwrap().expect("stored under the normalised email");
        let grace = app.state.store.user_by_email("grace@example.com").await.unwrap().unwrap();
        for hash in [&ada.password_hash, &grace.password_hash] {
            assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
            assert!(!hash.contains(PASSWORD), "{hash}");
            // PHC: $argon2id$v=19$params$salt$hash, a 16-byte salt and a 32-byte hash.
            let parts: Vec<&str> = hash.split('$').collect();
            assert_eq!(parts.len(), 6, "{hash}");
            assert_eq!((parts[4].len(), parts[5].len()), (22, 43), "{hash}");
            let phc = argon2::PasswordHash::new(hash).unwrap();
            assert_eq!(phc.algorithm.as_str(), "argon2id");
            let params = argon2::Params::try_from(&phc).unwrap();
            assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (19 * 1024, 2, 1), "{hash}");
        }
        assert_ne!(ada.password_hash, grace.password_hash, "the same password, different salts");
    }
}
