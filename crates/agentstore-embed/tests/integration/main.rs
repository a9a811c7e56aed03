//! Integration tests of the embedders: the local model against sentence-transformers'
//! reference vectors, the OpenAI-compatible client against a real HTTP server on loopback,
//! and the cache.

mod bert;
mod cache;
mod common;
mod openai;
mod store;
