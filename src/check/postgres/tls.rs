//! rustls client configs for libpq's `sslmode` values (the pieces are in `check::tls_client`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_postgres_rustls::MakeRustlsConnect;

use super::SslMode;
use crate::check::tls_client::{Policy, Verifier, builder, provider, roots, webpki};

/// The rustls client config for an sslmode:
/// - `prefer` / `require` without a CA: encrypt, trust any certificate (what libpq does in
///   these modes);
/// - `verify-ca` (and `require` with a CA, as libpq does with a root certificate): the chain
///   must lead to a trusted root; the name in it is not checked;
/// - `verify-full`: chain and name.
pub(super) fn tls_connector(
    mode: SslMode,
    ca_file: Option<&PathBuf>,
) -> Result<MakeRustlsConnect, String> {
    let provider = provider();
    let verify_chain = match mode {
        SslMode::Disable | SslMode::Prefer => false,
        SslMode::Require => ca_file.is_some(),
        SslMode::VerifyCa | SslMode::VerifyFull => true,
    };
    let config = if !verify_chain {
        builder(
            &provider,
            Arc::new(Verifier::new(&provider, None, Policy::AcceptAny)),
        )?
        .with_no_client_auth()
    } else {
        let webpki = webpki(roots(ca_file.map(PathBuf::as_path))?, &provider)?;
        if mode == SslMode::VerifyFull {
            builder(&provider, webpki)?.with_no_client_auth()
        } else {
            builder(
                &provider,
                Arc::new(Verifier::new(&provider, Some(webpki), Policy::IgnoreName)),
            )?
            .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}
