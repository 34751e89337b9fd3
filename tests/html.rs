//! `scan --format html`, the postmortem page: a snapshot of the shipped scenarios' report, its
//! structure (one self-contained file under a strict Content-Security-Policy, every finding
//! named), hostile input escaped everywhere, and the page as a real browser shows it: headless
//! Chromium renders it, runs its one script under the policy and never a script of the input's.
//! The Markdown report's Mermaid charts are rendered with the real Mermaid library too.
//!
//! The browser tests need `chromium` on PATH, and the Mermaid test `tests/browser/node_modules`
//! (`npm ci --prefix tests/browser`); without them they print a SKIP line to stderr and pass,
//! unless `ABORTAUDIT_REQUIRE_BROWSER=1` (as in CI), which makes them fail instead.
//! `ABORTAUDIT_SCREENSHOTS=DIR` keeps the screenshots of the shipped report in DIR.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{bin, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Running the report.

/// The shipped scenarios as `scan` inputs: the traces and the vendor event log, both recognised
/// by content. Relative to the checkout (where `scan` runs), so that the paths the report
/// shows are the same in every clone.
fn scenario_inputs() -> [PathBuf; 2] {
    [
        PathBuf::from("fixtures/scenarios/traces"),
        PathBuf::from("fixtures/scenarios/events"),
    ]
}

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `scan INPUTS --format FORMAT`'s stdout; the gate fails on the scenarios (status 1).
fn scan(inputs: &[PathBuf], format: &str) -> String {
    let output = bin()
        .current_dir(checkout())
        .arg("scan")
        .args(inputs)
        .args(["--format", format])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the report is UTF-8")
}

/// The findings' ids and conversation ids, from the JSON report of the same inputs.
fn finding_ids(inputs: &[PathBuf]) -> Vec<(String, String)> {
    let report = json(scan(inputs, "json").as_bytes());
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["conversation_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Text as the report escapes it for HTML (the fixtures' and the hostile strings hold no
/// control characters, which it would also neutralise).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What lies between `open` (the end of an opening tag) and `close`, for each occurrence.
fn between<'a>(html: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let end = after.find(close).expect("the element is closed");
        found.push(&after[..end]);
        rest = &after[end..];
    }
    found
}

fn csp_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

// ---------------------------------------------------------------------------------------------
// Hostile input: the scenarios with names that are markup.

/// An element whose handler would mark the page if it ever ran.
const IMG: &str = "<img src=x onerror=document.body.setAttribute('data-pwned','img')>";
/// A script that would rename the page.
const SCRIPT: &str = "<script>document.title='pwned'</script>";
/// A name that tries to close the page's style and script and open its own.
const BREAKOUT: &str =
    "</style></script><script>document.body.setAttribute('data-pwned','breakout')</script>";
/// A service name that tries to leave an attribute.
const SERVICE: &str = "payments-api\" onmouseover=\"document.body.setAttribute('data-pwned','attr')\"><svg onload=document.body.setAttribute('data-pwned','svg')>";
/// A conversation id that tries both, with quotes of either kind.
const CONVERSATION: &str =
    "conv-'\"><img src=x onerror=document.body.setAttribute('data-pwned','conv')>&amp;";

