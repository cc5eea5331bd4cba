//! The job's history as one self-contained HTML file: the summary, the counters, the
//! timeline, the slowest tasks and the failures with their errors, rendered from the
//! report's JSON (the one renderer of `coordinator --report-html`, `mr run
//! --report-html` and `mr report JOB.json`). Nothing in it is fetched: the style and
//! the script are inline, and the report itself is embedded in a
//! `<script type="application/json">`, from which the timeline is drawn. The tables are
//! written here, so they read without the script too.
//!
//! The JSON is read leniently: a field a report lacks (an older mr wrote it) takes its
//! default and one it does not know (a newer mr) is ignored, so any report renders.

use crate::views::report::human_bytes;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The page's frame: style, the tables' place, the embedded report and the script.
const TEMPLATE: &str = include_str!("history.html");

/// The slowest tasks listed.
pub const SLOWEST: usize = 20;

/// Renders the report `json` (as written by `--report`) as the HTML history page.
/// Fails only if `json` is not a JSON object of the report's shape. Memory: the page,
/// and the report read once (its attempts are folded into what the page lists as they
/// are read, not held again).
pub fn render(json: &str) -> Result<String, serde_json::Error> {
    let doc: Doc = serde_json::from_str(json)?;
    let title = format!("mr job {}", doc.state_word());
    Ok(fill(
        TEMPLATE,
        &[
            ("{{TITLE}}", Part::Text(&escape(&title))),
            ("{{BODY}}", Part::Text(&body(&doc))),
            (
                "/*TIMELINE_JS*/",
                Part::Text(crate::views::timeline::SCRIPT),
            ),
            ("{{REPORT_JSON}}", Part::Json(json.trim())),
        ],
    ))
}

/// What goes in place of a marker.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// As it is.
    Text(&'a str),
    /// JSON that must sit inside a `<script>` element: `<` only occurs inside strings
    /// in JSON, and `\u003c` is the same string, so no `</script>` in the data can end
    /// the element.
    Json(&'a str),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Text(s) | Part::Json(s) => s.len(),
        }
    }

    fn push_to(&self, out: &mut String) {
        match self {
            Part::Text(s) => out.push_str(s),
            Part::Json(s) => {
                for (i, piece) in s.split('<').enumerate() {
                    if i > 0 {
                        out.push_str("\\u003c");
                    }
                    out.push_str(piece);
                }
            }
        }
    }
}

