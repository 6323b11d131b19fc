//! `/metrics`: every counter of the Astaire MIB and what outlives a resync,
//! in the Prometheus text format (0.0.4) or OpenMetrics, encoded by
//! prometheus-client from values read at scrape time.
//!
//! A custom [`Collector`] reads [`Stats`] when scraped: the running
//! resync's atomics (the ones the AgentX subagent serves as the MIB) and
//! [`crate::stats::NodeCounters`]. Nothing here counts anything. Labels
//! are bounded: `source` (the cluster's servers, at most
//! [`crate::stats::MAX_SOURCE_LABELS`] for failures), `result`, `fate`,
//! `list`, `version`; never a key or a vbucket (the MIB's per-vbucket rows
//! are summed per source).
// Reads what a network client sent (the Accept header): no panicking access outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use super::process::{self, ProcessSample};
use crate::stats::{ResyncCounters, ResyncResult, Stats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: what `promtool check metrics` and
    /// older scrapers read.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`: what Prometheus
    /// asks for first.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format an `Accept` header asks for: OpenMetrics when it names
/// `application/openmetrics-text` with a weight above 0 (and not below
/// that of text/plain), else the Prometheus text format.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let weight = |wanted: &str| -> f64 {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next()?;
                if !media.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts
                    .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                    .find_map(|q| q.parse::<f64>().ok())
                    .unwrap_or(1.0);
                Some(q)
            })
            .fold(0.0, f64::max)
    };
    let open = weight("application/openmetrics-text");
    if open > 0.0 && open >= weight("text/plain") {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// Reads the counters at each scrape.
#[derive(Debug)]
struct AstaireCollector {
    stats: Arc<Stats>,
    version: &'static str,
}

/// A registry holding only the Astaire collector.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(stats: Arc<Stats>) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(AstaireCollector { stats, version: env!("CARGO_PKG_VERSION") }));
        Exposition { registry }
    }

    /// The whole exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail; an error would come from an
        // encoder refusing a value, and is shown as the end of the text.
        let written = match format {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &self.registry),
        };
        if written.is_err() {
            out.push_str("# the encoder refused a value\n");
        }
        out
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// One value per label value.
type Samples<'a> = Vec<(&'a str, u64)>;

fn gauge<V: EncodeGaugeValue>(e: &mut DescriptorEncoder, name: &str, help: &str, value: V) -> Fmt {
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter; `name` without `_total` (the encoders add it).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Fmt {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// One family of gauges, one sample per value of `label`.
fn gauge_family(e: &mut DescriptorEncoder, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) -> Fmt {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value_label, v) in samples {
        ConstGauge::new(*v).encode(metric.encode_family(&[(label, *value_label)])?)?;
    }
    Ok(())
}

/// One family of counters (`name` without `_total`), one sample per
/// value of `label`.
fn counter_family(e: &mut DescriptorEncoder, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) -> Fmt {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value_label, v) in samples {
        ConstCounter::new(*v).encode(metric.encode_family(&[(label, *value_label)])?)?;
    }
    Ok(())
}

impl Collector for AstaireCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Fmt {
        let s = &self.stats;
        let current = s.current();
        self.encode_current(&mut e, current.as_deref())?;
        self.encode_lifetime(&mut e)?;
        encode_process(&mut e, &process::sample())
    }
}