/// `text` as the inside of a JSON string.
fn json_inner(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// `"name":"…"` of a span, as the OTLP/JSON lines write it.
fn span_name(name: &str) -> String {
    format!("\"name\":\"{}\"", json_inner(name))
}

/// A copy of the scenarios (traces and events) whose span names, a service name and a
/// conversation id are hostile; every line stays valid JSON.
fn hostile_inputs() -> (tempfile::TempDir, [PathBuf; 2]) {
    rewritten_inputs(&[
        (span_name("POST /v1/payments"), span_name(IMG)),
        (
            span_name("GET /v1/customers/{customer_id}"),
            span_name(SCRIPT),
        ),
        (span_name("SELECT"), span_name(BREAKOUT)),
        (
            "\"stringValue\":\"payments-api\"".to_owned(),
            format!("\"stringValue\":\"{}\"", json_inner(SERVICE)),
        ),
        (
            "conv-client-gone-cb56d5bd".to_owned(),
            json_inner(CONVERSATION),
        ),
    ])
}

/// A copy of the scenarios (traces and events) with each `(old, new)` text replaced; every
/// line must stay valid JSON.
fn rewritten_inputs(replacements: &[(String, String)]) -> (tempfile::TempDir, [PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let mut applied = vec![0; replacements.len()];
    for sub in ["traces", "events"] {
        let to = dir.path().join(sub);
        std::fs::create_dir(&to).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(checkout().join("fixtures/scenarios").join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for from in names {
            let mut text = std::fs::read_to_string(&from).unwrap();
            for ((old, new), n) in replacements.iter().zip(&mut applied) {
                *n += text.matches(old.as_str()).count();
                text = text.replace(old.as_str(), new);
            }
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
            }
            std::fs::write(to.join(from.file_name().unwrap()), text).unwrap();
        }
        inputs.push(to);
    }
    for ((old, _), n) in replacements.iter().zip(applied) {
        assert!(n > 0, "{old} is in none of the scenarios");
    }
    let inputs = [inputs[0].clone(), inputs[1].clone()];
    (dir, inputs)
}

// ---------------------------------------------------------------------------------------------
// Tests without a browser.

#[test]
fn the_html_report_is_stable() {
    let html = scan(&scenario_inputs(), "html");
    assert_eq!(
        html,
        scan(&scenario_inputs(), "html"),
        "two runs write the same page"
    );
    insta::assert_snapshot!(html);
}

#[test]
fn the_html_report_is_one_self_contained_file_under_a_strict_policy() {
    let html = scan(&scenario_inputs(), "html");
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));

    // One inline style and one inline script, each allowed by its hash and nothing else.
    let styles = between(&html, "<style>", "</style>");
    let scripts = between(&html, "<script>", "</script>");
    assert_eq!((styles.len(), scripts.len()), (1, 1));
    assert_eq!(html.matches("<style").count(), 1);
    assert_eq!(html.matches("<script").count(), 1);
    let policy = between(
        &html,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"",
        "\"",
    );
    assert_eq!(policy.len(), 1, "one policy");
    let policy = policy[0];
    assert_eq!(
        policy,
        format!(
            "default-src 'none'; script-src {}; style-src {}; base-uri 'none'; form-action 'none'",
            csp_source(scripts[0]),
            csp_source(styles[0])
        )
    );
    let head = &html[..html.find("</head>").unwrap()];
    assert!(
        head.find("Content-Security-Policy").unwrap() < head.find("<style>").unwrap(),
        "the policy comes before what it governs"
    );

    // Nothing is loaded: no source attribute, no link element, no stylesheet import or url,
    // links only to the page's own anchors, and each of them exists.
    for never in [
        " src=", "<link", "<img", "<iframe", "<object", "<embed", "url(", "@import", " srcset=",
        " action=", "<base",
    ] {
        assert!(!html.contains(never), "{never:?} in the page");
    }
    for target in between(&html, " href=\"", "\"") {
        let anchor = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("a link out of the page: {target}"));
        assert!(
            html.contains(&format!(" id=\"{anchor}\"")),
            "a link to a missing anchor: {target}"
        );
    }
    // An address can be text, never inside a tag.
    let mut in_tag = false;
    for (i, c) in html.char_indices() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            ':' if in_tag && html[i..].starts_with("://") => {
                panic!(
                    "an address inside a tag: {}",
                    &html[i.saturating_sub(60)..i + 20]
                )
            }
            _ => {}
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://"));

    // Every finding, its conversation and its row, and the conversation sections they link to.
    let ids = finding_ids(&scenario_inputs());
    assert_eq!(ids.len(), 8);
    for (n, (id, conversation)) in ids.iter().enumerate() {
        assert!(html.contains(&format!("finding <code>{id}</code>")), "{id}");
        assert!(html.contains(&format!("<code>{conversation}</code>")));
        assert!(html.contains(&format!("<tr id=\"row-{}\"", n + 1)));
        assert!(html.contains(&format!("<article id=\"f{}\"", n + 1)));
    }
    assert_eq!(
        html.matches("<section id=\"c").count(),
        9,
        "8 and the categories"
    );
    assert_eq!(html.matches("class=\"conversation\"").count(), 8);
    assert_eq!(
        html.matches("<svg class=\"tl\"").count(),
        8,
        "a timeline each"
    );
    // The filters are hidden until the script shows them: the page reads the same without it.
    assert!(html.contains("<nav id=\"filters\" class=\"filters\" hidden"));
    // Its verdict, counts and each category's meaning.
    assert!(html.contains("<strong>Gate: FAILED</strong>"));
    assert!(html.contains("<dt>late writes</dt><dd>6 <small>(1 ambiguous)</small></dd>"));
    for category in abortaudit::model::Category::ALL {
        assert!(html.contains(&escaped(category.help())), "{category}");
    }
    // Rows with the timeline's marks: the abort, vendor events, spans that never ended.
    assert!(html.contains("<g class=\"abort\">"));
    assert!(html.contains("class=\"vendor commit\""));
}

