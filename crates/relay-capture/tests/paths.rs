//! Property tests: a subject never names anything outside its root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Component, Path, PathBuf};

use proptest::prelude::*;
use relay_capture::{PathRejection, relative_subject, subject_path};

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_ .-]{1,8}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => "[\\u{80}-\\u{10FFFF}]{1,3}",
    ]
}

fn path_under(root: &str, parts: &[String]) -> PathBuf {
    let mut text = root.to_owned();
    for p in parts {
        text.push('/');
        text.push_str(p);
    }
    PathBuf::from(text)
}

proptest! {
    #[test]
    fn accepted_subjects_stay_inside_the_root(parts in prop::collection::vec(component(), 0..8)) {
        let root = Path::new("/data/nmr");
        let path = path_under("/data/nmr", &parts);
        match relative_subject(root, &path) {
            Ok(subject) => {
                let s = subject.as_str();
                prop_assert!(!s.starts_with('/'));
                prop_assert!(s.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
                // The subject leads back to exactly the same path, and only under the root.
                let back = subject_path(root, s).unwrap();
                prop_assert_eq!(&back, &path);
                prop_assert!(back.starts_with(root));
            }
            Err(e) => {
                let has_parent = path.components().any(|c| c == Component::ParentDir);
                let only_root = path.components().count() == root.components().count();
                let bad_name = matches!(e, PathRejection::BadSubject(_));
                prop_assert!(has_parent || only_root || bad_name, "{e} for {path:?}");
            }
        }
    }

    // REQ: R6.4
    #[test]
    fn paths_outside_the_root_are_refused(parts in prop::collection::vec("[a-z]{1,4}", 0..4), sibling in "[a-z]{1,4}") {
        let root = Path::new("/data/nmr");
        let path = path_under(&format!("/data/nmr{sibling}"), &parts);
        prop_assert_eq!(relative_subject(root, &path), Err(PathRejection::OutsideRoot));
        let path = path_under("/data", &parts);
        prop_assert!(relative_subject(root, &path).is_err());
    }

    // REQ: R6.4
    #[test]
    fn subject_text_from_a_trail_cannot_climb_out(parts in prop::collection::vec(component(), 1..6)) {
        let root = Path::new("/data/nmr");
        let text = parts.join("/");
        if let Ok(path) = subject_path(root, &text) {
            prop_assert!(path.starts_with(root));
            prop_assert!(path.components().all(|c| c != Component::ParentDir));
            match relative_subject(root, &path) {
                Ok(subject) => prop_assert_eq!(subject.as_str(), text.as_str()),
                // Names a subject cannot hold (e.g. only whitespace) are refused, never altered.
                Err(e) => prop_assert!(matches!(e, PathRejection::BadSubject(_)), "{e}"),
            }
        }
    }
}
