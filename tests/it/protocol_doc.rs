//! docs/protocol.md documents every message type in both directions and every error code.

use examroom::protocol::{ErrorCode, all_type_names};

#[test]
fn protocol_doc_names_every_message_and_error_code() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    let (client, server) = all_type_names();
    for t in client {
        assert!(
            doc.contains(&format!("### `{t}` (client")),
            "client message `{t}` is not documented"
        );
    }
    for t in server {
        assert!(
            doc.contains(&format!("### `{t}` (server")),
            "server message `{t}` is not documented"
        );
    }
    for c in ErrorCode::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", c.as_str())),
            "error code `{}` is not documented",
            c.as_str()
        );
    }
}

/// The type lists used for parsing and documentation cover every variant.
#[test]
fn type_lists_cover_every_variant() {
    use examroom::protocol::ClientMsg;
    let samples = vec![
        r#"{"type":"hello","v":1,"token":"t"}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"pong"}"#,
        r#"{"type":"profile","name":"A"}"#,
        r#"{"type":"device_check","ok":true,"summary":"s"}"#,
        r#"{"type":"availability","available":true}"#,
        r#"{"type":"admit","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"deny","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"send_back","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"message_patient","room":"r_1","visit":"v_1","text":"t"}"#,
        r#"{"type":"walk_in_accept","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"walk_in_pass","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"end_visit","room":"r_1","visit":"v_1"}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"offer","to":"p_1","sdp":"s"}"#,
        r#"{"type":"answer","to":"p_1","sdp":"s"}"#,
        r#"{"type":"candidate","to":"p_1","candidate":{"candidate":"c"}}"#,
        r#"{"type":"end_of_candidates","to":"p_1"}"#,
        r#"{"type":"media_state","to":"p_1","audio":true,"video":false}"#,
        r#"{"type":"chat","text":"t"}"#,
        r#"{"type":"check_offer","sdp":"s"}"#,
        r#"{"type":"check_candidate","candidate":{"candidate":""}}"#,
    ];
    let (client, _) = all_type_names();
    assert_eq!(samples.len(), client.len());
    for s in samples {
        let m: ClientMsg = serde_json::from_str(s).unwrap();
        assert!(client.contains(&m.type_name()));
    }
}
