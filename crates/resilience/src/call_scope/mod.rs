//! What a layer lends to the layers inside it for one call, on the same thread: the crate's only
//! thread-locals that carry a call's facts, kept here so that there is one place to read them.
//!
//! Tower calls a stack synchronously, outermost first, and polls a response future's inner
//! futures from inside its own `poll`. While a layer is inside that call or poll, a fact it has
//! can reach the layers it encloses without travelling in the request (whose type the crate does
//! not own: a generic `Service<Request>` has no extensions) or in an allocation per call:
//!
//! | module | lent by | read by | what it buys |
//! |---|---|---|---|
//! | [`clock`] | the outermost [`Deadline`](crate::timeout::Deadline) or [`Timeout`](crate::timeout::Timeout) | the retry policy, the breaker, the balancer, inner limits | one clock read per call instead of one per layer |
//! | [`timer`] | the outermost limit being polled | limits polled inside it by the same task | one timer wheel entry per waiting request instead of one per limit |
//! | [`abandon`] | the hedge, while it drops the attempt that lost | that attempt's breaker permit and balancer slot | a hung endpoint is counted as failing, so its breaker opens |
//!
//! `benches/README.md` ("call_scope") has the micro bench's table of what the first two save.
//!
//! **What may not sit between** a lender and its readers: anything that moves the call or its
//! future to another task or thread, such as tower's `Buffer`, a `tokio::spawn`, or a channel.
//! Behind one, the fact is not seen and every reader falls back to doing the work itself: it
//! reads the clock, arms its own timer, or counts the dropped attempt as a plain cancellation
//! (neither success nor failure). So a layer in between costs speed, or for [`abandon`] the
//! breaker's view of a hung endpoint, never a wrong decision. Layers that only wrap the call or
//! the future where it is (`Map*`, `ServiceBuilder` stages, the crate's own layers) are fine.
//!
//! Each lender restores what it found when its call or poll returns, also when it unwinds, so
//! nothing lent outlives the call.

pub(crate) mod abandon;
pub(crate) mod clock;
pub(crate) mod timer;
