//! Documents and chunks: create, unchanged re-puts, replacement by id and by source path,
//! dedupe by hash, cascading delete, chunk offsets, query counters, filters and pages,
//! tenant isolation, and bad input that must change nothing.

use std::collections::BTreeSet;

use agentstore::backend::{AuditQuery, DocumentQuery};
use agentstore::codec::{sha256_hex, word_count};
use agentstore::text::ChunkOptions;
use agentstore::time::now;
use agentstore::{DocumentOutcome, Namespace, NewDocument, NewSubject, WriteOp, WriteResult};

use crate::common::{TestStore, store};

/// Tenant t1's audit entries as (action, new_values), oldest first.
fn audit(t: &TestStore) -> Vec<(String, Option<serde_json::Value>)> {
    t.store
        .list_audit(AuditQuery {
            tenant_id: Some("t1".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.action, e.new_values))
        .collect()
}

fn small_chunks(content: &str) -> NewDocument {
    let mut d = NewDocument::new(content);
    d.chunking = ChunkOptions {
        size: 64,
        overlap: 8,
    };
    d
}

fn long_text(tag: &str) -> String {
    (0..12)
        .map(|i| format!("Sentence {i} of {tag} talks about café, naïve façades and 東京. "))
        .collect()
}

fn chunk_ids(t: &TestStore, doc: &str) -> Vec<String> {
    t.store
        .backend()
        .list_chunks("t1", doc)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

#[test]
fn create_stores_chunks_that_point_into_the_content() {
    let t = store();
    let s = &t.scope;
    let content = long_text("the guide");
    let mut d = small_chunks(&content);
    d.title = Some("Guide".into());
    d.doc_type = Some("markdown".into());
    d.source_path = Some("docs/guide.md".into());
    d.metadata = serde_json::json!({"lang": "en"});
    let out = t.store.put_document(s, d).unwrap();
    let DocumentOutcome::Created { id, chunks: n } = out else {
        panic!("expected Created, got {out:?}");
    };
    assert!(n > 3, "{n} chunks");

    let doc = t.store.get_document(s, &id).unwrap();
    assert_eq!(doc.content, content);
    assert_eq!(doc.content_hash, sha256_hex(content.as_bytes()));
    assert_eq!(doc.word_count, word_count(&content));
    assert_eq!((doc.chunk_size, doc.chunk_overlap), (64, 8));
    assert_eq!(doc.doc_type, "markdown");
    assert_eq!(doc.metadata["lang"], "en");

    let chunks = t.store.list_chunks(s, &id).unwrap();
    assert_eq!(chunks.len(), n);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.idx, i as i64);
        assert_eq!(
            (c.document_id.as_str(), c.tenant_id.as_str()),
            (id.as_str(), "t1")
        );
        assert_eq!(c.content, content[c.start as usize..c.end as usize]);
        assert_eq!(c.content_hash, sha256_hex(c.content.as_bytes()));
        assert_eq!(c.word_count, word_count(&c.content));
        assert_eq!((c.query_count, c.last_queried_at), (0, None));
        assert_eq!(
            t.store.backend().get_chunk("t1", &c.id).unwrap().as_ref(),
            Some(c)
        );
    }

    let (action, values) = audit(&t).pop().unwrap();
    assert_eq!(action, "document.create");
    let values = values.unwrap();
    assert_eq!(values["chunks"], n);
    assert_eq!(values["content"]["redacted"], true);
    assert!(!values.to_string().contains("café"));
}

