//! The state location's decision, on boards described by files (a sysfs tree, a mountinfo).

use super::*;

fn mount(dev: (u32, u32), point: &str, fstype: &str, source: &str) -> Mount {
    Mount {
        dev,
        root: "/".into(),
        mount_point: point.into(),
        fstype: fstype.into(),
        source: source.into(),
    }
}

fn layout(a: &Path, b: &Path, sysfs: &Path) -> Layout {
    shared(a, b, &[], sysfs)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A disk `name` (MAJ:`base`) with partitions 1..=4 in the sysfs tree `sys`, as the kernel
/// lays it out: `class/block/NAME/dev`, `dev/block/MAJ:MIN` links, `partition` files.
fn disk(sys: &Path, name: &str, major: u32, base: u32) {
    let node = sys.join("devices/virtual/block").join(name);
    write(&node.join("dev"), &format!("{major}:{base}\n"));
    std::fs::create_dir_all(sys.join("dev/block")).unwrap();
    std::fs::create_dir_all(sys.join("class/block")).unwrap();
    let link = |target: &Path, n: &str, min: u32| {
        std::os::unix::fs::symlink(target, sys.join(format!("dev/block/{major}:{min}"))).unwrap();
        std::os::unix::fs::symlink(target, sys.join("class/block").join(n)).unwrap();
    };
    link(&node, name, base);
    for p in 1..=4 {
        let part = format!("{name}{p}");
        write(
            &node.join(&part).join("dev"),
            &format!("{major}:{}\n", base + p),
        );
        write(&node.join(&part).join("partition"), &format!("{p}\n"));
        link(&node.join(&part), &part, base + p);
    }
}

#[test]
fn ram_is_refused_on_every_board_and_is_all_a_linksys_board_refuses() {
    let sys = Path::new("/nonexistent/sys");
    let boards = [
        layout(Path::new("/dev/sda2"), Path::new("/dev/sda3"), sys),
        Layout::NoSharedPartition,
    ];
    for l in &boards {
        for fs in ["tmpfs", "ramfs"] {
            let why = judge(&mount((0, 14), "/tmp", fs, fs), l).unwrap_err();
            assert!(why.contains("in RAM"), "{why}");
        }
    }
    // Linksys: the overlay, the slot's own UBIFS are all the running slot's own.
    for m in [
        mount((0, 13), "/", "overlay", "overlay"),
        mount((0, 16), "/overlay", "ubifs", "ubi0:rootfs_data"),
    ] {
        assert_eq!(judge(&m, &Layout::NoSharedPartition), Ok(true));
    }
    // A read-only root (OpenWrt's /rom) is the slot's own too, but nothing can be written.
    let rom = mount((0, 15), "/rom", "squashfs", "/dev/ubiblock0_0");
    let why = judge(&rom, &Layout::NoSharedPartition).unwrap_err();
    assert!(why.contains("read-only"), "{why}");
}

#[test]
fn an_overlay_a_squashfs_and_a_slots_own_block_device_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let sys = d.path();
    disk(sys, "vda", 254, 0);
    disk(sys, "sdb", 8, 16);
    // Slots given as images named like their devices: their numbers come from sysfs.
    let (a, b) = (d.path().join("vda2"), d.path().join("vda3"));
    let l = layout(&a, &b, sys);
    let why = judge(&mount((0, 13), "/", "overlay", "overlay"), &l).unwrap_err();
    assert!(
        why.contains("overlay, whose upper layer is the running slot's own"),
        "{why}"
    );
    let why = judge(&mount((254, 2), "/rom", "squashfs", "/dev/root"), &l).unwrap_err();
    assert!(why.contains("squashfs"), "{why}");
    let why = judge(&mount((254, 3), "/", "ext4", "/dev/root"), &l).unwrap_err();
    assert_eq!(
        why,
        format!("on device 254:3, the device of slot B ({})", b.display())
    );
    // The whole disk the slots are partitions of.
    let why = judge(&mount((254, 0), "/", "ext4", "/dev/vda"), &l).unwrap_err();
    assert!(
        why.contains("the whole disk that holds the partition of slot A"),
        "{why}"
    );
    // The data partition of the slots' disk is neither slot (the virtual router's /data).
    assert_eq!(
        judge(&mount((254, 4), "/data", "ext4", "/dev/vda4"), &l),
        Ok(false)
    );
    // A slot that is a whole disk: its partitions are the slot.
    let l = layout(&a, &d.path().join("sdb"), sys);
    let why = judge(&mount((8, 17), "/data", "f2fs", "/dev/sdb1"), &l).unwrap_err();
    assert!(why.contains("a partition of the disk of slot B"), "{why}");
    assert_eq!(
        judge(&mount((8, 1), "/data", "ext4", "/dev/sda1"), &l),
        Ok(false)
    );
}