impl AstaireCollector {
    /// The running resync: the MIB's scalars and, per source, its tables.
    fn encode_current(&self, e: &mut DescriptorEncoder, p: Option<&ResyncCounters>) -> Fmt {
        let load = |get: fn(&ResyncCounters) -> u64| p.map_or(0, get);
        gauge(
            e,
            "astaire_buckets_needing_resync",
            "(vbucket, source) pairs the running resync pulls; 0 when none runs (MIB astaireBucketsNeedingResync)",
            load(|p| p.pairs),
        )?;
        gauge(
            e,
            "astaire_resync_buckets_done",
            "Pairs of the running resync pulled so far (MIB astaireBucketsResynchronized)",
            load(|p| p.pairs_done.load(Relaxed)),
        )?;
        gauge(
            e,
            "astaire_resync_keys_copied",
            "Keys the running resync has copied (MIB astaireEntriesResynchronized)",
            load(|p| p.total.entries.load(Relaxed)),
        )?;
        gauge(
            e,
            "astaire_resync_bytes_copied",
            "Bytes the running resync has copied (MIB astaireDataResynchronized)",
            load(|p| p.total.bytes.load(Relaxed)),
        )?;
        gauge(
            e,
            "astaire_resync_bandwidth_bytes_per_second",
            "Copy rate over the previous 5-second period (MIB astaireBandwidth)",
            load(|p| p.total.bandwidth()),
        )?;
        gauge(e, "astaire_resync_running", "1 while a resync runs", u64::from(p.is_some()))?;
        let started = p.and_then(|p| p.started_at.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64());
        gauge(
            e,
            "astaire_resync_start_time_seconds",
            "When the running resync started (Unix time); 0 when none runs",
            started,
        )?;
        let ratio = p.map_or(0.0, |p| match p.pairs {
            0 => 1.0,
            n => p.pairs_done.load(Relaxed) as f64 / n as f64,
        });
        gauge(
            e,
            "astaire_resync_progress_ratio",
            "Share of the running resync's pairs done (0 to 1); 0 when none runs",
            ratio,
        )?;
        gauge(
            e,
            "astaire_resync_keys_found",
            "Keys the running resync's listings found in its vbuckets so far",
            load(|p| p.keys_found.load(Relaxed)),
        )?;

        // The MIB's connection and bucket tables, one row per source (its
        // per-vbucket rows summed: no vbucket labels).
        let conns = p.map(|p| p.connections.as_slice()).unwrap_or_default();
        let rows = |get: &dyn Fn(&crate::stats::ConnectionStats) -> u64| -> Vec<(&str, u64)> {
            conns.iter().map(|c| (c.source.as_str(), get(c))).collect()
        };
        let per_source: [(&str, &str, Samples); 5] = [
            (
                "astaire_source_buckets_needing_resync",
                "Vbuckets the running resync pulls from this source (MIB astaireConnectionBucketsNeedingResync)",
                rows(&|c| c.buckets.len() as u64),
            ),
            (
                "astaire_source_buckets_done",
                "Vbuckets pulled from this source so far (MIB astaireConnectionBucketsResynchronized)",
                rows(&|c| c.buckets_done.load(Relaxed)),
            ),
            (
                "astaire_source_keys_copied",
                "Keys copied from this source by the running resync (MIB astaireBucketEntriesResynchronized, summed)",
                rows(&|c| c.buckets.iter().map(|b| b.counter.entries.load(Relaxed)).sum()),
            ),
            (
                "astaire_source_bytes_copied",
                "Bytes copied from this source by the running resync (MIB astaireBucketDataResynchronized, summed)",
                rows(&|c| c.buckets.iter().map(|b| b.counter.bytes.load(Relaxed)).sum()),
            ),
            (
                "astaire_source_bandwidth_bytes_per_second",
                "Copy rate from this source over the previous 5-second period (MIB astaireBucketBandwidth, summed)",
                rows(&|c| c.buckets.iter().map(|b| b.counter.bandwidth()).sum()),
            ),
        ];
        for (name, help, samples) in &per_source {
            gauge_family(e, name, help, "source", samples)?;
        }
        Ok(())
    }

