//! Vectors: caller-supplied vectors on memories, events and (through `PutVectors`)
//! chunks; vector and hybrid search against brute force, with and without filters; the
//! index following deletes, supersedes and reopening; tenant isolation; bad vectors
//! changing nothing; MMR; recall of the approximate path over a large tenant. The SQLite
//! backend's own vector index (`sqlite_vectors.rs`: int8 traversal, snapshots, backup and
//! restore) is tested with the data and helpers here.

use std::collections::BTreeSet;

use agentstore::backend::WriteOp;
use agentstore::search::{MetadataCondition, MetadataOp, SearchFilter, SearchMode, Target};
use agentstore::{
    Embedding, Metric, Namespace, NewDocument, NewEvent, NewMemory, NewSession, SearchHit,
    SearchRequest, Store, VectorModel,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::common::{TestStore, store};

const DIM: usize = 16;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Clustered random vectors: neighbours are meaningful, as with real embeddings.
pub(crate) fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            unit(
                c.iter()
                    .map(|x| x + rng.random_range(-0.4f32..0.4))
                    .collect(),
            )
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Memories `m0..mN` with vectors, metadata `bucket` = i % 100 and `half` = i % 2,
/// kind `k{i % 10}`, namespace `a` or `b` by parity; written in batches.
pub(crate) fn load(t: &TestStore, vs: &[Vec<f32>]) {
    for (start, chunk) in vs.chunks(1000).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = start * 1000 + j;
                NewMemory {
                    id: Some(format!("m{i}")),
                    kind: format!("k{}", i % 10),
                    namespace: Namespace::new([if i.is_multiple_of(2) { "a" } else { "b" }])
                        .unwrap(),
                    metadata: json!({"bucket": i % 100, "half": i % 2}),
                    vector: Some(v.clone()),
                    ..NewMemory::new(format!("memory number {i}"))
                }
            })
            .collect();
        t.store.remember_many(&t.scope, batch).unwrap();
    }
}

/// The exact top `k` memory ids among `allowed` indexes.
pub(crate) fn brute(
    vs: &[Vec<f32>],
    q: &[f32],
    k: usize,
    allowed: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut s: Vec<(f32, usize)> = (0..vs.len())
        .filter(|&i| allowed(i))
        .map(|i| (dot(&vs[i], q), i))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter()
        .take(k)
        .map(|(_, i)| format!("m{i}"))
        .collect()
}

pub(crate) fn vsearch(
    store: &Store,
    t: &TestStore,
    q: &[f32],
    k: usize,
    filter: SearchFilter,
) -> Vec<SearchHit> {
    store
        .search(
            &t.scope,
            SearchRequest {
                filter,
                limit: k,
                targets: vec![Target::Memory],
                ..SearchRequest::vector(q.to_vec())
            },
        )
        .unwrap()
}

