//! What every HTTP handler and WebSocket session reaches: the services built once at
//! start-up ([`crate::app::build`]) and handed to the edge. Nothing below the edge sees
//! it; use cases take the typed pieces they need (a store, a setting), not this.

use crate::config::Settings;
use crate::durable::DurableStore;
use crate::ice::IceConfig;
use crate::identity::TokenKeys;
use crate::ids::ParticipantId;
use crate::live::Live;
use crate::media::check::CheckService;
use crate::metrics::Metrics;
use crate::protocol::IceServerInfo;
use crate::records::ClientKey;
use crate::records::PanelCache;
pub mod admission;

use admission::Admission;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Everything a request handler or a session needs: a pointer to the [`Services`], so a
/// clone is one reference count and a session's futures hold 8 bytes of it, not every
/// service's handle (issue 20: memory per connection).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services built once at start-up.
pub struct Services {
    pub settings: Arc<Settings>,
    pub keys: TokenKeys,
    pub durable: Arc<dyn DurableStore>,
    pub live: Arc<dyn Live>,
    /// Notes every node reads alike, for checks made while the database is away
    /// (`identity::access`).
    pub memo: Arc<dyn crate::live::Memo>,
    pub metrics: Arc<Metrics>,
    /// Fires once when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Caps open WebSocket connections: `signalling.max_connections`, or fewer when the
    /// process may not open that many files ([`connection_limit`]).
    pub connection_slots: Arc<Semaphore>,
    /// The cap `connection_slots` started with.
    pub connection_limit: usize,
    /// Who gets a WebSocket slot: unauthenticated sockets per address and per node, and
    /// the share of `connection_slots` kept for staff and admitted visits.
    pub admission: Arc<Admission>,
    /// STUN/TURN servers; mints short-lived TURN credentials per participant.
    pub ice: IceConfig,
    /// Server-side WebRTC peers for pre-call connection checks.
    pub checks: CheckService,
    /// Patient-record summaries, prefetched when a patient starts waiting.
    pub records: Arc<PanelCache>,
    /// Visit notes on their way to the record source (issue 22).
    pub notes: Arc<crate::records::write_back::NoteOutbox>,
    /// Failure limits (sign-in, join codes) and the identity provider's key cache.
    pub guards: Arc<crate::identity::Guards>,
    /// The key examroom signs SMART Backend Services assertions with (public part at
    /// `/.well-known/jwks.json`, so the EHR can register it).
    pub client_key: Arc<ClientKey>,
    /// Ticks when this node stored a visit transition (`HistoryWriter::written`).
    pub history_written: tokio::sync::watch::Receiver<u64>,
    /// The visit-history writer, drained when the node stops (`app::run`).
    pub history: Arc<crate::history::HistoryWriter>,
    /// Booking, manage links and notices to patients (issue 21).
    pub appointments: Arc<crate::appointments::Appointments>,
    /// Places by name or postcode for the directory's distance search, read at start.
    pub places: Arc<crate::gazetteer::Gazetteer>,
    /// Derives the join codes of referrals accepted into a waiting room (issue 22).
    pub referral_key: crate::referrals::ReferralKey,
}

impl Services {
    /// ICE servers for one participant (STUN as configured; TURN with fresh credentials),
    /// and when the TURN credentials expire (unix seconds).
    pub fn ice_servers(&self, participant: &ParticipantId) -> (Vec<IceServerInfo>, Option<i64>) {
        self.ice
            .servers_for(participant.as_str(), chrono::Utc::now().timestamp())
    }
}
