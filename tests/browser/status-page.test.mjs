// Browser test of the status page and the job's HTML history: runs a real, slow job
// (`mr run` with the jobcount app, whose maps take 2-5 s each) with `--http 127.0.0.1:0`
// and `--report-html`, opens the page in headless Chromium, checks that it lists the
// tasks and the workers, that its counts move, that its timeline draws every attempt
// as a bar on its worker's row, and that its pager and filters page the task list;
// then opens the HTML history with every network request refused and checks that it
// shows the summary and the timeline all the same. Screenshots: target/status-page.png,
// target/timeline.png (the timeline at the end of the job, as docs/timeline.png shows
// it) and target/report.png.
//
// Run it with ./run.sh (builds what it needs). Environment: MR_TARGET (default
// ../../target/release), CHROMIUM (default /usr/bin/chromium).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const target = path.resolve(process.env.MR_TARGET || path.join(root, "target/release"));
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshot = path.join(root, "target/status-page.png");
const timelineShot = path.join(root, "target/timeline.png");
const reportShot = path.join(root, "target/report.png");
const MAPS = 8; // data/pg-*.txt
const REDUCES = 4;
const WORKERS = 2;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the job; resolves with the child and the status page URL it prints. */
function startJob(cwd) {
  const inputs = fs
    .readdirSync(path.join(root, "data"))
    .filter((f) => /^pg-.*\.txt$/.test(f))
    .map((f) => path.join(root, "data", f));
  assert.equal(inputs.length, MAPS, "expected the 8 books in data/");
  const args = ["run", "--app", path.join(target, "libjobcount.so"),
    "--workers", String(WORKERS), "--reduce", String(REDUCES), "--output", "out",
    "--http", "127.0.0.1:0", "--report", "report.json", "--report-html", "report.html",
    ...inputs];
  const child = spawn(path.join(target, "mr"), args, {
    cwd,
    env: { ...process.env, RUST_LOG: "warn,coordinator::views::monitor=info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.log = "";
  child.stdout.on("data", (d) => { child.log += d; });
  child.exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no status page URL in 30 s:\n" + child.log)), 30000);
    child.stderr.on("data", (d) => {
      child.log += d;
      const m = /status page at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(child.log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error(`mr exited (${code}) before serving:\n${child.log}`)));
  });
  return { child, url };
}

/** The numbers the page shows. */
async function readCounts(page) {
  return page.evaluate(() => {
    const t = (id) => document.getElementById(id).textContent.trim();
    return {
      state: t("state"),
      elapsed: t("elapsed"),
      mapsDone: Number(t("maps-done")),
      mapsTotal: Number(t("maps-total")),
      reducesTotal: Number(t("reduces-total")),
      workersAlive: Number(t("workers-alive")),
      taskRows: document.querySelectorAll("#tasks tbody tr").length,
      workerRows: document.querySelectorAll("#workers tbody tr").length,
      runningBadges: document.querySelectorAll("#tasks .badge.running").length,
    };
  });
}

/** What the timeline drew (the canvas says), and how many of its pixels have the
 * colour of bars of each outcome in `colours` ({name: [r, g, b]}). */
async function readTimeline(page, colours) {
  return page.evaluate((colours) => {
    const c = document.querySelector("#timeline canvas");
    const pixels = {};
    if (c.width && c.height) {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (const [name, [r, g, b]] of Object.entries(colours)) {
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
        }
        pixels[name] = n;
      }
    }
    return {
      bars: Number(c.dataset.bars || 0),
      rows: Number(c.dataset.rows || 0),
      outcomes: JSON.parse(c.dataset.outcomes || "{}"),
      pixels,
    };
  }, colours);
}

/** The task table's rows: id and state. */
async function readTasks(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll("#tasks tbody tr"))
    .map((tr) => ({ id: tr.cells[0].textContent, state: tr.cells[1].textContent })));
}

const DONE = [0x1f, 0x9d, 0x55];
const RUNNING = [0x2e, 0x6b, 0xe6];