pub(crate) fn ids(hits: &[SearchHit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

/// The share of `want` found in `got`.
pub(crate) fn recall(got: &[String], want: &[String]) -> f64 {
    let w: BTreeSet<&String> = want.iter().collect();
    got.iter().filter(|g| w.contains(g)).count() as f64 / want.len().max(1) as f64
}

/// Vectors of [`graph_search_keeps_recall_with_and_without_filters`]: `n` stored (more
/// than a backend compares exactly, so unfiltered and broad filters go through its
/// approximate index) and 40 queries from the same clusters, as real queries are near
/// some stored text.
pub(crate) fn large_tenant() -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let n = 21_000;
    let mut vs = vectors(n + 40, 11);
    let queries = vs.split_off(n);
    (vs, queries)
}

#[test]
fn graph_search_keeps_recall_with_and_without_filters() {
    // Unfiltered and broad filters go through the approximate index, a 1% filter
    // (and, where few enough match, 10%) through the exact path.
    let t = store();
    let (vs, queries) = large_tenant();
    load(&t, &vs);
    type Case = (&'static str, SearchFilter, fn(usize) -> bool);
    let cases: Vec<Case> = vec![
        ("none", SearchFilter::default(), |_| true),
        (
            "half",
            SearchFilter {
                metadata: vec![MetadataCondition::new("half", MetadataOp::Eq, 1)],
                ..Default::default()
            },
            |i| i % 2 == 1,
        ),
        (
            "one percent",
            SearchFilter {
                metadata: vec![MetadataCondition::new("bucket", MetadataOp::Eq, 42)],
                ..Default::default()
            },
            |i| i % 100 == 42,
        ),
        (
            "ten percent",
            SearchFilter {
                kinds: vec!["k5".into()],
                ..Default::default()
            },
            |i| i % 10 == 5,
        ),
    ];
    for (name, filter, allowed) in cases {
        let mut total = 0.0;
        for q in &queries {
            let got = ids(&vsearch(&t.store, &t, q, 10, filter.clone()));
            let want = brute(&vs, q, 10, allowed);
            assert_eq!(got.len(), 10, "{name}");
            total += recall(&got, &want);
        }
        let r = total / queries.len() as f64;
        assert!(r >= 0.95, "{name}: recall@10 {r}");
    }
    // The exact flag answers exactly even on the graph path.
    for q in queries.iter().take(5) {
        let hits = t
            .store
            .search(
                &t.scope,
                SearchRequest {
                    exact: true,
                    limit: 10,
                    ..SearchRequest::vector(q.clone())
                },
            )
            .unwrap();
        assert_eq!(ids(&hits), brute(&vs, q, 10, |_| true));
    }
}

/// Documents in `namespace` whose chunks get the vectors of `vs` in order (through
/// `PutVectors`), until every vector is given; returns each chunk's id with its vector.
fn chunks_with_vectors(
    t: &TestStore,
    scope: &agentstore::Scope,
    namespace: &str,
    vs: &[Vec<f32>],
) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> = Vec::new();
    let mut doc = 0;
    while out.len() < vs.len() {
        // About one 40-character sentence per chunk.
        let content: String = (0..(vs.len() - out.len()).min(1_000))
            .map(|i| format!("Sentence {i:04} of document {doc:03} in {namespace}. "))
            .collect();
        let d = t
            .store
            .put_document(
                scope,
                NewDocument {
                    namespace: Namespace::new([namespace]).unwrap(),
                    chunking: agentstore::text::ChunkOptions {
                        size: 48,
                        overlap: 0,
                    },
                    ..NewDocument::new(content)
                },
            )
            .unwrap();
        let items: Vec<(String, Embedding)> = t
            .store
            .list_chunks(scope, d.id())
            .unwrap()
            .into_iter()
            .zip(&vs[out.len()..])
            .map(|(c, v)| {
                let e = Embedding {
                    model: "external-16d".into(),
                    vector: v.clone(),
                };
                (c.id, e)
            })
            .collect();
        out.extend(items.iter().map(|(id, e)| (id.clone(), e.vector.clone())));
        t.store
            .write(
                scope,
                vec![
                    WriteOp::DeclareVectorModel {
                        model: "external-16d".into(),
                        dimension: DIM,
                        metric: Metric::Cosine,
                    },
                    WriteOp::PutVectors {
                        target: Target::Chunk,
                        items,
                    },
                ],
            )
            .unwrap();
        doc += 1;
    }
    out
}

/// The exact top `k` chunk ids of `chunks`.
fn brute_chunks(chunks: &[(String, Vec<f32>)], q: &[f32], k: usize) -> Vec<String> {
    let mut s: Vec<(f32, &String)> = chunks.iter().map(|(id, v)| (dot(v, q), id)).collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    s.into_iter().take(k).map(|(_, id)| id.clone()).collect()
}

#[test]
fn chunks_without_filters_go_through_the_index_and_few_matching_chunks_are_exact() {
    // More chunk vectors than PostgreSQL compares exactly (10,000; SQLite's cap is 20,000
    // and it answers all of this exactly): with no filter the search goes through the
    // approximate index, which PostgreSQL learns by counting the vectors alone, with no
    // join to the chunks. A namespace that holds few of them, and a tenant that holds
    // few, are answered exactly.
    let t = store();
    let other = t.other_tenant();
    let mut vs = vectors(10_300 + 40 + 30 + 20, 17);
    let queries = vs.split_off(vs.len() - 20);
    let few_theirs = vs.split_off(vs.len() - 30);
    let few = vs.split_off(vs.len() - 40);
    let many = chunks_with_vectors(&t, &t.scope, "big", &vs);
    let small = chunks_with_vectors(&t, &t.scope, "small", &few);
    let theirs = chunks_with_vectors(&t, &other, "big", &few_theirs);
    let all: Vec<(String, Vec<f32>)> = many.iter().chain(&small).cloned().collect();
    let search = |scope: &agentstore::Scope, q: &[f32], filter: SearchFilter| {
        let hits = t
            .store
            .search(
                scope,
                SearchRequest {
                    filter,
                    limit: 10,
                    targets: vec![Target::Chunk],
                    ..SearchRequest::vector(q.to_vec())
                },
            )
            .unwrap();
        ids(&hits)
    };
    let mut total = 0.0;
    for q in &queries {
        let got = search(&t.scope, q, SearchFilter::default());
        assert_eq!(got.len(), 10);
        total += recall(&got, &brute_chunks(&all, q, 10));
        let in_small = SearchFilter {
            namespace_prefix: Some(Namespace::new(["small"]).unwrap()),
            ..Default::default()
        };
        assert_eq!(search(&t.scope, q, in_small), brute_chunks(&small, q, 10));
        assert_eq!(
            search(&other, q, SearchFilter::default()),
            brute_chunks(&theirs, q, 10)
        );
    }
    let r = total / queries.len() as f64;
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn caller_vectors_are_searched_exactly_in_a_small_tenant() {
    let t = store();
    let vs = vectors(500, 1);
    load(&t, &vs);
    let models = t.store.vector_models().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].model, "external-16d");
    assert_eq!((models[0].dimension, models[0].vectors), (DIM, 500));
    assert_eq!(models[0].metric, Metric::Cosine);
    for q in vectors(20, 2) {
        let hits = vsearch(&t.store, &t, &q, 10, SearchFilter::default());
        assert_eq!(ids(&hits), brute(&vs, &q, 10, |_| true));
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(h.components.vector_rank, Some(i + 1));
            assert_eq!(h.components.keyword, None);
            let sim = h.components.vector.unwrap();
            let idx: usize = h.id[1..].parse().unwrap();
            assert!((sim - f64::from(dot(&vs[idx], &q))).abs() < 1e-4);
        }
    }
    // Filters: 1% (bucket), 10% (kind), 50% (namespace), a metadata range, and a mix.
    let q = &vectors(1, 3)[0];
    type Allowed = Box<dyn Fn(usize) -> bool>;
    let cases: Vec<(SearchFilter, Allowed)> = vec![
        (
            SearchFilter {
                metadata: vec![MetadataCondition::new("bucket", MetadataOp::Eq, 7)],
                ..Default::default()
            },
            Box::new(|i| i % 100 == 7),
        ),
        (
            SearchFilter {
                kinds: vec!["k3".into()],
                ..Default::default()
            },
            Box::new(|i| i % 10 == 3),
        ),
        (
            SearchFilter {
                namespace_prefix: Some(Namespace::new(["b"]).unwrap()),
                ..Default::default()
            },
            Box::new(|i| i % 2 == 1),
        ),
        (
            SearchFilter {
                metadata: vec![MetadataCondition::new("bucket", MetadataOp::Lt, 30)],
                kinds: vec!["k2".into(), "k4".into()],
                ..Default::default()
            },
            Box::new(|i| i % 100 < 30 && (i % 10 == 2 || i % 10 == 4)),
        ),
    ];
    for (filter, allowed) in cases {
        let hits = vsearch(&t.store, &t, q, 10, filter.clone());
        assert_eq!(ids(&hits), brute(&vs, q, 10, &allowed), "{filter:?}");
    }
}