    /// What outlives a resync: totals, outcomes, fates, failures, readiness.
    fn encode_lifetime(&self, e: &mut DescriptorEncoder) -> Fmt {
        let s = &self.stats;
        let n = &s.node;
        let t = s.totals();
        counter(
            e,
            "astaire_buckets_resynchronized",
            "(vbucket, source) pairs pulled since the daemon started",
            t.buckets_resynchronized,
        )?;
        counter(e, "astaire_keys_copied", "Keys copied from sources since the daemon started", t.keys_copied)?;
        counter(
            e,
            "astaire_bytes_copied",
            "Key and value bytes copied from sources since the daemon started",
            t.bytes_copied,
        )?;
        let fates = n.fates();
        counter_family(
            e,
            "astaire_keys",
            "What finished resyncs did with the keys they read: landed (added), replaced (an older local value), \
             kept (the local value was as new or newer), reverted (deleted on the source meanwhile), failed",
            "fate",
            &[
                ("landed", fates.landed),
                ("replaced", fates.replaced),
                ("kept", fates.kept),
                ("reverted", fates.reverted),
                ("failed", fates.failed),
            ],
        )?;
        let results: Vec<(&str, u64)> = ResyncResult::ALL.iter().map(|r| (r.label(), n.resyncs(*r))).collect();
        counter_family(e, "astaire_resyncs", "Resyncs ended, by how they ended", "result", &results)?;
        let failures = n.source_failures();
        let failures: Vec<(&str, u64)> = failures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        counter_family(
            e,
            "astaire_source_failures",
            "Resyncs in which this source failed (its vbuckets then came from the other replica, or failed)",
            "source",
            &failures,
        )?;
        if let Some(ok) = n.last_succeeded() {
            gauge(
                e,
                "astaire_last_resync_succeeded",
                "1 when the last resync succeeded, 0 when it did not",
                u64::from(ok),
            )?;
        }
        let ready = n.readiness() == crate::stats::Readiness::Ready;
        gauge(
            e,
            "astaire_ready",
            "1 when this node is in sync with its settings (/readyz answers 200)",
            u64::from(ready),
        )?;
        gauge_family(
            e,
            "astaire_cluster_servers",
            "Servers listed in the cluster settings last read",
            "list",
            &[("servers", n.servers.load(Relaxed)), ("new_servers", n.new_servers.load(Relaxed))],
        )?;
        counter(
            e,
            "astaire_settings_file_changes",
            "Changes to the settings files the daemon noticed",
            n.file_changes.load(Relaxed),
        )?;
        let mut info = e.encode_descriptor("astaire_build", "The running build", None, MetricType::Info)?;
        info.encode_info(&[("version", self.version)])?;
        Ok(())
    }
}

