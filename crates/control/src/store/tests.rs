use std::time::Instant;

use super::*;

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vs(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: reviews, namespace: default}}\n\
         spec: {{hosts: [{host}], http: [{{route: [{{destination: {{host: {host}}}}}]}}]}}\n"
    )
}

fn hosts(snapshot: &ConfigSnapshot) -> Vec<String> {
    snapshot
        .resources
        .iter()
        .map(|r| match r {
            Resource::VirtualService(vs) => vs.spec.hosts.join(","),
            other => other.name().to_owned(),
        })
        .collect()
}

/// Writes a file so that its stamp changes even within the clock's resolution.
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_refused_file_keeps_its_last_good_version_and_says_why() {
    let dir = dir("refused");
    write(&dir.join("reviews.yaml"), &vs("reviews"));
    let mut store = Store::open(&dir);
    let first = store.current();
    assert_eq!(
        (first.version, hosts(&first)),
        (1, vec!["reviews".to_owned()])
    );

    // Invalid: a weight out of range. The old version stays, the error names the field.
    write(
        &dir.join("reviews.yaml"),
        &vs("ratings").replace("{destination", "{weight: -5, destination"),
    );
    assert!(store.rescan());
    store.publish(false);
    let now = store.current();
    assert_eq!((now.version, hosts(&now)), (1, vec!["reviews".to_owned()]));
    let errors = &now.errors[&dir.join("reviews.yaml")];
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.http[0].route[0].weight")),
        "{errors:?}"
    );

    // Fixed: the new version, and no error.
    write(&dir.join("reviews.yaml"), &vs("ratings"));
    assert!(store.rescan());
    store.publish(false);
    let fixed = store.current();
    assert_eq!(
        (fixed.version, hosts(&fixed)),
        (2, vec!["ratings".to_owned()])
    );
    assert!(fixed.errors.is_empty());

    // Equal resources in another form: nothing new.
    write(
        &dir.join("reviews.yaml"),
        &format!("# a comment\n{}", vs("ratings")),
    );
    assert!(store.rescan());
    store.publish(false);
    assert_eq!(store.current().version, 2);

    // A file removed takes its resources with it.
    std::fs::remove_file(dir.join("reviews.yaml")).unwrap();
    assert!(store.rescan());
    store.publish(false);
    assert_eq!(
        (store.current().version, store.current().resources.len()),
        (3, 0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_watcher_publishes_an_edit() {
    let dir = dir("watch");
    write(&dir.join("reviews.yaml"), &vs("reviews"));
    let store = Store::open(&dir);
    let mut changes = store.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(store.watch(async {
        let _ = stopped.await;
    }));
    write(
        &dir.join("more.yaml"),
        &vs("details").replace("name: reviews", "name: details"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::timeout_at(deadline.into(), changes.changed())
            .await
            .expect("a new version within 10 s")
            .unwrap();
        let snapshot = changes.borrow_and_update().clone();
        if snapshot.version == 2 {
            assert_eq!(hosts(&snapshot).len(), 2);
            break;
        }
    }
    let _ = stop.send(());
    watcher.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
