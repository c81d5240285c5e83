//! Prometheus metrics: connections, visits by state, messages relayed, errors by code.
//! One registry per server; rendered at `GET /metrics`.

use crate::protocol::{ErrorCode, ServerMsg};
use crate::visit::VisitState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

pub struct Metrics {
    // std Mutex: the registry is only touched while rendering, never across an await.
    registry: Mutex<Registry>,
    pub connections: Gauge,
    relayed: Counter,
    delivered: Counter,
    errors: Family<CodeLabel, Counter>,
    visits: Family<StateLabel, Gauge>,
    transitions: Family<StateLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("examroom");
        let connections = Gauge::default();
        let relayed = Counter::default();
        let delivered = Counter::default();
        let errors = Family::<CodeLabel, Counter>::default();
        let visits = Family::<StateLabel, Gauge>::default();
        let transitions = Family::<StateLabel, Counter>::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "messages_relayed",
            "Signalling and chat messages relayed between participants",
            relayed.clone(),
        );
        registry.register(
            "messages_sent",
            "Messages sent to clients",
            delivered.clone(),
        );
        registry.register("errors", "Errors sent to clients, by code", errors.clone());
        registry.register("visits", "Live visits by state", visits.clone());
        registry.register(
            "visit_transitions",
            "Visit state transitions, by new state",
            transitions.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            connections,
            relayed,
            delivered,
            errors,
            visits,
            transitions,
        }
    }

    pub fn sent(&self, msg: &ServerMsg) {
        self.delivered.inc();
        if msg.is_relay() {
            self.relayed.inc();
        }
        if let ServerMsg::Error { code, .. } = msg {
            self.error(*code);
        }
    }

    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    pub fn transition(&self, state: VisitState) {
        self.transitions
            .get_or_create(&StateLabel {
                state: state.as_str(),
            })
            .inc();
    }

    pub fn relayed_total(&self) -> u64 {
        self.relayed.get()
    }

    /// Prometheus text format; `visits` is the live count per state at this moment.
    pub fn render(&self, visits: &HashMap<VisitState, usize>) -> String {
        for s in VisitState::ALL {
            let n = visits.get(&s).copied().unwrap_or(0);
            self.visits
                .get_or_create(&StateLabel { state: s.as_str() })
                .set(n as i64);
        }
        let mut out = String::new();
        let registry = self.registry.lock().expect("poisoned");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}