/// The process metrics every Prometheus client library publishes.
fn encode_process(e: &mut DescriptorEncoder, p: &ProcessSample) -> Fmt {
    if let Some(v) = p.cpu_seconds {
        let c = ConstCounter::new(v);
        c.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            c.metric_type(),
        )?)?;
    }
    let gauges = [
        ("process_resident_memory_bytes", "Resident memory size in bytes", p.resident_bytes.map(|v| v as f64)),
        ("process_virtual_memory_bytes", "Virtual memory size in bytes", p.virtual_bytes.map(|v| v as f64)),
        ("process_start_time_seconds", "Start time of the process since unix epoch in seconds", p.start_time_seconds),
        ("process_open_fds", "Number of open file descriptors", p.open_fds.map(|v| v as f64)),
        ("process_max_fds", "Maximum number of open file descriptors", p.max_fds.map(|v| v as f64)),
    ];
    for (name, help, value) in gauges {
        if let Some(v) = value {
            gauge(e, name, help, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::WorkList;
    use crate::stats::{ItemFates, Readiness};
    use std::collections::BTreeMap;

    fn busy_stats() -> Arc<Stats> {
        let stats = Stats::new();
        let mut vbuckets = BTreeMap::new();
        vbuckets.insert(3, vec!["10.0.0.1:11211".to_owned(), "10.0.0.2:11211".to_owned()]);
        vbuckets.insert(9, vec!["10.0.0.2:11211".to_owned()]);
        let work = WorkList { local_name: "10.0.0.4:11211".into(), vbuckets, ..WorkList::default() };
        let p = stats.begin(&work, |s| s.parse().ok());
        let c = p.connection("10.0.0.2:11211").unwrap();
        c.bucket(9).unwrap().counter.add(2, 1000);
        c.bucket(3).unwrap().counter.add(1, 24);
        p.total.add(3, 1024);
        p.source_done("10.0.0.2:11211");
        stats
            .node
            .resync_ended(ResyncResult::Succeeded, Some(ItemFates { kept: 7, reverted: 2, ..ItemFates::default() }));
        stats.node.source_failed("10.0.0.9:11211");
        stats.node.set_readiness(Readiness::Resyncing);
        stats
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn the_accept_header_picks_the_format() {
        let prometheus_2 =
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus_2)), Format::OpenMetrics);
        assert_eq!(negotiate(None), Format::Prometheus);
        assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Prometheus);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=0")), Format::Prometheus);
        assert_eq!(negotiate(Some("application/openmetrics-text;q=0.2, text/plain;q=0.9")), Format::Prometheus);
        assert_eq!(negotiate(Some("APPLICATION/OpenMetrics-Text")), Format::OpenMetrics);
        assert_eq!(negotiate(Some(";;,,q=,application/openmetrics-text;q=x")), Format::OpenMetrics);
    }

    #[test]
    fn the_prometheus_text_has_help_type_and_total_on_counters() {
        let text = Exposition::new(busy_stats()).render(Format::Prometheus);
        assert!(text.contains("# TYPE astaire_keys_copied_total counter\n"), "{text}");
        assert!(text.contains("# HELP astaire_buckets_needing_resync "), "{text}");
        assert_eq!(line(&text, "astaire_buckets_needing_resync "), "astaire_buckets_needing_resync 3");
        assert_eq!(line(&text, "astaire_resync_buckets_done "), "astaire_resync_buckets_done 2");
        assert_eq!(line(&text, "astaire_keys_copied_total "), "astaire_keys_copied_total 3");
        assert_eq!(line(&text, "astaire_bytes_copied_total "), "astaire_bytes_copied_total 1024");
        assert_eq!(line(&text, "astaire_keys_total{fate=\"kept\"}"), "astaire_keys_total{fate=\"kept\"} 7");
        assert_eq!(line(&text, "astaire_keys_total{fate=\"reverted\"}"), "astaire_keys_total{fate=\"reverted\"} 2");
        assert_eq!(
            line(&text, "astaire_resyncs_total{result=\"succeeded\"}"),
            "astaire_resyncs_total{result=\"succeeded\"} 1"
        );
        assert_eq!(
            line(&text, "astaire_resyncs_total{result=\"failed\"}"),
            "astaire_resyncs_total{result=\"failed\"} 0"
        );
        assert_eq!(
            line(&text, "astaire_source_keys_copied{source=\"10.0.0.2:11211\"}"),
            "astaire_source_keys_copied{source=\"10.0.0.2:11211\"} 3"
        );
        assert_eq!(
            line(&text, "astaire_source_failures_total{"),
            "astaire_source_failures_total{source=\"10.0.0.9:11211\"} 1"
        );
        assert_eq!(line(&text, "astaire_ready "), "astaire_ready 0");
        assert_eq!(line(&text, "astaire_resync_running "), "astaire_resync_running 1");
        assert!(line(&text, "astaire_build_info{").starts_with("astaire_build_info{version=\""), "{text}");
        assert!(line(&text, "process_cpu_seconds_total ").len() > 27);
        assert!(line(&text, "process_resident_memory_bytes ").len() > 31);
        assert!(!text.contains("# EOF"), "no OpenMetrics terminator in the 0.0.4 format");
        assert!(!text.contains("vbucket="), "no vbucket labels");
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = Exposition::new(busy_stats()).render(Format::OpenMetrics);
        assert!(text.contains("# TYPE astaire_keys_copied counter\n"), "{text}");
        assert_eq!(line(&text, "astaire_keys_copied_total "), "astaire_keys_copied_total 3");
        assert!(text.contains("# TYPE astaire_build info\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn idle_the_current_resync_reads_zero_and_has_no_source_rows() {
        let stats = Stats::new();
        let text = Exposition::new(stats).render(Format::Prometheus);
        assert_eq!(line(&text, "astaire_buckets_needing_resync "), "astaire_buckets_needing_resync 0");
        assert_eq!(line(&text, "astaire_resync_start_time_seconds "), "astaire_resync_start_time_seconds 0.0");
        assert!(!text.contains("astaire_source_buckets_done{"), "{text}");
        assert!(!text.contains("astaire_last_resync_succeeded "), "no resync has ended: {text}");
    }
}
