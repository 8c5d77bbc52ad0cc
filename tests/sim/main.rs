//! The in-process suites: each drives the sim router (or a slot, an env, a flash image)
//! through the library, in this one test binary. The first group starts no fwguard binary,
//! so it also runs for router CPUs under qemu-user (cross/test.sh selects them by module;
//! `linksys_factory`, `linksys_root_ubi` and `linksys_settings` cut the power of a fwguard child process, so
//! they are host only; its filters match by substring, so no host-only module's name may
//! end in a listed one's). One module per former `tests/<name>.rs` crate.

#[path = "../common/mod.rs"]
mod common;

// Run under qemu-user by cross/test.sh too (its `modules` list).
mod adopt;
mod attacks;
mod cycle;
mod grub_script;
mod health_policy;
mod linksys;
mod linksys_per_slot;
mod mtd_slot;
mod owner;
mod parts;
mod refusals;
mod sysupgrade;
mod ubi_slot;
mod uboot_env_interop;
mod uboot_env_redundant;
mod uboot_ubi_root;

// Host only.
mod approval;
mod compat_rules;
mod fleet_halt;
/// The fleet service's cases, each on SQLite and on a real PostgreSQL server: `on_both!(case,
/// ...)` in a module whose `Db` has `Sqlite` and `Postgres` and whose cases take one.
#[cfg(feature = "fleet")]
macro_rules! on_both {
    ($($case:ident),*) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Db::Sqlite).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::Db::Postgres).await
            })*
        }
    };
}

#[cfg(feature = "fleet")]
mod fleet_common;
#[cfg(feature = "fleet")]
mod fleet_service;
#[cfg(feature = "fleet")]
mod fleet_waves;
mod health_hostile;
mod index_url;
mod linksys_factory;
mod linksys_root_ubi;
mod linksys_settings;
mod notify;
mod owner_controls;
mod readback;
mod report;
mod resume;
mod settings_carry;
mod sources;
mod time_floor_reset;
mod tls;
mod windows;
