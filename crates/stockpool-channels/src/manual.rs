//! The `manual` channel: a physical shop, or anything the seller updates by hand.
//!
//! Decision: `manual` has no connector at all, and `connector` answers `None` for it.
//! SPEC section 5a says a manual store is pushed "nothing: the dashboard and
//! `GET /api/v1/listings` show what to set by hand", and its orders come in through the
//! order API and the dashboard. A connector whose pushes all answered `Ok` without a call
//! would write sync records claiming the shop was told a figure it never saw, and one
//! whose pushes failed would fill the records with errors nobody can fix. With `None`
//! the dispatcher has nothing to call, so it cannot push a manual store by mistake: the
//! type says so, not a convention. Webhooks to `/webhooks/manual/{store}` find no
//! connector either, and the intake answers them as it does an unknown channel.

use std::sync::Arc;

use crate::error::ConfigError;
use crate::{Connector, StoreSettings};

/// No connector, whatever the settings. A `url`, `secret` or `credentials` left over on a
/// store switched to `manual` is ignored rather than refused: it harms nothing, and it is
/// there again if the seller switches back.
pub(crate) fn connector(settings: &StoreSettings) -> Result<Option<Arc<dyn Connector>>, ConfigError> {
    tracing::trace!(store = %settings.code, "manual store: nothing is pushed or polled");
    Ok(None)
}