#[test]
fn hostile_names_are_text_in_every_place_of_the_html_report() {
    let (_dir, inputs) = hostile_inputs();
    let html = scan(&inputs, "html");
    // The hostile conversation still has its finding, so its id is in the table, the section
    // title, the timeline's label; the hostile server span shows the write.
    let ids = finding_ids(&inputs);
    assert!(ids.iter().any(|(_, c)| c == CONVERSATION), "{ids:?}");
    for (id, _) in &ids {
        assert!(html.contains(id.as_str()));
    }
    for hostile in [IMG, SCRIPT, BREAKOUT, SERVICE, CONVERSATION] {
        assert!(!html.contains(hostile), "raw in the page: {hostile}");
        assert!(
            html.contains(&escaped(hostile)),
            "not in the page as text: {hostile}"
        );
    }
    for markup in ["<img", "<svg onload", "<script>document"] {
        assert!(!html.contains(markup), "{markup}");
    }
    assert_eq!(html.matches("<script").count(), 1);
    assert_eq!(html.matches("</script>").count(), 1);
    assert_eq!(html.matches("</style>").count(), 1);
    // In an attribute too: the timeline's label names the conversation.
    assert!(html.contains(&format!(
        "aria-label=\"Timeline of conversation {}\"",
        escaped(CONVERSATION)
    )));
}

#[test]
fn a_suppressed_finding_shows_its_reason_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("abortaudit.toml");
    std::fs::write(
        &rules,
        r#"
[[allow]]
tool = "create_payment*"
category = "client_gone"
reason = "INC-1234: <b>refunded</b> by hand & reconciled"
until = "2999-12-31"
"#,
    )
    .unwrap();
    let output = bin()
        .current_dir(checkout())
        .arg("scan")
        .args(scenario_inputs())
        .args(["--format", "html", "--config"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "late_queued still fails");
    let html = String::from_utf8(output.stdout).unwrap();
    let cell = "<td><span class=\"standing\">suppressed</span> until 2999-12-31: INC-1234: &lt;b&gt;refunded&lt;/b&gt; by hand &amp; reconciled</td>";
    assert_eq!(
        html.matches(cell).count(),
        3,
        "the three client_gone findings"
    );
    assert!(html.contains(
        "suppressed until 2999-12-31: INC-1234: &lt;b&gt;refunded&lt;/b&gt; by hand &amp; reconciled</span>"
    ));
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium.

/// `chromium` on PATH, or `None` after a SKIP line; a failure instead under
/// `ABORTAUDIT_REQUIRE_BROWSER=1`.
fn chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        require_or_skip(
            test,
            "chromium is not on PATH (apt-get install -y chromium)",
        );
    }
    found
}