#[test]
fn a_slots_mtd_partition_and_the_ubi_device_on_it_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let sys = d.path();
    write(&sys.join("class/ubi/ubi0/mtd_num"), "6\n");
    write(&sys.join("class/ubi/ubi1/mtd_num"), "9\n");
    let l = layout(Path::new("/dev/mtd4"), Path::new("/dev/mtd6"), sys);
    let why = judge(&mount((31, 6), "/overlay", "jffs2", "/dev/mtdblock6"), &l).unwrap_err();
    assert_eq!(why, "on mtd6, the MTD partition of slot B (/dev/mtd6)");
    let why = judge(&mount((31, 4), "/rom", "jffs2", "/dev/root"), &l).unwrap_err();
    assert!(why.ends_with("slot A (/dev/mtd4)"), "{why}");
    let why = judge(&mount((0, 16), "/overlay", "ubifs", "ubi0:rootfs_data"), &l).unwrap_err();
    assert_eq!(
        why,
        "UBIFS on ubi0, the UBI device attached to mtd6, the MTD partition of slot B (/dev/mtd6)"
    );
    // A UBI device on another partition (syscfg) is shared.
    assert_eq!(
        judge(&mount((0, 17), "/data", "ubifs", "ubi1:syscfg"), &l),
        Ok(false)
    );
    assert_eq!(
        judge(&mount((31, 9), "/data", "jffs2", "/dev/mtdblock9"), &l),
        Ok(false)
    );
    // ...unless it is a target of a slot (a release's root goes there).
    let targets = [crate::config::targets::TargetPaths {
        name: "rootfs".into(),
        slot_a: "/dev/mtd8".into(),
        slot_b: "/dev/mtd9".into(),
        ubi_volume: None,
    }];
    let l = shared(
        Path::new("/dev/mtd4"),
        Path::new("/dev/mtd6"),
        &targets,
        sys,
    );
    let why = judge(&mount((31, 9), "/data", "jffs2", "/dev/mtdblock9"), &l).unwrap_err();
    assert_eq!(
        why,
        "on mtd9, the MTD partition of slot B's target rootfs (/dev/mtd9)"
    );
}

#[test]
fn a_slots_own_ubi_volume_is_refused_another_volume_of_its_device_is_not() {
    let d = tempfile::tempdir().unwrap();
    let sys = d.path();
    for (vol, name) in [
        ("ubi0_1", "rootfs_a"),
        ("ubi0_2", "rootfs_b"),
        ("ubi0_3", "syscfg"),
    ] {
        write(
            &sys.join("class/ubi").join(vol).join("name"),
            &format!("{name}\n"),
        );
    }
    let l = layout(Path::new("/dev/ubi0_1"), Path::new("/dev/ubi0_2"), sys);
    for (source, slot) in [
        ("ubi0:rootfs_b", "slot B"),
        ("ubi!rootfs_b", "slot B"),
        ("ubi0_1", "slot A"),
        ("/dev/ubi0_2", "slot B"),
        ("ubi2", "slot B"),
    ] {
        let why = judge(&mount((0, 16), "/x", "ubifs", source), &l).unwrap_err();
        assert!(
            why.contains("the UBI volume of") && why.contains(slot),
            "{source}: {why}"
        );
    }
    for source in ["ubi0:syscfg", "ubi0_3", "ubi1_1", "ubi:syscfg"] {
        assert_eq!(
            judge(&mount((0, 16), "/x", "ubifs", source), &l),
            Ok(false),
            "{source}"
        );
    }
}

#[test]
fn ubi_sources_in_the_kernels_forms() {
    let vol = |s: &str| {
        let m = mount((0, 1), "/", "ubifs", s);
        ubi_source(&m).map(|u| {
            let v = match u.volume {
                Volume::Id(n) => n.to_string(),
                Volume::Name(n) => n.to_string(),
            };
            (u.device, v)
        })
    };
    assert_eq!(vol("ubi1:syscfg"), Some((1, "syscfg".into())));
    assert_eq!(vol("ubi:syscfg"), Some((0, "syscfg".into())));
    assert_eq!(vol("ubi1!data"), Some((1, "data".into())));
    assert_eq!(vol("ubi1_3"), Some((1, "3".into())));
    assert_eq!(vol("/dev/ubi1_3"), Some((1, "3".into())));
    assert_eq!(vol("ubi4"), Some((0, "4".into())));
    for bad in ["ubi", "ubi:", "ubi_1", "ubi1_x", "mtd:data", "/dev/sda1"] {
        assert_eq!(vol(bad), None, "{bad}");
    }
    assert_eq!(ubi_source(&mount((0, 1), "/", "ext4", "ubi0_1")), None);
}

/// A board's files: `root/proc/self/mountinfo` with the given lines (mount points relative
/// to `root`, which is resolved), OpenWrt's `/var` a link to `/tmp`.
fn board(lines: &[(&str, &str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::os::unix::fs::symlink(root.join("tmp"), root.join("var")).unwrap();
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, (point, fs, dev))| {
            let at = root.join(point).display().to_string().replace(' ', "\\040");
            format!(
                "{} 1 {dev} / {at} rw,relatime shared:1 - {fs} src{i} rw\n",
                i + 20
            )
        })
        .collect();
    write(&root.join("proc/self/mountinfo"), &text);
    (d, root)
}

