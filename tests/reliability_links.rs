//! Outputs and symlinks: an output that is a link updates the file it points to (the link
//! stays), and a link planted under the writer's temporary name never redirects the write.

mod cli_util;

use cli_util::*;
use std::os::unix::fs::symlink;
use wgrnn::checkpoint::Checkpoint;

fn train(out: &str) -> Vec<&str> {
    vec![
        "train",
        "--task",
        "adding",
        "--hidden",
        "4",
        "--steps",
        "2",
        "--batch",
        "2",
        "--seq-len",
        "4",
        "--eval-every",
        "2",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        out,
    ]
}

#[test]
fn an_output_link_updates_its_target() {
    let d = dir("links-out");
    std::fs::create_dir_all(d.join("keep")).unwrap();
    let link = d.join("m.safetensors");
    symlink("keep/real.safetensors", &link).unwrap();
    ok(&run(&train(s(&link))));
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let ck = Checkpoint::load(&d.join("keep/real.safetensors")).expect("the target holds the checkpoint");
    assert_eq!(ck.step, 2);
}

#[test]
fn a_link_at_the_temporary_name_is_not_followed() {
    let d = dir("links-tmp");
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious user data\n").unwrap();
    let out = d.join("m.safetensors");
    // the writer's temporary names are predictable (.<name>.tmp<pid>.<i>); the shell's pid
    // is the binary's after exec
    let script = format!(
        "for i in 0 1 2; do ln -s {} {}/.m.safetensors.tmp$$.$i; done; exec \"$0\" \"$@\"",
        s(&victim),
        s(&d)
    );
    let out_status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_wgrnn"))
        .args(train(s(&out)))
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .output()
        .unwrap();
    ok(&out_status);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious user data\n");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
    assert_eq!(Checkpoint::load(&out).unwrap().step, 2);
}