fn require_or_skip(test: &str, why: &str) {
    if std::env::var_os("ABORTAUDIT_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and ABORTAUDIT_REQUIRE_BROWSER=1");
    }
    eprintln!("SKIP {test}: {why}; the browser check did not run");
}

/// A `file://` URL of an absolute path.
fn file_url(path: &Path) -> String {
    let path = path.canonicalize().unwrap();
    let mut url = String::from("file://");
    for b in path.to_str().expect("a UTF-8 path").bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Runs headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`), offline and
/// with a profile of its own, killed after 60 s; returns its stdout.
fn run_chromium(chromium: &Path, args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    // Read stdout on a thread, so that a large DOM never blocks the browser on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s on {url} {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed ({status}) on {url}");
    reader.join().unwrap().expect("chromium's output is UTF-8")
}

fn dump_dom(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.push("--dump-dom".to_owned());
    let dom = run_chromium(chromium, &args, url);
    assert!(dom.contains("</html>"), "no DOM dumped for {url}:\n{dom}");
    dom
}

/// Takes a screenshot, checks it is a PNG of the window's size with some weight, and keeps it
/// as `name` in `ABORTAUDIT_SCREENSHOTS` when that is set.
fn screenshot(chromium: &Path, url: &str, size: (u32, u32), name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join(name);
    run_chromium(
        chromium,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={},{}", size.0, size.1),
        ],
        url,
    );
    let bytes = std::fs::read(&png).expect("the screenshot is written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), size);
    // A blank page of that size compresses to a few kB; the report's is far heavier.
    assert!(bytes.len() > 100_000, "{} bytes only", bytes.len());
    if let Some(keep) = std::env::var_os("ABORTAUDIT_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&keep).join(name)).unwrap();
    }
}

#[test]
fn chromium_renders_the_html_report_and_runs_only_its_own_script() {
    let Some(chromium) = chromium("chromium_renders_the_html_report_and_runs_only_its_own_script")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // The shipped scenarios: every finding rendered, the script ran under the policy.
    let page = dir.path().join("report.html");
    std::fs::write(&page, scan(&scenario_inputs(), "html")).unwrap();
    let url = file_url(&page);
    let dom = dump_dom(&chromium, &url, &[]);
    assert!(dom.contains("data-script=\"ran\""), "the page's script ran");
    assert!(dom.contains("8 of 8 findings shown"));
    assert!(!dom.contains("<nav id=\"filters\" class=\"filters\" hidden"));
    for (id, conversation) in finding_ids(&scenario_inputs()) {
        assert!(dom.contains(&id), "{id}");
        assert!(dom.contains(&conversation), "{conversation}");
    }
    screenshot(&chromium, &url, (1400, 2400), "abortaudit-html-report.png");
    screenshot(
        &chromium,
        &url,
        (760, 1600),
        "abortaudit-html-report-narrow.png",
    );

    // A link that shows one category: its findings' rows and sections only.
    let dom = dump_dom(&chromium, &format!("{url}#show=late_queued"), &[]);
    assert!(dom.contains("2 of 8 findings shown"), "the filter applied");
    let root = &dom[dom.find("<html").unwrap()..];
    let root = &root[..root.find('>').unwrap()];
    for hidden in [
        "client_gone",
        "pre_commit_abort",
        "dispatched_after_abort",
        "unverified",
    ] {
        assert!(root.contains(&format!("hide-{hidden}")), "{root}");
    }
    assert!(!root.contains("hide-late_queued"), "{root}");
    assert_eq!(
        dom.matches("class=\"conversation\" data-categories=\"late_queued\">")
            .count(),
        2
    );
    assert_eq!(
        dom.matches("class=\"conversation\" data-categories")
            .count(),
        8
    );
    assert_eq!(
        dom.matches("\" hidden=\"\">").count(),
        6,
        "other conversations hidden"
    );

    // Without its script the page is whole: every finding, the filters hidden. The policy is
    // what stops it here: a copy whose script differs by one character from the hash it names.
    let altered = std::fs::read_to_string(&page)
        .unwrap()
        .replacen("<script>", "<script> ", 1);
    let page = dir.path().join("altered.html");
    std::fs::write(&page, altered).unwrap();
    let dom = dump_dom(&chromium, &file_url(&page), &[]);
    assert!(
        !dom.contains("data-script=\"ran\""),
        "a script the policy does not name ran"
    );
    assert!(dom.contains("<nav id=\"filters\" class=\"filters\" hidden"));
    for (id, _) in finding_ids(&scenario_inputs()) {
        assert!(dom.contains(&id), "{id}");
    }

    // Hostile names: shown as text, never run, never elements.
    let (_inputs_dir, inputs) = hostile_inputs();
    let page = dir.path().join("hostile.html");
    std::fs::write(&page, scan(&inputs, "html")).unwrap();
    let dom = dump_dom(&chromium, &file_url(&page), &[]);
    assert!(
        dom.contains("data-script=\"ran\""),
        "the page's own script still ran"
    );
    assert!(!dom.contains("data-pwned=\""), "a script of the input ran");
    assert!(
        !dom.contains("<title>pwned</title>"),
        "a script of the input ran"
    );
    assert!(dom.contains("<title>abortaudit: Gate: FAILED · 8 findings</title>"));
    assert_eq!(dom.matches("<script").count(), 1, "one script element");
    for element in ["<img", "<svg onload"] {
        assert!(!dom.contains(element), "an element of the input: {element}");
    }
    // The browser serialises text with `<`, `>` and `&` escaped, quotes as they are.
    for hostile in [IMG, SCRIPT, BREAKOUT, CONVERSATION] {
        let text = hostile
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(dom.contains(&text), "not shown as text: {hostile}");
    }
    for (id, _) in finding_ids(&inputs) {
        assert!(dom.contains(&id), "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// The Markdown report's Mermaid charts, rendered by Mermaid in Chromium.

/// The ```mermaid blocks of a Markdown page.
fn mermaid_blocks(markdown: &str) -> Vec<String> {
    between(markdown, "```mermaid\n", "```")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The tasks a gantt chart declares: every line with a ` :` but its header statements.
fn tasks(chart: &str) -> usize {
    chart
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.contains(" :")
                && !["title ", "section ", "dateFormat ", "axisFormat "]
                    .iter()
                    .any(|k| l.starts_with(k))
        })
        .count()
}

