//! Tokens a server on a PostgreSQL catalog has found, remembered so that a request costs one
//! read of the catalog (the table a get-table asks for) rather than two.
//!
//! A revoked token must stop working at once, on every replica. A trigger on the tokens
//! table (sql.rs, `TOKENS_TRIGGER_STEP`) notifies [`TOKENS_CHANNEL`] on every update, delete
//! or truncate, whoever makes it (`tarn token revoke`, another replica, plain SQL), and each
//! store LISTENs on a connection of its own: a notification forgets every remembered token.
//! Tokens are remembered only while that connection listens. It opens on the first token
//! lookup (a CLI command that never looks a token up never opens it), and when it fails,
//! what was remembered is forgotten and it is opened again a second later. A token read
//! while a notification arrived is not remembered (the generation moved on). Unknown
//! tokens are never remembered. As a safety net, for a pooler that drops notifications
//! (PgBouncer in transaction mode), a token is remembered for [`REMEMBER_FOR`] at most.
//! Expiry is checked on every request from the remembered expiry time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio::sync::oneshot;

use crate::model::TokenInfo;

/// The channel the tokens trigger notifies.
pub(crate) const TOKENS_CHANNEL: &str = "tarn_tokens";

/// The longest a found token is remembered.
const REMEMBER_FOR: Duration = Duration::from_secs(10);

/// At most this many tokens are remembered (a few hundred bytes each).
const MAX_REMEMBERED: usize = 10_000;

/// The pause before listening again after the listening connection failed.
const LISTEN_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// Tokens found on one PostgreSQL catalog.
#[derive(Debug)]
pub(crate) struct TokenMemory {
    url: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Dropped with the memory: tells the listening task to stop.
    stop: Option<oneshot::Sender<()>>,
    /// Whether the connection LISTENs now.
    listening: bool,
    /// Moves on whenever remembered tokens are forgotten.
    generation: u64,
    tokens: HashMap<String, (TokenInfo, Instant)>,
}

impl TokenMemory {
    pub(crate) fn new(url: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_string(),
            state: Mutex::new(State::default()),
        })
    }

    /// The token remembered for `secret_hash`, or the generation to give [`Self::remember`]
    /// once it has been read. Starts listening on the first call.
    pub(crate) fn recall(self: &Arc<Self>, secret_hash: &str) -> Result<TokenInfo, u64> {
        let Ok(mut state) = self.state.lock() else {
            return Err(u64::MAX);
        };
        if state.stop.is_none() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let (stop, stopped) = oneshot::channel();
                state.stop = Some(stop);
                runtime.spawn(listen(Arc::downgrade(self), self.url.clone(), stopped));
            }
        }
        if state.listening {
            if let Some((token, found_at)) = state.tokens.get(secret_hash) {
                if found_at.elapsed() < REMEMBER_FOR {
                    return Ok(token.clone());
                }
            }
        }
        Err(state.generation)
    }

    /// Remembers `token`, read after [`Self::recall`] returned `generation`, unless tokens
    /// were forgotten since (or nothing listens).
    pub(crate) fn remember(&self, secret_hash: &str, token: &TokenInfo, generation: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !state.listening || state.generation != generation {
            return;
        }
        if state.tokens.len() >= MAX_REMEMBERED {
            state
                .tokens
                .retain(|_, (_, found_at)| found_at.elapsed() < REMEMBER_FOR);
            if state.tokens.len() >= MAX_REMEMBERED {
                state.tokens.clear();
            }
        }
        state
            .tokens
            .insert(secret_hash.to_string(), (token.clone(), Instant::now()));
    }

    /// Forgets every remembered token. Called when a notification arrives, and by the store
    /// itself after it deletes a token (so its own next lookup never sees it).
    pub(crate) fn forget_all(&self) {
        self.set_listening(None);
    }

    /// Forgets every remembered token and, with `Some`, records whether the connection
    /// listens.
    fn set_listening(&self, listening: Option<bool>) {
        if let Ok(mut state) = self.state.lock() {
            state.tokens.clear();
            state.generation += 1;
            if let Some(listening) = listening {
                state.listening = listening;
            }
        }
    }

    #[cfg(test)]
    fn listening(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.listening)
    }
}

/// Listens on [`TOKENS_CHANNEL`] until `memory` is dropped, opening the connection again
/// after a pause whenever it fails.
async fn listen(memory: Weak<TokenMemory>, url: String, mut stopped: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = listen_once(&memory, &url) => {}
        }
        match memory.upgrade() {
            Some(memory) => memory.set_listening(Some(false)),
            None => return,
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(LISTEN_AGAIN_AFTER) => {}
        }
    }
}

/// One listening connection, until it fails.
async fn listen_once(memory: &Weak<TokenMemory>, url: &str) {
    let Ok(mut listener) = PgListener::connect(url).await else {
        return;
    };
    if listener.listen(TOKENS_CHANNEL).await.is_err() {
        return;
    }
    let Some(held) = memory.upgrade() else { return };
    held.set_listening(Some(true));
    drop(held);
    // `Ok(None)`: the connection was lost, and notifications with it.
    while let Ok(Some(_)) = listener.try_recv().await {
        let Some(held) = memory.upgrade() else { return };
        held.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str) -> TokenInfo {
        TokenInfo {
            id: name.into(),
            name: name.into(),
            scope: crate::Scope::Read,
            created_at: 0,
            expires_at: None,
        }
    }

    /// Nothing is remembered while nothing listens, and a token read before tokens were
    /// forgotten is not remembered after. (Outside a runtime: no listening task starts, and
    /// the test plays its part.)
    #[test]
    fn remembers_only_while_listening_and_only_what_was_read_since_the_last_forget() {
        let memory = TokenMemory::new("postgres://u@127.0.0.1:1/db");
        let generation = memory.recall("h").unwrap_err();
        memory.remember("h", &token("a"), generation);
        assert!(memory.recall("h").is_err());

        memory.set_listening(Some(true));
        let stale = generation;
        let generation = memory.recall("h").unwrap_err();
        memory.remember("h", &token("a"), stale);
        assert!(memory.recall("h").is_err(), "read before listening began");
        memory.remember("h", &token("a"), generation);
        assert_eq!(memory.recall("h").unwrap().name, "a");

        let generation = memory.recall("other").unwrap_err();
        memory.forget_all();
        assert!(memory.recall("h").is_err());
        memory.remember("other", &token("b"), generation);
        assert!(memory.recall("other").is_err(), "read before the forget");
        assert!(memory.listening());
    }
}