#[test]
fn index_follows_deletes_supersedes_and_reopens() {
    let t = store();
    let vs = vectors(300, 21);
    load(&t, &vs);
    let q = vs[5].clone();
    assert_eq!(
        ids(&vsearch(&t.store, &t, &q, 1, SearchFilter::default())),
        ["m5"]
    );
    t.store.forget(&t.scope, "m5").unwrap();
    assert_ne!(
        ids(&vsearch(&t.store, &t, &q, 1, SearchFilter::default())),
        ["m5"]
    );

    // A keyed memory: the current version's vector answers; an as-of search finds the old.
    let before = agentstore::time::now();
    let keyed = |content: &str, v: &[f32]| NewMemory {
        key: Some("pref".into()),
        vector: Some(v.to_vec()),
        ..NewMemory::new(content)
    };
    let v1 = unit(vec![1.0; DIM]);
    let mut v2 = vec![1.0; DIM];
    v2[0] = -5.0;
    let v2 = unit(v2);
    let first = t.store.remember(&t.scope, keyed("likes tea", &v1)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let second = t
        .store
        .remember(&t.scope, keyed("likes coffee", &v2))
        .unwrap();
    let top = vsearch(&t.store, &t, &v1, 400, SearchFilter::default());
    assert!(
        !ids(&top).contains(&first.id().to_owned()),
        "superseded version returned"
    );
    assert!(ids(&top).contains(&second.id().to_owned()));
    let then = vsearch(
        &t.store,
        &t,
        &v1,
        1,
        SearchFilter {
            valid_at: Some(agentstore::time::from_micros(
                agentstore::time::to_micros(&before) + 1000,
            )),
            ..Default::default()
        },
    );
    assert_eq!(ids(&then), [first.id().to_owned()]);

    // Events with vectors leave with their session; chunks (PutVectors) with their document.
    let s = t
        .store
        .create_session(&t.scope, NewSession::new("conversation"))
        .unwrap();
    let ev = t
        .store
        .append_events(
            &t.scope,
            &s.id,
            vec![NewEvent {
                vector: Some(v1.clone()),
                ..NewEvent::message("user", "hello there")
            }],
        )
        .unwrap();
    let doc = t
        .store
        .put_document(&t.scope, NewDocument::new("A short document."))
        .unwrap();
    let chunk = t.store.list_chunks(&t.scope, doc.id()).unwrap().remove(0);
    t.store
        .write(
            &t.scope,
            vec![WriteOp::PutVectors {
                target: Target::Chunk,
                items: vec![(
                    chunk.id.clone(),
                    Embedding {
                        model: "external-16d".into(),
                        vector: v1.clone(),
                    },
                )],
            }],
        )
        .unwrap();
    let everywhere = |store: &Store| {
        store
            .search(
                &t.scope,
                SearchRequest {
                    limit: 3,
                    ..SearchRequest::vector(v1.clone())
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| (h.target, h.id))
            .collect::<BTreeSet<_>>()
    };
    let found = everywhere(&t.store);
    assert!(
        found.contains(&(Target::Event, ev[0].id.clone())),
        "{found:?}"
    );
    assert!(
        found.contains(&(Target::Chunk, chunk.id.clone())),
        "{found:?}"
    );
    t.store.delete_session(&t.scope, &s.id).unwrap();
    t.store.delete_document(&t.scope, doc.id()).unwrap();
    let found = everywhere(&t.store);
    assert!(
        !found.iter().any(|(t, _)| *t != Target::Memory),
        "{found:?}"
    );
    assert!(
        t.store.verify().unwrap().ok(),
        "{:?}",
        t.store.verify().unwrap()
    );

    // A process that dies without snapshotting: the next one replays the log.
    let expect = ids(&vsearch(&t.store, &t, &vs[7], 10, SearchFilter::default()));
    let crashed = t.reopen();
    crashed
        .remember(
            &t.scope,
            NewMemory {
                id: Some("late".into()),
                vector: Some(vs[7].clone()),
                ..NewMemory::new("added by a process that then died")
            },
        )
        .unwrap();
    std::mem::forget(crashed);
    let reopened = t.reopen();
    let got = ids(&vsearch(&reopened, &t, &vs[7], 11, SearchFilter::default()));
    assert!(got.contains(&"late".to_owned()));
    assert!(
        expect.iter().all(|id| got.contains(id)),
        "{got:?} vs {expect:?}"
    );
    let report = reopened.verify().unwrap();
    assert!(report.ok(), "{report:?}");
}

#[test]
fn tenants_never_see_each_others_vectors() {
    let t = store();
    let other = t.other_tenant();
    let v = unit(vec![0.5; DIM]);
    t.store
        .remember(
            &t.scope,
            NewMemory {
                vector: Some(v.clone()),
                ..NewMemory::new("mine")
            },
        )
        .unwrap();
    t.store
        .remember(
            &other,
            NewMemory {
                vector: Some(v.clone()),
                ..NewMemory::new("theirs")
            },
        )
        .unwrap();
    for (scope, want) in [(&t.scope, "mine"), (&other, "theirs")] {
        let hits = t
            .store
            .search(scope, SearchRequest::vector(v.clone()))
            .unwrap();
        assert_eq!(hits.len(), 1);
        match &hits[0].record {
            agentstore::search::HitRecord::Memory(m) => assert_eq!(m.content, want),
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn bad_vectors_change_nothing() {
    let t = store();
    t.store
        .remember(
            &t.scope,
            NewMemory {
                vector: Some(unit(vec![1.0; DIM])),
                ..NewMemory::new("ok")
            },
        )
        .unwrap();
    let audit_before = t.store.list_audit(Default::default()).unwrap().items.len();
    for v in [
        vec![1.0; DIM + 1],
        vec![f32::NAN; DIM],
        vec![0.0; DIM],
        vec![],
    ] {
        // The first vector of a batch names the model (external-16d); the bad one fails
        // and takes the good one with it.
        let batch = vec![
            NewMemory {
                vector: Some(unit(vec![2.0; DIM])),
                ..NewMemory::new("fine")
            },
            NewMemory {
                vector: Some(v.clone()),
                ..NewMemory::new("bad")
            },
        ];
        let e = t.store.remember_many(&t.scope, batch).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{v:?}: {e}");
    }
    // With a declared model, a vector of another length is refused before any write.
    let declared = t.reopen().with_vector_model(VectorModel {
        id: "external-16d".into(),
        dimension: DIM,
        metric: Metric::Cosine,
    });
    let e = declared
        .remember(
            &t.scope,
            NewMemory {
                vector: Some(vec![1.0; 3]),
                ..NewMemory::new("short")
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(e.to_string().contains("vector model has 16"), "{e}");
    // A query vector of the wrong length is refused too.
    let e = t
        .store
        .search(
            &t.scope,
            SearchRequest {
                model: Some("external-16d".into()),
                ..SearchRequest::vector(vec![1.0; 3])
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert_eq!(
        t.store.list_audit(Default::default()).unwrap().items.len(),
        audit_before
    );
    assert_eq!(t.store.vector_models().unwrap()[0].vectors, 1);
    // A declared model keeps its metric: another is a conflict.
    let dot_store = t.reopen().with_vector_model(VectorModel {
        id: "external-16d".into(),
        dimension: DIM,
        metric: Metric::Dot,
    });
    let e = dot_store
        .remember(
            &t.scope,
            NewMemory {
                vector: Some(unit(vec![1.0; DIM])),
                ..NewMemory::new("x")
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "conflict");
}

#[test]
fn hybrid_fuses_keyword_and_vector_lists() {
    let t = store();
    let near = unit(vec![1.0; DIM]);
    let mut far = vec![-1.0; DIM];
    far[1] = 1.0;
    let far = unit(far);
    let put = |id: &str, text: &str, v: &[f32]| {
        t.store
            .remember(
                &t.scope,
                NewMemory {
                    id: Some(id.into()),
                    vector: Some(v.to_vec()),
                    ..NewMemory::new(text)
                },
            )
            .unwrap();
    };
    put("both", "the password reset loop", &near);
    put("words", "password reset instructions", &far);
    put("meaning", "unrelated words entirely", &near);
    let hits = t
        .store
        .search(
            &t.scope,
            SearchRequest {
                vector: Some(near.clone()),
                ..SearchRequest::text("password reset loop")
            },
        )
        .unwrap();
    assert_eq!(hits[0].id, "both");
    let c = &hits[0].components;
    assert!(c.keyword.is_some() && c.vector.is_some());
    let k = 60.0;
    let expect =
        1.0 / (k + c.keyword_rank.unwrap() as f64) + 1.0 / (k + c.vector_rank.unwrap() as f64);
    assert!((c.fused - expect).abs() < 1e-12);
    let found: BTreeSet<String> = hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(
        found,
        ["both", "words", "meaning"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // Modes can be forced.
    let only = |mode| {
        t.store
            .search(
                &t.scope,
                SearchRequest {
                    mode: Some(mode),
                    vector: Some(near.clone()),
                    ..SearchRequest::text("password reset loop")
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect::<BTreeSet<_>>()
    };
    assert!(!only(SearchMode::Keyword).contains("meaning"));
    assert!(
        !only(SearchMode::Vector).contains("words")
            || t.store.vector_models().unwrap()[0].vectors == 3
    );
}

#[test]
fn mmr_uses_vectors_to_diversify() {
    let t = store();
    let a = unit(vec![1.0; DIM]);
    let mut b = vec![1.0; DIM];
    b[0] = 0.9;
    let b = unit(b);
    let mut c = vec![0.2; DIM];
    c[3] = 3.0;
    let c = unit(c);
    for (id, v) in [("a", &a), ("a2", &b), ("c", &c)] {
        t.store
            .remember(
                &t.scope,
                NewMemory {
                    id: Some(id.into()),
                    vector: Some(v.clone()),
                    ..NewMemory::new(format!("text {id}"))
                },
            )
            .unwrap();
    }
    let plain = ids(&vsearch(&t.store, &t, &a, 2, SearchFilter::default()));
    assert_eq!(plain, ["a", "a2"]);
    let diverse = t
        .store
        .search(
            &t.scope,
            SearchRequest {
                limit: 2,
                mmr_lambda: Some(0.3),
                ..SearchRequest::vector(a.clone())
            },
        )
        .unwrap();
    assert_eq!(ids(&diverse), ["a", "c"]);
}