/// Renders each chart in Chromium with `tests/browser`'s pinned Mermaid and
/// `mermaid-check.js`; returns per chart its status, task count and error text.
fn render_mermaid(chromium: &Path, charts: &[String]) -> Vec<(String, usize, String)> {
    let browser = checkout().join("tests/browser");
    let dir = tempfile::tempdir().unwrap();
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mermaid check</title></head><body>\n<div id=\"results\"></div>\n",
    );
    for chart in charts {
        page.push_str(&format!(
            "<pre class=\"chart\">{}</pre>\n",
            chart
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ));
    }
    page.push_str(&format!(
        "<script src=\"{}\"></script>\n<script src=\"{}\"></script>\n</body></html>\n",
        file_url(&browser.join("node_modules/mermaid/dist/mermaid.min.js")),
        file_url(&browser.join("mermaid-check.js"))
    ));
    let path = dir.path().join("mermaid.html");
    std::fs::write(&path, page).unwrap();
    // Mermaid renders asynchronously: virtual time lets the page finish before the dump.
    let dom = dump_dom(chromium, &file_url(&path), &["--virtual-time-budget=20000"]);
    assert!(
        dom.contains(&format!("data-done=\"{}\"", charts.len())),
        "the check did not finish:\n{}",
        &dom[..dom.len().min(4000)]
    );
    assert!(!dom.contains("data-init-error"), "Mermaid did not start");
    let mut results = Vec::new();
    for chunk in dom.split("<div class=\"result\" ").skip(1) {
        let attr = |name: &str| {
            between(chunk, &format!("{name}=\""), "\"")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        let error = if attr("data-status") == "error" {
            chunk[chunk.find('>').unwrap() + 1..]
                .split("</div>")
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            String::new()
        };
        results.push((
            attr("data-status"),
            attr("data-tasks").parse().unwrap_or(0),
            error,
        ));
    }
    assert!(!dom.contains("data-pwned=\""), "a label ran as script");
    results
}

