// Browser test of the status page: runs a real, slow job (`mr run` with the jobcount app,
// whose maps take 2-5 s each) with `--http 127.0.0.1:0`, opens the page in headless
// Chromium, checks that it lists the tasks and the workers and that its counts move,
// and saves a screenshot to target/status-page.png.
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
    "--http", "127.0.0.1:0", ...inputs];
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

test("the status page shows a running job and follows it", { timeout: 120000 }, async () => {
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
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`first ${JSON.stringify(first)}\nlater ${JSON.stringify(later)}\nscreenshot ${screenshot}`);

    // The page shows the end before the coordinator stops serving.
    const end = await until(() => readCounts(page), (c) => c.state !== "running", 60000,
      "the page never showed the end of the job");
    assert.equal(end.state, "succeeded");
    assert.equal(end.mapsDone, MAPS);
    assert.equal(await child.exited, 0, child.log);
    assert.match(child.log, /wrote 4 files: out\/mr-out-0 … out\/mr-out-3/);
  } finally {
    if (browser) await browser.close();
    if (child.exitCode === null) child.kill("SIGKILL");
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});
