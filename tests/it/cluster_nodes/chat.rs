//! A visit's chat survives the node that owned its room: the patient's page, reloaded
//! onto another node after the owner died, is shown every line it had read, in order.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chat_survives_the_node_that_owned_the_room() {
    let (mut cluster, grey, room) = two_nodes_and_grey_s_room().await;
    // Node A owns the room (the patient arrived there first).
    let (pt, visit, mut ana, mut doc, _) =
        ana_on_a_admitted_by_grey_on_b(&cluster, &grey, &room).await;
    ana.send(json!({"type": "chat", "text": "my throat hurts"}))
        .await;
    doc.expect_where("chat", |m| m["text"] == "my throat hurts")
        .await;
    doc.send(json!({"type": "chat", "text": "since when?"}))
        .await;
    ana.expect_where("chat", |m| m["text"] == "since when?")
        .await;
    // The owner dies the instant the last line was read; the patient's page reloads (no
    // resume token, nothing kept) and lands on node B, which takes the room over.
    cluster.nodes[0].kill();
    let mut ana = cluster.nodes[1].join(&pt).await;
    assert_eq!(ana.expect("admitted").await["visit"], visit.to_string());
    let history = ana.expect("chat_history").await;
    let lines: Vec<String> = history["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            format!(
                "{}: {}",
                l["name"].as_str().unwrap(),
                l["text"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines, ["Ana: my throat hurts", "Dr Grey: since when?"]);
    cluster.stop().await;
}