/// `template` with each marker replaced, once, left to right: what is put in is never
/// searched for markers itself.
fn fill(template: &str, parts: &[(&str, Part)]) -> String {
    let mut out =
        String::with_capacity(template.len() + parts.iter().map(|p| p.1.len()).sum::<usize>());
    let mut rest = template;
    loop {
        let next = parts
            .iter()
            .filter_map(|(mark, value)| rest.find(mark).map(|at| (at, *mark, *value)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            Some((at, mark, value)) => {
                out.push_str(&rest[..at]);
                value.push_to(&mut out);
                rest = &rest[at + mark.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// Text for HTML.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A report, as far as the page reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Doc {
    state: String,
    failure: Option<String>,
    elapsed_secs: f64,
    workers: u64,
    excluded_workers: Vec<ExcludedDoc>,
    map: PhaseDoc,
    reduce: PhaseDoc,
    events: BTreeMap<String, serde_json::Value>,
    partitioning: PartitioningDoc,
    speculation: SpeculationDoc,
    counters: Option<CountersDoc>,
    errors: ErrorsDoc,
    timeline: TimelineDoc,
}

impl Doc {
    fn state_word(&self) -> &str {
        if self.state.is_empty() {
            "(state unknown)"
        } else {
            &self.state
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PhaseDoc {
    wall_secs: f64,
    tasks: u64,
    tasks_done: u64,
    attempts: u64,
    reassigned_tasks: u64,
    failed_tasks: u64,
    bytes_read: u64,
    bytes_written: u64,
    records_in: u64,
    records_out: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExcludedDoc {
    id: String,
    host: String,
    failures: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PartitioningDoc {
    mode: String,
    sample: Option<PhaseDoc>,
    sampled_keys: u64,
    split_points: u64,
    heavy_keys: Vec<HeavyDoc>,
    largest_over_mean: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HeavyDoc {
    key: String,
    share: f64,
    partition: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpeculationDoc {
    enabled: bool,
    started: u64,
    won: u64,
    wasted: u64,
    slow_workers: Vec<SlowDoc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SlowDoc {
    id: String,
    host: String,
    beaten: u64,
    tasks_done: u64,
}

/// `counters`: the app's and the framework's, each by name.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CountersDoc {
    app: BTreeMap<String, serde_json::Value>,
    framework: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorsDoc {
    tasks: Vec<TaskErrorDoc>,
    omitted: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TaskErrorDoc {
    task: String,
    input: String,
    failures: u64,
    last_error: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TimelineDoc {
    attempts: Attempts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttemptDoc<'a> {
    #[serde(borrow)]
    task: Cow<'a, str>,
    attempt: u64,
    #[serde(borrow)]
    worker: Cow<'a, str>,
    start: f64,
    end: Option<f64>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow)]
    failure: Option<Cow<'a, str>>,
}

/// A finished attempt among the slowest.
#[derive(Debug, Clone, PartialEq)]
struct Slow {
    task: String,
    attempt: u64,
    worker: String,
    start: f64,
    took: f64,
}

/// The report's attempts, folded as they are read into what the page lists (the
/// timeline itself is drawn from the embedded JSON): the slowest finished ones, and
/// how the others ended. A report of 200,000 attempts is not held a second time as
/// 200,000 structs.
#[derive(Debug, Default)]
struct Attempts {
    count: u64,
    done: u64,
    /// At most [`SLOWEST`], the slowest first (the earlier first among equals).
    slowest: Vec<Slow>,
    /// Failed attempts by the failure's kind.
    failed: BTreeMap<String, u64>,
    /// The attempts taken back, by how (revoked, lost, refused, beaten, …).
    taken_back: BTreeMap<String, u64>,
}

impl Attempts {
    fn add(&mut self, a: AttemptDoc) {
        self.count += 1;
        match (a.outcome.as_ref(), a.end) {
            ("done", Some(end)) => {
                self.done += 1;
                let took = end - a.start;
                let before = |s: &Slow| s.took > took || (s.took == took && s.start <= a.start);
                let at = self.slowest.iter().take_while(|s| before(s)).count();
                if at < SLOWEST {
                    self.slowest.insert(
                        at,
                        Slow {
                            task: a.task.into_owned(),
                            attempt: a.attempt,
                            worker: a.worker.into_owned(),
                            start: a.start,
                            took,
                        },
                    );
                    self.slowest.truncate(SLOWEST);
                }
            }
            ("done" | "running", _) => {}
            ("failed", _) => {
                let kind = a.failure.map_or_else(|| "unknown".into(), Cow::into_owned);
                *self.failed.entry(kind).or_default() += 1;
            }
            (other, _) => *self.taken_back.entry(other.to_string()).or_default() += 1,
        }
    }
}

impl<'de> Deserialize<'de> for Attempts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fold;
        impl<'de> serde::de::Visitor<'de> for Fold {
            type Value = Attempts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of attempts")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Attempts, S::Error> {
                let mut all = Attempts::default();
                while let Some(a) = seq.next_element::<AttemptDoc>()? {
                    all.add(a);
                }
                Ok(all)
            }
        }
        d.deserialize_seq(Fold)
    }
}

/// A number for people: `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    // ASCII digits: every chunk of bytes is a str.
    let mut groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    groups.reverse();
    groups.join(",")
}

/// Seconds for people.
fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {:.0} s", (s / 60.0).floor(), s % 60.0)
    }
}

/// A counter's value as written.
fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(u) => grouped(u),
            None => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div></div>",
        escape(label),
        escape(value)
    );
}

/// A table: the header cells (a leading `#` marks a numeric column) and the rows.
fn table(out: &mut String, id: &str, head: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<table id=\"{id}\"><thead><tr>");
    let numeric: Vec<bool> = head.iter().map(|h| h.starts_with('#')).collect();
    for h in head {
        match h.strip_prefix('#') {
            Some(h) => {
                let _ = write!(out, "<th class=\"num\">{}</th>", escape(h));
            }
            None => {
                let _ = write!(out, "<th>{}</th>", escape(h));
            }
        }
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if numeric.get(i).copied().unwrap_or(false) {
                " class=\"num\""
            } else if cell.len() > 60 {
                " class=\"wrap\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// Everything between the header and the script, as HTML.
fn body(d: &Doc) -> String {
    let mut out = String::new();
    let state = d.state_word();
    let _ = write!(
        out,
        "<header><h1>mr job</h1><span id=\"state\" class=\"badge {}\">{}</span>\
         <span class=\"muted\">in {} with {} worker{}</span></header><main>",
        escape(&d.state),
        escape(state),
        secs(d.elapsed_secs),
        d.workers,
        if d.workers == 1 { "" } else { "s" }
    );
    summary(&mut out, d);
    counters(&mut out, d);
    out.push_str(
        "<h2>Timeline</h2><div id=\"timeline\" class=\"tl\"><div class=\"tl-legend\"></div>\
         <canvas></canvas><div class=\"tl-tip\" hidden></div></div>",
    );
    if d.timeline.attempts.count == 0 {
        out.push_str("<p class=\"muted\">This report records no attempts.</p>");
    }
    out.push_str("<noscript><p class=\"muted\">The timeline is drawn by a script.</p></noscript>");
    slowest(&mut out, d);
    failures(&mut out, d);
    events(&mut out, d);
    out.push_str("</main>");
    out
}

fn summary(out: &mut String, d: &Doc) {
    out.push_str("<div class=\"cards\" id=\"summary\">");
    card(out, "State", d.state_word());
    card(out, "Elapsed", &secs(d.elapsed_secs));
    card(out, "Workers", &grouped(d.workers));
    for (name, p) in [("Map tasks", &d.map), ("Reduce tasks", &d.reduce)] {
        card(
            out,
            name,
            &format!("{} / {}", grouped(p.tasks_done), grouped(p.tasks)),
        );
    }
    card(
        out,
        "Attempts",
        &grouped(d.map.attempts + d.reduce.attempts),
    );
    card(out, "Input read", &human_bytes(d.map.bytes_read as f64));
    card(
        out,
        "Output written",
        &human_bytes(d.reduce.bytes_written as f64),
    );
    out.push_str("</div>");
    if let Some(f) = &d.failure {
        let _ = write!(out, "<p class=\"failure\" id=\"failure\">{}</p>", escape(f));
    }
    out.push_str("<h2>Phases</h2>");
    let sample = d.partitioning.sample.as_ref().map(|p| ("sample", p));
    let rows: Vec<Vec<String>> = sample
        .into_iter()
        .chain([("map", &d.map), ("reduce", &d.reduce)])
        .map(|(name, p)| {
            vec![
                name.to_string(),
                secs(p.wall_secs),
                format!("{}/{}", grouped(p.tasks_done), grouped(p.tasks)),
                grouped(p.attempts),
                grouped(p.reassigned_tasks),
                grouped(p.failed_tasks),
                human_bytes(p.bytes_read as f64),
                human_bytes(p.bytes_written as f64),
                grouped(p.records_in),
                grouped(p.records_out),
            ]
        })
        .collect();
    table(
        out,
        "phases",
        &[
            "phase",
            "#wall",
            "#tasks",
            "#attempts",
            "#reassigned",
            "#failed",
            "#read",
            "#written",
            "#records in",
            "#records out",
        ],
        &rows,
    );
    let part = &d.partitioning;
    if part.mode == "range" {
        let mut line = format!(
            "Range partitioning: {} split points from {} sampled keys",
            grouped(part.split_points),
            grouped(part.sampled_keys)
        );
        if let Some(r) = part.largest_over_mean {
            let _ = write!(line, "; the largest partition is {r:.2}x the mean");
        }
        let _ = write!(out, "<p>{}.</p>", escape(&line));
        for h in &part.heavy_keys {
            let text = format!(
                "Heavy key {:?}: {:.1}% of the sample, alone in partition {}",
                h.key,
                h.share * 100.0,
                h.partition
            );
            let _ = write!(out, "<p class=\"muted\">{}</p>", escape(&text));
        }
    }
    let sp = &d.speculation;
    if sp.started > 0 || !sp.slow_workers.is_empty() {
        let text = format!(
            "Backups: {} started, {} won, {} wasted{}.",
            sp.started,
            sp.won,
            sp.wasted,
            if sp.enabled { "" } else { " (now off)" }
        );
        let _ = write!(out, "<p>{}</p>", escape(&text));
    }
}

fn counters(out: &mut String, d: &Doc) {
    let Some(c) = &d.counters else {
        return;
    };
    out.push_str("<h2>Counters</h2><div class=\"pair\" id=\"counters\">");
    for (id, title, map) in [
        ("counters-app", "The app's", &c.app),
        ("counters-framework", "The framework's", &c.framework),
    ] {
        if map.is_empty() {
            continue;
        }
        let _ = write!(out, "<div><h3>{title}</h3>");
        let rows: Vec<Vec<String>> = map.iter().map(|(k, v)| vec![k.clone(), value(v)]).collect();
        table(out, id, &["counter", "#value"], &rows);
        out.push_str("</div>");
    }
    out.push_str("</div>");
}

fn slowest(out: &mut String, d: &Doc) {
    let all = &d.timeline.attempts;
    if all.slowest.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = all
        .slowest
        .iter()
        .map(|a| {
            vec![
                a.task.clone(),
                a.attempt.to_string(),
                a.worker.clone(),
                secs(a.took),
                secs(a.start),
                secs(a.start + a.took),
            ]
        })
        .collect();
    let _ = write!(
        out,
        "<h2>Slowest tasks</h2><p class=\"muted\">The {} longest of {} finished attempts.</p>",
        rows.len(),
        grouped(all.done)
    );
    table(
        out,
        "slowest",
        &["task", "#attempt", "worker", "#took", "#started", "#ended"],
        &rows,
    );
}

fn failures(out: &mut String, d: &Doc) {
    out.push_str("<h2>Failures</h2><div id=\"failures\">");
    let kinds = &d.timeline.attempts.failed;
    let not_done = &d.timeline.attempts.taken_back;
    let quiet = d.failure.is_none()
        && d.errors.tasks.is_empty()
        && d.excluded_workers.is_empty()
        && kinds.is_empty()
        && not_done.is_empty();
    if quiet {
        out.push_str("<p>No attempt failed or was taken back.</p></div>");
        return;
    }
    if let Some(f) = &d.failure {
        let _ = write!(
            out,
            "<p class=\"failure\">The job failed: {}</p>",
            escape(f)
        );
    }
    if !kinds.is_empty() || !not_done.is_empty() {
        let mut rows: Vec<Vec<String>> = kinds
            .iter()
            .map(|(k, n)| vec![format!("failed: {k}"), grouped(*n)])
            .collect();
        rows.extend(
            not_done
                .iter()
                .map(|(k, n)| vec![k.to_string(), grouped(*n)]),
        );
        out.push_str("<h3>Attempts that did not finish, by how they ended</h3>");
        table(out, "ended-by", &["how", "#attempts"], &rows);
    }
    if !d.errors.tasks.is_empty() {
        out.push_str("<h3>Tasks with errors, with the last one</h3>");
        let rows: Vec<Vec<String>> = d
            .errors
            .tasks
            .iter()
            .map(|t| {
                vec![
                    t.task.clone(),
                    grouped(t.failures),
                    t.last_error.clone(),
                    t.input.clone(),
                ]
            })
            .collect();
        table(
            out,
            "task-errors",
            &["task", "#failures", "last error", "input"],
            &rows,
        );
        if d.errors.omitted > 0 {
            let _ = write!(
                out,
                "<p class=\"muted\">… and {} more tasks with errors.</p>",
                grouped(d.errors.omitted)
            );
        }
    }
    if !d.excluded_workers.is_empty() {
        out.push_str("<h3>Excluded workers</h3>");
        let rows: Vec<Vec<String>> = d
            .excluded_workers
            .iter()
            .map(|w| {
                vec![
                    w.id.clone(),
                    w.host.clone(),
                    grouped(w.failures),
                    w.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(
            out,
            "excluded",
            &["worker", "host", "#failures", "last error"],
            &rows,
        );
    }
    if !d.speculation.slow_workers.is_empty() {
        out.push_str("<h3>Slow workers (backups beat their attempts)</h3>");
        let rows: Vec<Vec<String>> = d
            .speculation
            .slow_workers
            .iter()
            .map(|w| {
                vec![
                    w.id.clone(),
                    w.host.clone(),
                    grouped(w.beaten),
                    grouped(w.tasks_done),
                ]
            })
            .collect();
        table(
            out,
            "slow",
            &["worker", "host", "#beaten", "#tasks done"],
            &rows,
        );
    }
    out.push_str("</div>");
}

fn events(out: &mut String, d: &Doc) {
    let rows: Vec<Vec<String>> = d
        .events
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .map(|(k, v)| vec![k.replace('_', " "), value(v)])
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("<h2>Events</h2>");
    table(out, "events", &["event", "#count"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::EventCounts;
    use crate::views::report::Report;
    use crate::views::status::tests::sample_job;

    /// The JSON embedded in `html`, parsed.
    fn embedded(html: &str) -> serde_json::Value {
        let start = html
            .find("<script type=\"application/json\" id=\"report-json\">")
            .expect("the report's script")
            + "<script type=\"application/json\" id=\"report-json\">".len();
        let end = start + html[start..].find("</script>").expect("its end");
        serde_json::from_str(&html[start..end]).expect("JSON")
    }

    #[test]
    fn a_report_renders_with_its_json_inside_and_nothing_fetched() {
        let (job, now) = sample_job();
        let report = Report::of(&job, EventCounts::default(), now);
        let json = report.to_json();
        let html = render(&json).unwrap();
        assert_eq!(embedded(&html), serde_json::to_value(&report).unwrap());
        // Self-contained: no URL to fetch anything from, and no element that fetches.
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "a URL"
        );
        for fetching in ["src=", "href=", "<link", "@import", "url(", "fetch("] {
            assert!(!html.contains(fetching), "{fetching} in the page");
        }
        assert!(html.contains("<title>mr job running</title>"));
        assert!(
            html.contains("function mrTimeline(root)"),
            "the timeline's code inline"
        );
        assert!(html.contains("<div id=\"timeline\" class=\"tl\">"));
        assert!(
            html.contains(
                "<td>map-0</td><td class=\"num\">1</td><td>w1</td><td class=\"num\">2.00 s</td>"
            ),
            "slowest: {html}"
        );
        assert!(
            html.contains("id=\"counters\""),
            "the framework's counters are in every report"
        );
        assert!(
            !html.contains("{{") && !html.contains("/*TIMELINE_JS*/"),
            "every mark filled"
        );
    }

    #[test]
    fn counters_failures_and_errors_show_and_nothing_in_the_data_escapes() {
        let json = serde_json::json!({
            "state": "failed",
            "failure": "map-3 (input x) failed 4 times, last error: </script><b>boom</b>",
            "elapsed_secs": 75.5,
            "workers": 2,
            "counters": {"app": {"words": 1234567, "lines": 8}, "framework": {"map.records_in": 20}},
            "errors": {"tasks": [{"task": "map-3", "input": "x [0..9]", "failures": 4,
                "last_error": "panicked at 'bad <record>'"}], "omitted": 2},
            "excluded_workers": [{"id": "w2", "host": "b", "failures": 3, "last_error": "No space left"}],
            "events": {"assigned": 9, "failed": 4, "refused": 0},
            "timeline": {"attempts": [
                {"task": "map-3", "attempt": 1, "worker": "w1", "start": 0.5, "end": 1.0,
                 "outcome": "failed", "failure": "app"},
                {"task": "map-2", "attempt": 1, "worker": "w2", "start": 0.5, "end": 9.0,
                 "outcome": "revoked"},
                {"task": "map-1", "attempt": 1, "worker": "w1", "start": 0.0, "end": 4.0,
                 "outcome": "done", "a_field_from_a_newer_mr": true}
            ]},
            "a_section_from_a_newer_mr": {"x": 1}
        })
        .to_string();
        let html = render(&json).unwrap();
        assert!(html.contains("<table id=\"counters-app\">"));
        assert!(
            html.contains("<td>words</td><td class=\"num\">1,234,567</td>"),
            "{html}"
        );
        assert!(html.contains("<td>map.records_in</td><td class=\"num\">20</td>"));
        assert!(
            html.contains("&lt;/script&gt;&lt;b&gt;boom&lt;/b&gt;"),
            "escaped in the page"
        );
        assert!(!html.contains("<b>boom</b>") && !html.contains("</script><b>"));
        assert!(html.contains("panicked at &#39;bad &lt;record&gt;&#39;"));
        assert!(html.contains("… and 2 more tasks with errors."));
        assert!(html.contains("<td>failed: app</td><td class=\"num\">1</td>"));
        assert!(html.contains("<td>revoked</td><td class=\"num\">1</td>"));
        assert!(
            html.contains("<td>w2</td><td>b</td><td class=\"num\">3</td><td>No space left</td>")
        );
        assert!(html.contains("<td>assigned</td>") && !html.contains("<td>refused</td>"));
        assert!(
            html.contains("1 min 16 s") || html.contains("1 min 15 s"),
            "elapsed"
        );
        let v = embedded(&html);
        assert_eq!(
            v["failure"].as_str().unwrap(),
            "map-3 (input x) failed 4 times, last error: </script><b>boom</b>"
        );
    }

    #[test]
    fn an_old_or_empty_report_still_renders_and_a_non_report_does_not() {
        let html = render("{}").unwrap();
        assert!(html.contains("(state unknown)"));
        assert!(html.contains("This report records no attempts."));
        assert!(html.contains("No attempt failed or was taken back."));
        let old = r#"{"state": "succeeded", "elapsed_secs": 1.5, "workers": 1,
            "map": {"tasks": 8, "tasks_done": 8}, "reduce": {"tasks": 10, "tasks_done": 10}}"#;
        let html = render(old).unwrap();
        assert!(html.contains("<span id=\"state\" class=\"badge succeeded\">succeeded</span>"));
        assert!(html.contains("8 / 8"));
        assert!(render("[1, 2]").is_err());
        assert!(render("not json").is_err());
    }

    #[test]
    fn markers_in_the_data_are_not_filled() {
        let json = r#"{"state": "{{BODY}} /*TIMELINE_JS*/ {{REPORT_JSON}}"}"#;
        let html = render(json).unwrap();
        assert_eq!(html.matches("function mrTimeline(root)").count(), 1);
        assert!(html.contains("{{BODY}} /*TIMELINE_JS*/ {{REPORT_JSON}}"));
    }

    #[test]
    fn the_slowest_are_the_twenty_longest_finished_attempts_longest_first() {
        // 30 done attempts of 1..=30 s (map-29 the longest), one running for longer,
        // one failed, two taken back.
        let mut attempts: Vec<serde_json::Value> = (0..30)
            .map(|i| {
                serde_json::json!({"task": format!("map-{i}"), "attempt": 1, "worker": "w1",
                    "start": 100.0 - f64::from(i), "end": 101.0, "outcome": "done"})
            })
            .collect();
        attempts.push(
            serde_json::json!({"task": "map-30", "attempt": 1, "worker": "w2",
            "start": 0.0, "end": null, "outcome": "running"}),
        );
        attempts.push(
            serde_json::json!({"task": "map-31", "attempt": 1, "worker": "w2",
            "start": 0.0, "end": 90.0, "outcome": "failed", "failure": "no_space"}),
        );
        attempts.push(
            serde_json::json!({"task": "map-32", "attempt": 1, "worker": "w2",
            "start": 0.0, "end": 90.0, "outcome": "lost"}),
        );
        attempts.push(
            serde_json::json!({"task": "map-32", "attempt": 2, "worker": "w2",
            "start": 0.0, "end": 90.0, "outcome": "a_new_outcome"}),
        );
        let json = serde_json::json!({"state": "succeeded", "timeline": {"attempts": attempts}});
        let doc: Doc = serde_json::from_str(&json.to_string()).unwrap();
        let all = &doc.timeline.attempts;
        assert_eq!((all.count, all.done), (34, 30));
        let order: Vec<&str> = all.slowest.iter().map(|s| s.task.as_str()).collect();
        let want: Vec<String> = (10..30).rev().map(|i| format!("map-{i}")).collect();
        assert_eq!(order, want);
        assert_eq!(all.slowest[0].took, 30.0);
        assert_eq!(all.failed.get("no_space"), Some(&1));
        assert_eq!(all.taken_back.get("lost"), Some(&1));
        assert_eq!(all.taken_back.get("a_new_outcome"), Some(&1));
        let html = render(&json.to_string()).unwrap();
        assert!(html.contains("The 20 longest of 30 finished attempts."));
        assert!(html.contains(
            "<td>map-29</td><td class=\"num\">1</td><td>w1</td><td class=\"num\">30.0 s</td>"
        ));
    }
}