#[test]
fn the_directory_or_its_nearest_ancestor_is_resolved_before_its_mount_is_found() {
    let (_d, root) = board(&[
        ("", "ext4", "8:2"),
        ("tmp", "tmpfs", "0:14"),
        ("data", "ext4", "8:4"),
    ]);
    let sys = root.join("sys");
    let l = layout(&root.join("sda2"), &root.join("sda3"), &sys);
    // /var/lib/fwguard does not exist: /var does, a link to /tmp, a tmpfs.
    let dir = root.join("var/lib/fwguard");
    let e = check_at(&dir, &root.join("proc"), &l).unwrap_err();
    let msg = e.to_string();
    let want = format!(
        "state_dir = \"{}\" is on {} (tmpfs on src1), in RAM, emptied at every reboot: the other slot would not find the update state after the reboot, so fwguard writes nothing; fix: {FIX}",
        dir.display(),
        root.join("tmp").display()
    );
    assert_eq!(msg, want);
    let at = check_at(&root.join("data/fwguard"), &root.join("proc"), &l).unwrap();
    assert_eq!(
        at.to_string(),
        format!(
            "state_dir = \"{}/data/fwguard\" is on {}/data (ext4 on src2), which is neither slot: both slots see it",
            root.display(),
            root.display()
        )
    );
    let own = check_at(
        &root.join("data"),
        &root.join("proc"),
        &Layout::NoSharedPartition,
    );
    assert!(own
        .unwrap()
        .to_string()
        .contains("this state is the running slot's own"));
}

#[test]
fn a_location_that_cannot_be_verified_fails() {
    let (_d, root) = board(&[("data", "ext4", "8:4")]);
    let l = Layout::NoSharedPartition;
    // No mount holds the directory: the mountinfo is not this system's.
    let e = check_at(&root.join("etc/fwguard"), &root.join("proc"), &l).unwrap_err();
    assert!(matches!(e, StateLocationError::NoMount { .. }), "{e:?}");
    assert!(e.problem().contains("no mount in "), "{e}");
    // No mountinfo at all.
    let e = check_at(&root.join("data"), &root.join("nowhere"), &l).unwrap_err();
    assert!(
        e.problem().starts_with(&format!(
            "state_dir = \"{}/data\": cannot tell which file system it is on ({}/nowhere/self/mountinfo: ",
            root.display(),
            root.display()
        )),
        "{e}"
    );
    assert!(e
        .fix()
        .starts_with(&format!("mount procfs at {}/nowhere", root.display())));
    assert!(e.fix().ends_with(FIX));
}

/// The shipped example config with `board` as its [board] section and `state_dir` set.
fn uboot_settings(board: &str, state_dir: &Path) -> crate::config::Settings {
    let example = include_str!("../../packaging/config.toml");
    let start = example.find("[board]").unwrap();
    let end = start + example[start..].find("\n[trial]").unwrap();
    let text = format!("{}[board]\n{board}\n{}", &example[..start], &example[end..]).replace(
        "state_dir = \"/var/lib/fwguard\"",
        &format!("state_dir = \"{}\"", state_dir.display()),
    );
    crate::config::Settings::parse(Path::new("/etc/fwguard/config.toml"), &text).unwrap()
}

#[test]
fn a_uboot_board_without_a_shared_partition_keeps_the_state_in_the_running_slots_overlay() {
    let (_d, root) = board(&[
        ("", "squashfs", "31:3"),
        ("tmp", "tmpfs", "0:14"),
        ("overlay", "overlay", "0:20"),
    ]);
    std::fs::create_dir_all(root.join("overlay")).unwrap();
    let dir = root.join("overlay/fwguard");
    let board = format!(
        "profile = \"uboot\"\nid = \"u\"\nenv_device = \"/dev/mtd1\"\nenv_size = 4096\nslot_a = \"/dev/mtd2\"\nslot_b = \"/dev/mtd3\"\nproc = \"{}\"\nsysfs = \"{}\"\n",
        root.join("proc").display(),
        root.join("sys").display()
    );
    // By default both slots must see the state: the slot's own overlay is refused.
    let e = check(&uboot_settings(&board, &dir)).unwrap_err();
    assert!(matches!(e, StateLocationError::Refused { .. }), "{e:?}");
    // With shared_state = false the state is the running slot's own, and says so.
    let s = uboot_settings(&format!("{board}shared_state = false\n"), &dir);
    let at = check(&s).unwrap();
    assert!(at.per_slot, "{at}");
    assert!(at.to_string().contains("fwguard_carry"), "{at}");
    // RAM is refused still.
    let e = check(&uboot_settings(
        &format!("{board}shared_state = false\n"),
        &root.join("var/lib/fwguard"),
    ));
    assert!(e.unwrap_err().to_string().contains("in RAM"));
    // So is the firmware's read-only root.
    let e = check(&uboot_settings(
        &format!("{board}shared_state = false\n"),
        &root.join("etc/fwguard"),
    ));
    assert!(e.unwrap_err().to_string().contains("read-only"));
}