#[test]
fn same_id_is_unchanged_or_replaced() {
    let t = store();
    let s = &t.scope;
    let mut d = small_chunks(&long_text("A"));
    d.id = Some("doc-1".into());
    let out = t.store.put_document(s, d.clone()).unwrap();
    assert!(matches!(out, DocumentOutcome::Created { ref id, .. } if id == "doc-1"));
    let first = t.store.get_document(s, "doc-1").unwrap();
    let old_chunks = chunk_ids(&t, "doc-1");

    // Identical content: nothing is written, not even the new title.
    let audited = audit(&t).len();
    d.title = Some("renamed".into());
    assert_eq!(
        t.store.put_document(s, d.clone()).unwrap(),
        DocumentOutcome::Unchanged { id: "doc-1".into() }
    );
    assert_eq!(audit(&t).len(), audited);
    assert_eq!(t.store.get_document(s, "doc-1").unwrap(), first);
    assert_eq!(chunk_ids(&t, "doc-1"), old_chunks);

    // New content under the same id replaces the document and all its chunks.
    let mut d2 = small_chunks("A much shorter text. It has two sentences.");
    d2.id = Some("doc-1".into());
    let out = t.store.put_document(s, d2).unwrap();
    assert_eq!(
        out,
        DocumentOutcome::Replaced {
            id: "doc-1".into(),
            chunks: 1
        }
    );
    let doc = t.store.get_document(s, "doc-1").unwrap();
    assert_eq!(doc.content, "A much shorter text. It has two sentences.");
    assert_eq!(doc.created_at, first.created_at);
    for c in &old_chunks {
        assert!(t.store.backend().get_chunk("t1", c).unwrap().is_none());
    }
    assert_eq!(chunk_ids(&t, "doc-1").len(), 1);
    let (action, values) = audit(&t).pop().unwrap();
    assert_eq!(action, "document.replace");
    assert_eq!(values.as_ref().unwrap()["chunks"], 1);
    assert_eq!(values.unwrap()["chunks_removed"], old_chunks.len());
}

