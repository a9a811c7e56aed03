//! Hostile input in every free-text field of an encrypted store (SQLite only: field
//! encryption is this backend's): whatever the store accepts comes back byte-identical,
//! sealed or not; whatever it refuses, it refuses with `invalid_input` or `too_large` and
//! writes nothing. The strategy and the checks are the conformance suite's (`hostile.rs`).

use agentstore::backend::EventQuery;
use agentstore::{NewDocument, NewEvent, NewMemory, NewSession};
use proptest::prelude::*;
use serde_json::json;

use crate::common::store_encrypted;
use crate::hostile::{counts, hostile, refused};

proptest! {
    // Each case opens a store on disk.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// On an encrypted store, half the records belong to a subject (sealed fields), half
    /// to nobody (clear text).
    #[test]
    fn hostile_text_comes_back_byte_identical(s in hostile(), sealed in any::<bool>()) {
        let t = store_encrypted();
        let sc = &t.scope;
        let subject = sealed.then(|| {
            let mut n = agentstore::NewSubject::new("someone@example.com");
            n.consent = true;
            t.store.create_subject(sc, n).unwrap().id
        });
        let before = counts(&t);

        let mut m = NewMemory::new(format!("note {s}"));
        m.subject_id = subject.clone();
        m.summary = Some(s.clone());
        m.topic = Some(s.clone());
        m.tags = vec![s.clone()];
        m.key = Some(s.clone());
        m.metadata = json!({ "field": s.clone(), "nested": { "v": [s.clone()] } });
        match t.store.remember(sc, m) {
            Ok(out) => {
                let got = t.store.get_memory(sc, out.id()).unwrap();
                prop_assert_eq!(&got.content, &format!("note {s}"));
                prop_assert_eq!(got.summary.as_deref(), Some(s.as_str()));
                prop_assert_eq!(got.topic.as_deref(), Some(s.as_str()));
                prop_assert_eq!(&got.tags, &vec![s.clone()]);
                prop_assert_eq!(got.key.as_deref(), Some(s.as_str()));
                prop_assert_eq!(&got.metadata["field"], &json!(s));
                prop_assert_eq!(&got.metadata["nested"]["v"][0], &json!(s));
            }
            Err(e) => {
                refused(&e);
                prop_assert_eq!(counts(&t), before.clone());
            }
        }

        let mut ns = NewSession::new("chat");
        ns.subject_id = subject.clone();
        ns.title = Some(s.clone());
        let session = t.store.create_session(sc, ns).unwrap();
        let title = t.store.get_session(sc, &session.id).unwrap().title;
        prop_assert_eq!(title.as_deref(), Some(s.as_str()));
        let mut e = NewEvent::message("user", s.clone());
        e.tool_name = Some(s.clone());
        e.parameters = Some(json!({ "q": s.clone() }));
        e.metadata = Some(json!({ "k": s.clone() }));
        match t.store.append_event(sc, &session.id, e) {
            Ok(_) => {
                let events = t
                    .store
                    .list_events(
                        sc,
                        EventQuery {
                            session_id: session.id.clone(),
                            limit: 10,
                            ..Default::default()
                        },
                    )
                    .unwrap()
                    .items;
                prop_assert_eq!(events[0].content.as_deref(), Some(s.as_str()));
                prop_assert_eq!(events[0].tool_name.as_deref(), Some(s.as_str()));
                prop_assert_eq!(&events[0].parameters, &Some(json!({ "q": s.clone() })));
                prop_assert_eq!(&events[0].metadata, &json!({ "k": s.clone() }));
            }
            Err(e) => refused(&e),
        }

        let mut d = NewDocument::new(format!("doc {s}"));
        d.subject_id = subject.clone();
        d.title = Some(s.clone());
        match t.store.put_document(sc, d) {
            Ok(out) => {
                let doc = t.store.get_document(sc, out.id()).unwrap();
                prop_assert_eq!(&doc.content, &format!("doc {s}"));
                prop_assert_eq!(doc.title.as_deref(), Some(s.as_str()));
            }
            Err(e) => refused(&e),
        }
        prop_assert!(t.store.verify().unwrap().ok());
    }
}
