//! The worked examples under `examples/reference/`, one per document in
//! `shared/reference/`, run against a real `agentstore serve` on a real store. Each example
//! asserts its own results as it goes and prints a JSON summary as its last line; the
//! tests here check that summary, and what the example left in the store, independently.

mod common;

#[path = "reference_examples/harness.rs"]
mod harness;

#[path = "reference_examples/autom8_002.rs"]
mod autom8_002;
#[path = "reference_examples/codex_000.rs"]
mod codex_000;
#[path = "reference_examples/engineering_001.rs"]
mod engineering_001;
#[path = "reference_examples/episodic_004.rs"]
mod episodic_004;
#[path = "reference_examples/graive_003.rs"]
mod graive_003;
