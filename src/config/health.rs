//! The `[health]` section: checks and groups validated into a [`Plan`].

use super::raw::{self, RawCheckKind};
use super::{ConfigError, Validator};
use crate::health::{CheckKind, CheckSpec, Family, Group, Plan, Proto};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

impl Validator<'_> {
    fn family(&self, key: &str, v: Option<&str>) -> Result<Family, ConfigError> {
        match v.unwrap_or("any") {
            "ipv4" => Ok(Family::V4),
            "ipv6" => Ok(Family::V6),
            "any" => Ok(Family::Any),
            other => Err(self.err(
                key,
                format!("{other:?} is not \"ipv4\", \"ipv6\" or \"any\""),
            )),
        }
    }

    fn check(
        &self,
        i: usize,
        mut table: toml::Table,
    ) -> Result<(CheckSpec, Option<String>, bool), ConfigError> {
        let key = |f: &str| format!("health.check[{i}].{f}");
        let mut take_str = |f: &str| -> Result<Option<String>, ConfigError> {
            match table.remove(f) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(v) => Err(self.err(
                    &key(f),
                    format!("expected a string, found {}", v.type_str()),
                )),
            }
        };
        let name = take_str("name")?.ok_or_else(|| self.err(&key("name"), "is missing"))?;
        if name.is_empty() {
            return Err(self.err(&key("name"), "must not be empty"));
        }
        let timeout = take_str("timeout")?;
        let group = take_str("group")?;
        let advisory = match table.remove("advisory") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(v) => {
                return Err(self.err(
                    &key("advisory"),
                    format!("expected true or false, found {}", v.type_str()),
                ))
            }
        };
        let raw = RawCheckKind::read(table).map_err(|e| {
            self.err(
                &format!("health.check[{i}] ({name})"),
                e.to_string().trim_end().to_string(),
            )
        })?;
        let kind = match raw {
            RawCheckKind::Link { interface } => CheckKind::Link { interface },
            RawCheckKind::Address { interface, family } => CheckKind::Address {
                interface,
                family: self.family(&key("family"), family.as_deref())?,
            },
            RawCheckKind::Route { family } => CheckKind::Route {
                family: self.family(&key("family"), family.as_deref())?,
            },
            RawCheckKind::Dns { query, server } => {
                let server = match server {
                    None => None,
                    Some(s) => Some(
                        s.parse::<SocketAddr>()
                            .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                            .map_err(|_| {
                                self.err(
                                    &key("server"),
                                    format!("{s:?} is not an IP address (optionally with :port)"),
                                )
                            })?,
                    ),
                };
                CheckKind::Dns {
                    name: query,
                    server,
                }
            }
            RawCheckKind::Http { url, expect_status } => {
                let u = reqwest::Url::parse(&url)
                    .map_err(|e| self.err(&key("url"), format!("{url:?}: {e}")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(self.err(&key("url"), "must be an http or https URL"));
                }
                CheckKind::Http {
                    url,
                    expect_status: expect_status.unwrap_or(200),
                }
            }
            RawCheckKind::Tcp { address } => {
                if !address.contains(':') {
                    return Err(self.err(&key("address"), format!("{address:?} is not host:port")));
                }
                CheckKind::Tcp { address }
            }
            RawCheckKind::Ping { host } => CheckKind::Ping {
                host: host.parse().map_err(|_| {
                    self.err(&key("host"), format!("{host:?} is not an IP address"))
                })?,
            },
            RawCheckKind::Process { process } => CheckKind::Process { name: process },
            RawCheckKind::Listen { port, protocol } => CheckKind::Listen {
                port,
                proto: match protocol.as_deref().unwrap_or("tcp") {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    other => {
                        return Err(self.err(
                            &key("protocol"),
                            format!("{other:?} is not \"tcp\" or \"udp\""),
                        ))
                    }
                },
            },
            RawCheckKind::Command { argv } => {
                if argv.is_empty() {
                    return Err(self.err(&key("argv"), "must name a program"));
                }
                CheckKind::Command { argv }
            }
            RawCheckKind::Clock {} => CheckKind::Clock,
        };
        let spec = CheckSpec {
            name,
            timeout: self.duration(&key("timeout"), timeout.as_deref(), Duration::from_secs(10))?,
            kind,
        };
        Ok((spec, group, advisory))
    }

    /// Checks and groups into a plan: a check with no group is a group of its own.
    pub(super) fn plan(&self, raw: raw::RawHealth) -> Result<Plan, ConfigError> {
        let mut plan = Plan::default();
        let mut named: Vec<(raw::RawGroup, Vec<usize>)> = Vec::new();
        for (i, g) in raw.groups.into_iter().enumerate() {
            if g.name.is_empty() || named.iter().any(|(n, _)| n.name == g.name) {
                return Err(self.err(
                    &format!("health.group[{i}].name"),
                    format!("{:?} is empty or used twice", g.name),
                ));
            }
            named.push((g, Vec::new()));
        }
        for (i, table) in raw.checks.into_iter().enumerate() {
            let (spec, group, advisory) = self.check(i, table)?;
            if plan.checks.iter().any(|c| c.name == spec.name)
                || named.iter().any(|(g, _)| g.name == spec.name)
            {
                return Err(self.err(
                    &format!("health.check[{i}].name"),
                    format!("{:?} is used twice", spec.name),
                ));
            }
            let idx = plan.checks.len();
            match group {
                Some(gname) => {
                    let (_, members) =
                        named
                            .iter_mut()
                            .find(|(g, _)| g.name == gname)
                            .ok_or_else(|| {
                                self.err(
                                    &format!("health.check[{i}].group"),
                                    format!("no [[health.group]] is named {gname:?}"),
                                )
                            })?;
                    if advisory {
                        return Err(self.err(
                            &format!("health.check[{i}].advisory"),
                            "set advisory on the group, not on a member",
                        ));
                    }
                    members.push(idx);
                }
                None => plan.groups.push(Group {
                    name: spec.name.clone(),
                    members: vec![idx],
                    need: 1,
                    advisory,
                }),
            }
            plan.checks.push(spec);
        }
        for (i, (g, members)) in named.into_iter().enumerate() {
            let need = g.need.unwrap_or(members.len());
            if members.is_empty() || need == 0 || need > members.len() {
                return Err(self.err(
                    &format!("health.group[{i}].need"),
                    format!(
                        "group {:?} has {} check(s); need must be between 1 and that",
                        g.name,
                        members.len()
                    ),
                ));
            }
            plan.groups.push(Group {
                name: g.name,
                members,
                need,
                advisory: g.advisory,
            });
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use std::path::Path;

    /// The example config with its health checks replaced by `checks`.
    fn parse(checks: &str) -> Result<crate::health::Plan, String> {
        let example = include_str!("../../packaging/config.toml");
        let start = example.find("\n[[health.group]]").unwrap() + 1;
        let text = format!("{}{checks}\n", &example[..start]);
        Settings::parse(Path::new("/etc/fwguard/config.toml"), &text)
            .map(|s| s.health)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_checks_kind_and_its_keys_are_named_when_refused() {
        let ok = parse("[[health.check]]\nname = \"up\"\nkind = \"link\"\ninterface = \"wan\"\n[[health.check]]\nname = \"t\"\nkind = \"clock\"");
        assert_eq!(ok.unwrap().checks.len(), 2);
        for (check, words) in [
            (
                "kind = \"nope\"",
                &["health.check[0] (c)", "unknown variant `nope`", "`link`"][..],
            ),
            (
                "interface = \"wan\"",
                &["health.check[0] (c)", "missing field `kind`"],
            ),
            (
                "kind = 3",
                &[
                    "health.check[0] (c)",
                    "invalid type: integer `3`, expected a string",
                ],
            ),
            (
                "kind = \"link\"",
                &["health.check[0] (c)", "missing field `interface`"],
            ),
            (
                "kind = \"link\"\ninterface = \"wan\"\nhost = \"h\"",
                &["unknown field `host`", "expected `interface`"],
            ),
            (
                "kind = \"listen\"\nport = \"http\"",
                &["health.check[0] (c)", "invalid type: string \"http\""],
            ),
            ("kind = \"clock\"\nhost = \"h\"", &["unknown field `host`"]),
        ] {
            let e = parse(&format!("[[health.check]]\nname = \"c\"\n{check}")).unwrap_err();
            assert!(words.iter().all(|w| e.contains(w)), "{check:?}: {e}");
        }
    }
}
