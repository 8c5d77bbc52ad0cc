//! The archive's layout: whole entries, leftovers, pruning, kept indexes, planted links.
use super::*;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn signed(text: &str) -> UntrustedIndex {
    UntrustedIndex {
        bytes: text.as_bytes().to_vec(),
        signatures: b"sig".to_vec(),
    }
}

const LIMITS: Limits = Limits {
    index: 1024,
    signatures: 1024,
};

fn store(a: &Archive, version: &str, image: &[u8]) {
    let mut e = a.begin(&v(version), &signed(version)).unwrap();
    e.write(image).unwrap();
    e.sync().unwrap();
    e.finish().unwrap();
}

#[test]
fn an_entry_is_stored_whole_and_replaced_whole() {
    let d = tempfile::tempdir().unwrap();
    let a = Archive::new(d.path());
    store(&a, "1.1", b"first");
    store(&a, "1.1", b"second image");
    assert_eq!(a.versions().unwrap(), vec![v("1.1")]);
    assert!(a.holds(&v("1.1"), 12));
    assert_eq!(
        std::fs::read(a.image_path(&v("1.1"))).unwrap(),
        b"second image"
    );
    assert_eq!(a.entry_index(&v("1.1"), LIMITS).unwrap().bytes, b"1.1");
    // Nothing else is left in the archive's directory.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["1.1".to_string()]);
}

#[test]
fn a_failed_copy_leaves_no_entry_and_its_leftovers_are_cleaned() {
    let d = tempfile::tempdir().unwrap();
    let a = Archive::new(d.path());
    // The copy fails halfway: the entry is never finished.
    let mut e = a.begin(&v("1.2"), &signed("x")).unwrap();
    e.write(b"half an ima").unwrap();
    drop(e);
    assert!(a.versions().unwrap().is_empty());
    assert!(d.path().join(".tmp-1.2").exists());
    a.clean_leftovers().unwrap();
    assert!(!d.path().join(".tmp-1.2").exists());
}

#[test]
fn pruning_keeps_the_running_version_and_the_highest_others() {
    let d = tempfile::tempdir().unwrap();
    let a = Archive::new(d.path());
    for x in ["1.0", "1.1", "1.2", "1.10"] {
        store(&a, x, b"img");
    }
    // Running 1.0 (a downgrade): it stays, with the highest other one.
    assert_eq!(
        a.prune(2, Some(&v("1.0"))).unwrap(),
        vec![v("1.2"), v("1.1")]
    );
    assert_eq!(a.versions().unwrap(), vec![v("1.0"), v("1.10")]);
    // Nothing more to remove: nothing is touched.
    assert!(a.prune(2, Some(&v("1.0"))).unwrap().is_empty());
    assert_eq!(a.prune(1, None).unwrap(), vec![v("1.0")]);
    // Keeping one, running 1.10: an older image would be pruned at once, so it is not
    // worth copying; a newer one would replace it.
    let survivors = |adding: &[&str], keep| {
        let adding: Vec<Version> = adding.iter().map(|x| v(x)).collect();
        a.survivors(&adding, keep, Some(&v("1.10"))).unwrap()
    };
    assert_eq!(survivors(&["1.2"], 1), vec![v("1.10")]);
    assert_eq!(survivors(&["2.0"], 2), vec![v("1.10"), v("2.0")]);
    // Two candidates at once (both slots): the older one would not stay.
    assert_eq!(survivors(&["0.9", "1.5"], 2), vec![v("1.10"), v("1.5")]);
}

#[test]
fn a_kept_index_is_written_once_and_read_back_bounded() {
    let d = tempfile::tempdir().unwrap();
    let a = Archive::new(d.path());
    assert!(a.keep_index(&v("1.1"), &signed("idx")).unwrap());
    assert!(!a.keep_index(&v("1.1"), &signed("idx")).unwrap());
    assert!(a.keep_index(&v("1.1"), &signed("newer")).unwrap());
    assert_eq!(a.incoming_index(&v("1.1"), LIMITS).unwrap().bytes, b"newer");
    assert_eq!(a.incoming_versions(), vec![v("1.1")]);
    let small = Limits {
        index: 3,
        signatures: 1024,
    };
    assert!(a.incoming_index(&v("1.1"), small).is_none());
    let kept = SafeDir::open_root(&d.path().join(".incoming/1.1")).unwrap();
    let e = a.read_signed(&kept, small).unwrap_err();
    assert!(e.to_string().contains("larger than the 3 bytes"), "{e}");
    a.drop_incoming(&v("1.1")).unwrap();
    assert!(a.incoming_versions().is_empty());
}

#[test]
fn links_planted_in_the_archive_are_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("usb");
    let outside = d.path().join("outside");
    std::fs::create_dir_all(root.join(".incoming/1.1")).unwrap();
    std::fs::create_dir_all(outside.join("1.2")).unwrap();
    std::fs::write(outside.join("victim"), b"keep").unwrap();
    std::fs::write(outside.join("1.2/data"), b"keep").unwrap();
    let a = Archive::new(&root);
    // A link at the kept index's temporary: the index is kept, the target untouched.
    std::os::unix::fs::symlink(
        outside.join("victim"),
        root.join(".incoming/1.1/index.toml.new"),
    )
    .unwrap();
    assert!(a.keep_index(&v("1.1"), &signed("idx")).unwrap());
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(a.incoming_index(&v("1.1"), LIMITS).unwrap().bytes, b"idx");
    // .incoming a link to a directory of version-named directories: never entered,
    // cleaning removes the link only.
    std::fs::remove_dir_all(root.join(".incoming")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join(".incoming")).unwrap();
    assert!(a.incoming_versions().is_empty());
    assert!(a.keep_index(&v("1.2"), &signed("idx")).is_err());
    a.drop_incoming(&v("1.2")).unwrap();
    assert!(outside.join("1.2/data").exists());
    // An entry that is a link, or an entry whose image is one: not an entry, not read.
    std::os::unix::fs::symlink(outside.join("1.2"), root.join("1.2")).unwrap();
    std::fs::create_dir_all(root.join("1.3")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), root.join("1.3/image.bin")).unwrap();
    assert_eq!(a.versions().unwrap(), vec![v("1.3")]);
    assert!(a.entry_index(&v("1.2"), LIMITS).is_err());
    assert!(a.open_image(&v("1.3")).is_err() && a.image_len(&v("1.3")).is_err());
    assert!(!a.holds(&v("1.3"), 4));
    a.prune(0, None).unwrap();
    std::fs::write(root.join(".tmp-1.4"), b"").unwrap();
    std::os::unix::fs::symlink(&outside, root.join(".old-1.5")).unwrap();
    a.clean_leftovers().unwrap();
    assert!(outside.join("1.2/data").exists() && outside.join("victim").exists());
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
    // The archive's directory itself a link: refused, naming it.
    let linked = Archive::new(d.path().join("usb-link"));
    std::os::unix::fs::symlink(&outside, d.path().join("usb-link")).unwrap();
    let e = linked.versions().unwrap_err().to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(linked.keep_index(&v("1.1"), &signed("idx")).is_err());
    assert!(linked.begin(&v("1.1"), &signed("idx")).is_err());
    assert!(outside.join("1.2/data").exists());
}

#[test]
fn an_unmounted_archive_is_not_created() {
    let d = tempfile::tempdir().unwrap();
    let a = Archive::new(d.path().join("usb"));
    let e = a.keep_index(&v("1.1"), &signed("idx")).unwrap_err();
    assert!(e.to_string().contains("usb"), "{e}");
    assert!(!d.path().join("usb").exists());
    assert!(a.versions().is_err());
}