#[test]
fn same_source_path_replaces_the_document_it_names() {
    let t = store();
    let s = &t.scope;
    let kb = Namespace::new(["kb"]).unwrap();
    let put = |content: &str, ns: &Namespace| {
        let mut d = small_chunks(content);
        d.namespace = ns.clone();
        d.source_path = Some("guide.md".into());
        t.store.put_document(s, d).unwrap()
    };
    let DocumentOutcome::Created { id, .. } = put(&long_text("v1"), &kb) else {
        panic!("expected Created");
    };
    let old_chunks = chunk_ids(&t, &id);
    let created_at = t.store.get_document(s, &id).unwrap().created_at;

    // A re-ingest of the same path (with a fresh id from the engine) replaces in place.
    let v2 = long_text("version two");
    let out = put(&v2, &kb);
    let DocumentOutcome::Replaced { id: same, chunks } = out else {
        panic!("expected Replaced, got {out:?}");
    };
    assert_eq!(same, id);
    for c in &old_chunks {
        assert!(t.store.backend().get_chunk("t1", c).unwrap().is_none());
    }
    let new_chunks = t.store.list_chunks(s, &id).unwrap();
    assert_eq!(new_chunks.len(), chunks);
    assert!(new_chunks.iter().all(|c| c.document_id == id));
    assert!(new_chunks.iter().all(|c| !old_chunks.contains(&c.id)));
    let doc = t.store.get_document(s, &id).unwrap();
    assert_eq!(
        (doc.content.as_str(), doc.created_at),
        (v2.as_str(), created_at)
    );
    let listed = t
        .store
        .list_documents(
            s,
            DocumentQuery {
                namespace_prefix: Some(kb.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    // Same content again: unchanged. The same path in another namespace is another document.
    assert_eq!(put(&v2, &kb), DocumentOutcome::Unchanged { id: id.clone() });
    let other = put(&v2, &Namespace::new(["other"]).unwrap());
    assert!(matches!(other, DocumentOutcome::Created { id: ref o, .. } if *o != id));
}

#[test]
fn same_content_in_a_namespace_is_stored_once() {
    let t = store();
    let s = &t.scope;
    let text = "Stored once. Found by its hash.";
    let DocumentOutcome::Created { id, .. } =
        t.store.put_document(s, NewDocument::new(text)).unwrap()
    else {
        panic!("expected Created");
    };
    let audited = audit(&t).len();
    let mut again = NewDocument::new(text);
    again.title = Some("a copy".into());
    assert_eq!(
        t.store.put_document(s, again).unwrap(),
        DocumentOutcome::Unchanged { id: id.clone() }
    );
    let mut with_path = NewDocument::new(text);
    with_path.source_path = Some("copy.txt".into());
    assert_eq!(
        t.store.put_document(s, with_path).unwrap(),
        DocumentOutcome::Unchanged { id: id.clone() }
    );
    assert_eq!(audit(&t).len(), audited);
    let mut elsewhere = NewDocument::new(text);
    elsewhere.namespace = Namespace::new(["elsewhere"]).unwrap();
    assert!(matches!(
        t.store.put_document(s, elsewhere).unwrap(),
        DocumentOutcome::Created { .. }
    ));
}

#[test]
fn delete_removes_the_document_and_its_chunks() {
    let t = store();
    let s = &t.scope;
    let out = t
        .store
        .put_document(s, small_chunks(&long_text("gone")))
        .unwrap();
    let id = out.id().to_owned();
    let chunks = chunk_ids(&t, &id);
    assert!(!chunks.is_empty());
    t.store.delete_document(s, &id).unwrap();
    assert_eq!(
        t.store.get_document(s, &id).unwrap_err().code(),
        "not_found"
    );
    assert_eq!(t.store.list_chunks(s, &id).unwrap_err().code(), "not_found");
    assert!(chunk_ids(&t, &id).is_empty());
    for c in &chunks {
        assert!(t.store.backend().get_chunk("t1", c).unwrap().is_none());
    }
    assert_eq!(
        t.store.delete_document(s, &id).unwrap_err().code(),
        "not_found"
    );
    let (action, values) = audit(&t).pop().unwrap();
    assert_eq!(action, "document.delete");
    assert_eq!(values.unwrap()["chunks_deleted"], chunks.len());
}

#[test]
fn chunk_query_counters() {
    let t = store();
    let s = &t.scope;
    let id = t
        .store
        .put_document(s, small_chunks(&long_text("counted")))
        .unwrap()
        .id()
        .to_owned();
    let chunks = chunk_ids(&t, &id);
    let (c0, c1) = (chunks[0].clone(), chunks[1].clone());
    let record = |scope: &agentstore::Scope, ids: Vec<String>| {
        let at = now();
        let r = t
            .store
            .write(scope, vec![WriteOp::RecordChunkQueries { ids, at }])
            .unwrap();
        (r, at)
    };
    let (r, at) = record(s, vec![c0.clone(), c0.clone(), c1.clone(), "nope".into()]);
    assert_eq!(r, vec![WriteResult::Count(2)]);
    let got = t.store.backend().get_chunk("t1", &c0).unwrap().unwrap();
    assert_eq!((got.query_count, got.last_queried_at), (1, Some(at)));
    let (r, _) = record(s, vec![c0.clone()]);
    assert_eq!(r, vec![WriteResult::Count(1)]);
    let get = |c: &str| t.store.backend().get_chunk("t1", c).unwrap().unwrap();
    assert_eq!((get(&c0).query_count, get(&c1).query_count), (2, 1));

    // Another tenant cannot count hits on t1's chunks.
    let other = t.other_tenant();
    let (r, _) = record(&other, vec![c1.clone()]);
    assert_eq!(r, vec![WriteResult::Count(0)]);
    assert_eq!(get(&c1).query_count, 1);
    assert!(t.store.backend().get_chunk("t2", &c1).unwrap().is_none());

    let queries: Vec<_> = audit(&t)
        .into_iter()
        .filter(|(a, _)| a == "chunk.query")
        .collect();
    assert_eq!(queries.len(), 2);
    assert_eq!(queries[0].1.as_ref().unwrap()["count"], 2);
}

#[test]
fn list_filters_and_pages() {
    let t = store();
    let s = &t.scope;
    let subject = t
        .store
        .create_subject(
            s,
            NewSubject {
                external_id: "reader@example.com".into(),
                metadata: serde_json::json!({}),
                ..Default::default()
            },
        )
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..7usize {
        let mut d = NewDocument::new(format!("Document number {i}."));
        d.id = Some(format!("d-{i}"));
        d.namespace = Namespace::new(if i < 4 { vec!["kb", "a"] } else { vec!["kbx"] }).unwrap();
        d.doc_type = Some(
            if i.is_multiple_of(2) {
                "markdown"
            } else {
                "text"
            }
            .into(),
        );
        // Paths are unique per namespace (a shared one would replace), one shared across two.
        d.source_path = Some(match i {
            2 | 5 => "shared.md".into(),
            _ => format!("file-{i}.md"),
        });
        d.subject_id = (i == 5).then(|| subject.id.clone());
        t.store.put_document(s, d).unwrap();
        ids.push(format!("d-{i}"));
    }
    let q = |f: &dyn Fn(&mut DocumentQuery)| {
        let mut q = DocumentQuery::default();
        f(&mut q);
        t.store
            .list_documents(s, q)
            .unwrap()
            .items
            .into_iter()
            .map(|d| d.id)
            .collect::<BTreeSet<_>>()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(q(&|_| {}).len(), 7);
    assert_eq!(
        q(&|q| q.namespace_prefix = Some(Namespace::new(["kb"]).unwrap())),
        set(&["d-0", "d-1", "d-2", "d-3"])
    );
    assert_eq!(
        q(&|q| q.doc_type = Some("text".into())),
        set(&["d-1", "d-3", "d-5"])
    );
    assert_eq!(
        q(&|q| q.source_path = Some("shared.md".into())),
        set(&["d-2", "d-5"])
    );
    assert_eq!(
        q(&|q| q.subject_id = Some(subject.id.clone())),
        set(&["d-5"])
    );

    let all = t
        .store
        .list_documents(s, DocumentQuery::default())
        .unwrap()
        .items;
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    assert_eq!(all, sorted);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = t
            .store
            .list_documents(
                s,
                DocumentQuery {
                    limit: 2,
                    after: after.take(),
                    ..Default::default()
                },
            )
            .unwrap();
        paged.extend(page.items.into_iter().map(|d| d.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, all.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
    assert_eq!(
        t.store
            .list_documents(
                s,
                DocumentQuery {
                    after: Some("not-a-cursor".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code(),
        "invalid_input"
    );
}

#[test]
fn tenants_cannot_see_or_change_each_others_documents() {
    let t = store();
    let s = &t.scope;
    let mut d = NewDocument::new("Private notes.");
    d.id = Some("doc-1".into());
    t.store.put_document(s, d.clone()).unwrap();
    let other = t.other_tenant();
    assert_eq!(
        t.store.get_document(&other, "doc-1").unwrap_err().code(),
        "not_found"
    );
    assert_eq!(
        t.store.list_chunks(&other, "doc-1").unwrap_err().code(),
        "not_found"
    );
    assert!(
        t.store
            .backend()
            .list_chunks("t2", "doc-1")
            .unwrap()
            .is_empty()
    );
    assert!(
        t.store
            .list_documents(&other, DocumentQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        t.store.delete_document(&other, "doc-1").unwrap_err().code(),
        "not_found"
    );
    // Same id and content in the other tenant: its own document, no cross-tenant dedupe.
    assert_eq!(
        t.store.put_document(&other, d).unwrap(),
        DocumentOutcome::Created {
            id: "doc-1".into(),
            chunks: 1
        }
    );
    assert_eq!(t.store.get_document(s, "doc-1").unwrap().tenant_id, "t1");
    assert_eq!(chunk_ids(&t, "doc-1").len(), 1);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let t = store();
    let s = &t.scope;
    let audited = audit(&t).len();
    let code = |d: NewDocument| t.store.put_document(s, d).unwrap_err().code();

    let huge = "x ".repeat(t.store.limits().max_document_bytes / 2 + 1);
    assert_eq!(code(NewDocument::new(huge)), "too_large");
    assert_eq!(code(NewDocument::new("   ")), "invalid_input");
    let mut d = NewDocument::new("Chunked badly.");
    d.chunking = ChunkOptions {
        size: 100,
        overlap: 60,
    };
    assert_eq!(code(d), "invalid_input");
    let d: NewDocument =
        serde_json::from_value(serde_json::json!({"namespace": ["", "b"], "content": "x"}))
            .unwrap();
    assert_eq!(code(d), "invalid_input");
    let mut d = NewDocument::new("Bad id.");
    d.id = Some("no/slashes".into());
    assert_eq!(code(d), "invalid_input");
    let mut d = NewDocument::new("About nobody.");
    d.subject_id = Some("nobody".into());
    assert_eq!(code(d), "not_found");

    assert_eq!(audit(&t).len(), audited);
    assert!(
        t.store
            .list_documents(s, DocumentQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
}