/** Polls `read` until `ok(value)`, or fails after `ms`. */
async function until(read, ok, ms, what) {
  const end = Date.now() + ms;
  let v;
  for (;;) {
    v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) assert.fail(`${what}; last seen ${JSON.stringify(v)}`);
    await sleep(250);
  }
}

test("the status page shows a running job and follows it; its history opens offline", { timeout: 150000 }, async () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "mr-browser-"));
  const { child, url } = startJob(cwd);
  let browser;
  try {
    const pageUrl = await url;
    // Playwright adds --headless and a fresh temporary --user-data-dir itself.
    browser = await chromium.launch({
      executablePath: browserPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(pageUrl);

    const first = await until(() => readCounts(page), (c) => c.taskRows > 0 && c.workerRows === WORKERS,
      15000, "the page never listed the tasks and both workers");
    assert.equal(first.state, "running");
    assert.equal(first.taskRows, MAPS + REDUCES, "one row per task");
    assert.equal(first.mapsTotal, MAPS);
    assert.equal(first.reducesTotal, REDUCES);
    assert.equal(first.workersAlive, WORKERS);
    assert.ok(first.mapsDone < MAPS, "the job is slow enough to watch");
    const cells = await page.locator("#workers tbody tr").first().locator("td").allTextContents();
    assert.match(cells[0], /^w\d+$/, "worker id");
    assert.equal(cells[2], String(child.pid), "in-process workers share mr's pid");

    // Maps take 2-5 s each on 2 workers: the done count moves within seconds.
    const later = await until(() => readCounts(page), (c) => c.mapsDone > first.mapsDone,
      20000, `maps done stayed at ${first.mapsDone}`);
    assert.notEqual(later.elapsed, first.elapsed, "the clock moves");
    assert.ok(later.runningBadges >= 1, "some task is shown running");

    // The timeline: a row per worker, a bar per attempt, done ones green and running
    // ones blue, drawn on the canvas (its pixels), as the job goes.
    const colours = { done: DONE, running: RUNNING };
    const tl = await until(() => readTimeline(page, colours),
      (t) => t.rows === WORKERS && t.outcomes.done >= 1 && t.outcomes.running >= 1,
      10000, "the timeline never showed a done and a running attempt on both workers");
    assert.equal(tl.bars, tl.outcomes.done + tl.outcomes.running, "only done and running so far");
    assert.ok(tl.bars >= later.mapsDone + 1, `a bar per attempt: ${JSON.stringify(tl)}`);
    assert.ok(tl.pixels.done > 50 && tl.pixels.running > 50, `bars drawn: ${JSON.stringify(tl.pixels)}`);
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });

    // The pager: 10 tasks a page of 12 makes two pages, the second of 2 tasks.
    await page.selectOption("#f-per-page", "10");
    await until(() => readTasks(page), (rows) => rows.length === 10, 5000, "a page of 10");
    assert.match(await page.textContent("#page-info"), /page 1 of 2 · tasks 1–10 of 12/);
    await page.click("#page-next");
    const second = await until(() => readTasks(page), (rows) => rows.length === 2, 5000, "page 2");
    assert.deepEqual(second.map((r) => r.id), ["reduce-2", "reduce-3"]);
    assert.ok(await page.isDisabled("#page-next"), "no page after the last");
    // The filters: reduces only, then done tasks only (whatever page they're on).
    await page.selectOption("#f-per-page", "100");
    await page.selectOption("#f-kind", "reduce");
    const reduces = await until(() => readTasks(page), (rows) => rows.length === REDUCES, 5000,
      "the reduces alone");
    assert.ok(reduces.every((r) => r.id.startsWith("reduce-")), JSON.stringify(reduces));
    await page.selectOption("#f-kind", "");
    await page.selectOption("#f-state", "done");
    const doneRows = await until(() => readTasks(page),
      (rows) => rows.length >= 1 && rows.every((r) => r.state === "done"), 5000, "done tasks only");
    assert.ok(doneRows.length < MAPS + REDUCES, "a filtered list");
    await page.selectOption("#f-state", "");

    // The page shows the end before the coordinator stops serving.
    const end = await until(() => readCounts(page), (c) => c.state !== "running", 60000,
      "the page never showed the end of the job");
    assert.equal(end.state, "succeeded");
    assert.equal(end.mapsDone, MAPS);
    const last = await until(() => readTimeline(page, colours),
      (t) => t.outcomes.running === undefined && t.outcomes.done === MAPS + REDUCES, 5000,
      "the timeline never showed every attempt done");
    assert.equal(last.rows, WORKERS);
    // The framework's counters, live: every book's bytes read by a map.
    const bookBytes = fs.readdirSync(path.join(root, "data"))
      .filter((f) => /^pg-.*\.txt$/.test(f))
      .reduce((n, f) => n + fs.statSync(path.join(root, "data", f)).size, 0);
    const liveCounters = await until(
      () => page.$$eval("#counters-framework tr", (trs) =>
        Object.fromEntries(trs.map((tr) => [...tr.children].map((td) => td.textContent)))),
      (c) => c["map input bytes"] === bookBytes.toLocaleString("en-US"), 5000,
      "the page never showed the map input bytes counter");
    assert.ok(await page.isVisible("#counters-section"), "the counters are shown");
    await page.locator("#timeline").screenshot({ path: timelineShot });
    assert.equal(await child.exited, 0, child.log);
    assert.match(child.log, /wrote 4 files: out\/mr-out-0 … out\/mr-out-3/);
    console.log(`first ${JSON.stringify(first)}\nlater ${JSON.stringify(later)}\ntimeline ${JSON.stringify(last)}`);

    // The job's history: one file, opened with every request refused (offline, and a
    // route that aborts anything asked for); it shows the summary and draws the
    // timeline from the report it carries.
    const report = JSON.parse(fs.readFileSync(path.join(cwd, "report.json"), "utf8"));
    const html = fs.readFileSync(path.join(cwd, "report.html"), "utf8");
    const offline = await browser.newContext({ viewport: { width: 1200, height: 900 }, offline: true });
    const asked = [];
    await offline.route("**/*", (route) => { asked.push(route.request().url()); return route.abort(); });
    const history = await offline.newPage();
    const errors = [];
    history.on("pageerror", (e) => errors.push(String(e)));
    await history.setContent(html, { waitUntil: "load" });
    await history.waitForSelector("body[data-rendered=yes]", { timeout: 10000 });
    assert.deepEqual(asked, [], "the history fetched nothing");
    assert.deepEqual(errors, [], "the history's script ran without errors");
    assert.equal(await history.textContent("#state"), "succeeded");
    const cards = await history.locator("#summary .card").allTextContents();
    assert.ok(cards.some((c) => /Map tasks\s*8 \/ 8/i.test(c)), JSON.stringify(cards));
    const drawn = await readTimeline(history, { done: DONE });
    assert.equal(drawn.bars, report.timeline.attempts.length);
    assert.equal(drawn.bars, MAPS + REDUCES);
    assert.equal(drawn.rows, WORKERS);
    assert.ok(drawn.pixels.done > 50, `bars drawn: ${JSON.stringify(drawn.pixels)}`);
    assert.equal(await history.locator("#slowest tbody tr").count(), MAPS + REDUCES);
    // The counters, as the report has them.
    const histCounters = await history.$$eval("#counters-framework tbody tr", (trs) =>
      Object.fromEntries(trs.map((tr) => [...tr.children].map((td) => td.textContent))));
    assert.equal(histCounters["map input bytes"].replace(/\D/g, ""),
      String(report.counters.framework["map input bytes"]), JSON.stringify(histCounters));
    assert.equal(report.counters.framework["map input bytes"], bookBytes);
    await history.screenshot({ path: reportShot, fullPage: true });
    await offline.close();
    console.log(`history ${JSON.stringify(drawn)}\nscreenshots ${screenshot} ${timelineShot} ${reportShot}`);
  } finally {
    if (browser) await browser.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});