/// Chromium and the pinned Mermaid, or `None` after a SKIP line (a failure under
/// `ABORTAUDIT_REQUIRE_BROWSER=1`).
fn mermaid_browser(test: &str) -> Option<PathBuf> {
    let chromium = chromium(test)?;
    let mermaid = checkout().join("tests/browser/node_modules/mermaid/dist/mermaid.min.js");
    if !mermaid.is_file() {
        require_or_skip(
            test,
            "tests/browser/node_modules is missing (npm ci --prefix tests/browser)",
        );
        return None;
    }
    Some(chromium)
}

/// Renders the charts, and fails on any that Mermaid rejects or draws with another number of
/// tasks than it declares.
fn assert_mermaid_renders(chromium: &Path, charts: &[String]) {
    let results = render_mermaid(chromium, charts);
    assert_eq!(results.len(), charts.len());
    let mut failures = Vec::new();
    for (chart, (status, drawn, error)) in charts.iter().zip(&results) {
        let declared = tasks(chart);
        if status != "ok" || *drawn != declared {
            failures.push(format!(
                "{status}: {drawn} of {declared} tasks drawn {error}\n{chart}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn mermaid_renders_every_chart_of_the_markdown_report() {
    let Some(chromium) = mermaid_browser("mermaid_renders_every_chart_of_the_markdown_report")
    else {
        return;
    };
    let (_dir, hostile) = hostile_inputs();
    let mut charts = mermaid_blocks(&scan(&scenario_inputs(), "markdown"));
    assert_eq!(charts.len(), 8, "a chart per conversation with findings");
    let hostile_charts = mermaid_blocks(&scan(&hostile, "markdown"));
    assert_eq!(hostile_charts.len(), 8);
    charts.extend(hostile_charts);
    assert_mermaid_renders(&chromium, &charts);
}

/// Span names that begin with words of Mermaid's gantt grammar: its lexer reads a keyword up
/// to a word boundary (`gantt-…`, `topAxis.…`, `inclusiveEndDates-…`), `accDescription …` and
/// a leading date (`2026-11-25 …`) as statements, so the chart would fail to parse or a label
/// set an option: `escape::mermaid` guards the leading run of letters and digits, and dates.
#[test]
fn mermaid_keywords_in_span_names_neither_break_nor_configure_the_charts() {
    let Some(chromium) =
        mermaid_browser("mermaid_keywords_in_span_names_neither_break_nor_configure_the_charts")
    else {
        return;
    };
    let (_dir, inputs) = rewritten_inputs(&[
        (
            span_name("chat fake-llm-1"),
            span_name("accDescription of the model call"),
        ),
        (span_name("GET"), span_name("gantt-client GET")),
        (span_name("SELECT"), span_name("2026-11-25 SELECT")),
        (span_name("POST"), span_name("topAxis.post")),
        (span_name("BEGIN"), span_name("inclusiveEndDates-begin")),
        (span_name("INSERT"), span_name("weekday monday-insert")),
    ]);
    let markdown = scan(&inputs, "markdown");
    let charts = mermaid_blocks(&markdown);
    assert_eq!(charts.len(), 8);
    for label in ["inclusiveEndDates", "weekday monday"] {
        for chart in &charts {
            assert!(
                !chart.lines().any(|l| l.trim_start().starts_with(label)),
                "a label sets a chart option: {label}"
            );
        }
    }
    assert_mermaid_renders(&chromium, &charts);
}
