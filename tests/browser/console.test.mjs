// End-to-end test of the Atoll console in a real browser.
//
// Starts the real binary (`atoll demo` on port 0 with a fresh data folder), drives
// Debian's chromium through playwright-core, and checks what a first-time user
// does: log in (after a wrong password), create an app and read its secret, open
// the app, create an API token, read the audit log. The app page is saved as
// test-results/app.png for a person to look at.
//
// Run: ATOLL_BIN=/path/to/target/debug/atoll node --test
// Optional: CHROMIUM=/path/to/chromium (default /usr/bin/chromium);
// SCREENSHOTS=1 also saves every visited page to test-results/, for reviewing the look.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, "test-results");
const EMAIL = "admin@demo.atoll";
// The first run seeds a week of demo analytics before it listens.
const STARTUP_TIMEOUT_MS = 120_000;

let server; // { child, url, password, dataDir, output }
let browser;

/// Starts `atoll demo` and resolves once it printed its password and address.
function startServer(bin) {
  const dataDir = mkdtempSync(path.join(tmpdir(), "atoll-browser-"));
  const child = spawn(
    bin,
    ["demo", "--listen", "127.0.0.1:0", "--data-dir", dataDir],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ATOLL_LOG_LEVEL: "warn" } },
  );
  const output = { stdout: "", stderr: "" };
  child.stderr.on("data", (chunk) => {
    output.stderr = (output.stderr + chunk).slice(-20_000);
  });
  return new Promise((resolve, reject) => {
    let password;
    const fail = (message) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${message}\n--- stdout ---\n${output.stdout}\n--- stderr ---\n${output.stderr}`));
    };
    const timer = setTimeout(
      () => fail(`atoll did not print "listening on" within ${STARTUP_TIMEOUT_MS} ms`),
      STARTUP_TIMEOUT_MS,
    );
    child.on("error", (error) => fail(`cannot start ${bin}: ${error.message}`));
    child.on("exit", (code, signal) => fail(`atoll exited early (code ${code}, signal ${signal})`));
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      output.stdout += chunk;
      password ??= output.stdout.match(/^\s*Password\s+(\S+)\s*$/m)?.[1];
      const url = output.stdout.match(/^listening on (http:\/\/\S+)\s*$/m)?.[1];
      if (url) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        if (!password) {
          fail("atoll did not print the demo password");
          return;
        }
        resolve({ child, url, password, dataDir, output });
      }
    });
  });
}

function stopServer() {
  if (!server) return Promise.resolve();
  const { child, dataDir } = server;
  server = undefined;
  return new Promise((resolve) => {
    const done = () => {
      rmSync(dataDir, { recursive: true, force: true });
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(killer);
      done();
    });
    child.kill("SIGTERM");
  });
}

/// The signature headers of a device request (DESIGN.md §3, atoll-protocol's
/// signing.rs).
function signedHeaders({ appKey, appSecret, deviceId }, method, path, body) {
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString("hex");
  const canonical = [
    "ATOLL-HMAC-SHA256", appKey, deviceId, method, path, "", timestamp, nonce,
    createHash("sha256").update(body).digest("hex"),
  ].join("\n");
  return {
    "x-atoll-app-key": appKey,
    "x-atoll-device-id": deviceId,
    "x-atoll-timestamp": String(timestamp),
    "x-atoll-nonce": nonce,
    "x-atoll-signature": createHmac("sha256", appSecret).update(canonical).digest("hex"),
  };
}

/// Sends one signed device request, so the console has a device to show.
async function deviceCall(base, device, path, payload) {
  const body = Buffer.from(JSON.stringify(payload));
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...signedHeaders(device, "POST", path, body) },
    body,
  });
  assert.equal(response.status, 200, `${path}: ${await response.text()}`);
}

/// A device connection (`/device/v1/connect`) with its frames collected.
async function deviceConnection(base, device) {
  const headers = signedHeaders(device, "GET", "/device/v1/connect", Buffer.alloc(0));
  const socket = new WebSocket(`${base.replace(/^http/, "ws")}/device/v1/connect`, { headers });
  const frames = [];
  let wake = () => {};
  socket.on("message", (data) => {
    frames.push(JSON.parse(data.toString()));
    wake();
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
    socket.once("unexpected-response", (_, response) => reject(new Error(`upgrade refused: ${response.statusCode}`)));
  });
  /// The next frame of type `t` not taken yet (waits up to 10 s).
  const next = async (t) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const index = frames.findIndex((frame) => frame.t === t);
      if (index >= 0) return frames.splice(index, 1)[0];
      if (Date.now() > deadline) throw new Error(`no ${t} frame; got ${JSON.stringify(frames)}`);
      await new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  };
  return { socket, next, send: (frame) => socket.send(JSON.stringify(frame)) };
}

// Never leave a server behind, even if the runner is interrupted.
process.on("exit", () => server?.child.kill("SIGKILL"));

before(async () => {
  const bin = process.env.ATOLL_BIN;
  if (!bin) {
    throw new Error(
      "Set ATOLL_BIN to the atoll binary, e.g. ATOLL_BIN=$CARGO_TARGET_DIR/debug/atoll node --test " +
        "(the cargo target folder may be outside the repository, so there is no default).",
    );
  }
  if (!existsSync(bin)) throw new Error(`ATOLL_BIN=${bin} does not exist; build it with cargo build -p atoll`);
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`no chromium at ${executablePath}; install it (apt-get install chromium) or set CHROMIUM`);
  }
  mkdirSync(resultsDir, { recursive: true });
  server = await startServer(bin);
  browser = await chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  browser = undefined;
  await stopServer();
});

test("a first-time user sets up an app in the console", async (t) => {
  const base = server.url;
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const sessionCookie = async () => {
    const cookie = (await context.cookies(base)).find((c) => c.name === "atoll_session");
    assert.ok(cookie, "the session cookie is set");
    assert.ok(cookie.httpOnly, "the session cookie is HttpOnly");
    return `atoll_session=${cookie.value}`;
  };
  let appKey;
  let appSecret;
  const snap = async (name) => {
    if (process.env.SCREENSHOTS) await page.screenshot({ path: path.join(resultsDir, `${name}.png`), fullPage: true });
  };

  try {
    await t.test("a page without a session leads to the login form", async () => {
      await page.goto(`${base}/w/demo/apps`);
      assert.match(new URL(page.url()).pathname, /^\/login$/);
      await page.locator("h1", { hasText: "Log in" }).waitFor();
    });

    await t.test("a wrong password is refused with a message", async () => {
      await page.fill("input[name=email]", EMAIL);
      await page.fill("input[name=password]", "not-the-password");
      await page.click("button[type=submit]");
      await page.locator(".flash-error", { hasText: "Wrong email or password" }).waitFor();
      assert.equal(new URL(page.url()).pathname, "/login");
      await snap("login-error");
    });

    await t.test("the right password logs in and returns to the page asked for", async () => {
      await page.fill("input[name=password]", server.password);
      await Promise.all([page.waitForURL(`${base}/w/demo/apps`), page.click("button[type=submit]")]);
      await page.locator(".account-email", { hasText: EMAIL }).waitFor();
      await sessionCookie();
    });

    await t.test("creating an app shows its SDK configuration once", async () => {
      await page.fill("input[name=name]", "Browser Test App");
      for (const platform of ["android", "ios", "harmony", "web", "miniprogram"]) {
        const box = page.locator(`input[name=platform][value=${platform}]`);
        if (platform === "android" || platform === "ios") await box.check();
        else await box.uncheck();
      }
      await page.click("#create button[type=submit]");
      const created = page.locator("#created-app");
      await created.waitFor();
      appKey = (await page.textContent("#created-app-key")).trim();
      appSecret = (await page.textContent("#created-app-secret")).trim();
      assert.match(appKey, /^ak_[0-9a-f]+$/);
      assert.match(appSecret, /^as_/);
      assert.match(await created.textContent(), /shown only once/);
      assert.match(await page.textContent("#created-config"), new RegExp(`app_secret = "${appSecret}"`));
      await snap("app-created");
    });

    await t.test("the app page shows the key; the admin API returns the same secret", async () => {
      await page.goto(`${base}/w/demo/apps/${appKey}`);
      assert.equal((await page.textContent("#app-key")).trim(), appKey);
      assert.match(await page.textContent("h1"), /Browser Test App/);
      assert.equal(await page.locator("#app-secret").count(), 0, "the secret stays hidden until revealed");
      const response = await fetch(`${base}/api/v1/workspaces/demo/apps/${appKey}/sdk-config`, {
        headers: { cookie: await sessionCookie() },
      });
      assert.equal(response.status, 200);
      const config = await response.json();
      assert.equal(config.app_key, appKey);
      assert.equal(config.app_secret, appSecret);
      assert.equal(config.server_url, base);
    });

    await t.test("a device registered by the SDK can be looked up", async () => {
      const device = { appKey, appSecret, deviceId: "browser-device-1" };
      await deviceCall(base, device, "/device/v1/register", {
        platform: "android", os: "Android", os_version: "14", model: "Pixel 8", app_version: "1.2.0",
      });
      await deviceCall(base, device, "/device/v1/bind", { user_id: "user-42" });
      await deviceCall(base, device, "/device/v1/push-token", { channel: "fcm", token: "fcm-token-abc" });
      await page.reload();
      await page.locator("table", { hasText: "browser-device-1" }).waitFor();
      await page.fill("input[name=device_id]", "browser-device-1");
      await Promise.all([
        page.waitForURL(`${base}/w/demo/apps/${appKey}/devices/browser-device-1`),
        page.click("button:has-text('Find device')"),
      ]);
      const text = await page.textContent("main");
      for (const expected of ["Pixel 8", "1.2.0", "user-42", "fcm-token-abc"]) assert.ok(text.includes(expected), expected);
      await snap("device");
      await Promise.all([page.waitForURL(`${base}/w/demo/apps/${appKey}/users/user-42`), page.click("a:has-text('user-42')")]);
      await page.locator("main", { hasText: "most recent device" }).waitFor();
      await snap("app-user");
      await page.goto(`${base}/w/demo/apps/${appKey}`);
    });

    await t.test("an admin can reveal the secret on the app page", async () => {
      await page.click("form[action$='/reveal-secret'] button");
      await page.locator("#app-secret").waitFor();
      assert.equal((await page.textContent("#app-secret")).trim(), appSecret);
      await page.goto(`${base}/w/demo/apps/${appKey}`); // hidden again on the next visit
      await page.screenshot({ path: path.join(resultsDir, "app.png"), fullPage: true });
    });

    await t.test("an API token is created, shown once, and listed", async () => {
      await page.click("nav a:has-text('API tokens')");
      await page.waitForURL(`${base}/w/demo/tokens`);
      await page.fill("input[name=name]", "browser-token");
      await page.check("input[name=scope][value=read]");
      await page.click("form[action$='/tokens'] button[type=submit]");
      await page.locator("#created-token").waitFor();
      assert.match((await page.textContent("#created-token-secret")).trim(), /^atk_/);
      await page.locator("#tokens", { hasText: "browser-token" }).waitFor();
      await snap("token-created");
    });

    await t.test("a change without the form's CSRF token is refused", async () => {
      const response = await fetch(`${base}/w/demo/tokens`, {
        method: "POST",
        headers: { cookie: await sessionCookie(), "content-type": "application/x-www-form-urlencoded" },
        body: "name=forged&scope=admin",
        redirect: "manual",
      });
      assert.equal(response.status, 403);
      // (goto, not reload: reloading the creation page would post its form again)
      await page.goto(`${base}/w/demo/tokens`);
      const rows = page.locator("#tokens tbody tr");
      assert.equal(await rows.count(), 1, "only the token made through the form exists");
      assert.match(await rows.first().textContent(), /browser-token/);
    });

    await t.test("the audit log lists the changes", async () => {
      await page.click("nav a:has-text('Audit log')");
      await page.waitForURL(`${base}/w/demo/audit`);
      const log = page.locator("#audit");
      await log.waitFor();
      const text = await log.textContent();
      assert.match(text, /app\.create/);
      assert.match(text, /token\.create/);
      assert.match(text, new RegExp(appKey));
      await snap("audit");
      if (process.env.SCREENSHOTS) {
        for (const [name, address] of [["overview", "/w/demo"], ["members", "/w/demo/members"], ["devices", "/w/demo/devices"], ["not-found", "/w/demo/nope"], ["new-workspace", "/workspaces/new"]]) {
          await page.goto(`${base}${address}`);
          await snap(name);
        }
        await page.goto(`${base}/w/demo`); // back to a page with the workspace navigation
      }
    });

    await t.test("analytics pages draw charts from the demo's week of data", async () => {
      const response = await fetch(`${base}/api/v1/workspaces/demo/apps`, { headers: { cookie: await sessionCookie() } });
      const demoApp = (await response.json()).find((app) => app.name === "Demo Shop");
      assert.ok(demoApp, "the demo app exists");
      await page.click("nav a:has-text('Analytics')");
      await page.waitForURL(/\/w\/demo\/analytics/);
      await page.goto(`${base}/w/demo/analytics?app=${demoApp.app_key}`);
      await page.locator("#overview-trend svg polyline").first().waitFor();
      assert.equal(await page.locator("#overview-trend svg polyline").count(), 3, "active, new, accounts");
      assert.ok((await page.locator("#overview-trend svg circle").count()) >= 21, "a point per day and series");
      const totals = await page.textContent("#overview-totals");
      const active = Number((totals.match(/([\d.]+k?)\s*Active devices/) || [])[1]?.replace("k", "e3"));
      assert.ok(active > 100, `active devices shown: ${totals}`);
      await page.locator("#split-platform svg rect.bar").first().waitFor();
      await page.screenshot({ path: path.join(resultsDir, "analytics.png"), fullPage: true });

      await page.click(".tabs a:has-text('Retention')");
      await page.locator("#retention td.heat").first().waitFor();
      assert.ok((await page.locator("#retention tbody tr").count()) >= 7, "a cohort per day");
      await snap("analytics-retention");

      await page.click(".tabs a:has-text('Funnels')");
      await page.fill("#report-filters input[name=steps]", "view_item, add_to_cart, purchase");
      await page.click("#report-filters button[type=submit]");
      await page.locator("#funnel svg rect.bar").nth(2).waitFor();
      const funnel = await page.textContent("#funnel table");
      assert.match(funnel, /view_item[\s\S]*add_to_cart[\s\S]*purchase/);
      await page.fill("#saved-funnels input[name=name]", "Checkout");
      await page.click("#saved-funnels button[type=submit]");
      await page.locator(".flash-success", { hasText: "Funnel 'Checkout' saved" }).waitFor();
      await page.locator("#saved-funnels table", { hasText: "Checkout" }).waitFor();
      await snap("analytics-funnel");

      await page.click(".tabs a:has-text('Pages')");
      // (a straight band has an empty box, which playwright calls hidden)
      await page.locator("#paths svg path.link").first().waitFor({ state: "attached" });
      await page.locator("#paths svg rect.node").nth(1).waitFor();
      await page.locator("#pages table", { hasText: "checkout" }).waitFor();
      await snap("analytics-pages");

      await page.click(".tabs a:has-text('Events')");
      await page.click("#events table a:has-text('purchase')");
      await page.locator("#event-detail svg polyline").first().waitFor();
      await page.fill("#report-filters input[name=group_by]", "category");
      await page.click("#report-filters button[type=submit]");
      await page.locator("#event-groups svg rect.bar").first().waitFor();

      await page.click(".tabs a:has-text('Behaviour')");
      await page.locator("#session-length svg rect.bar").first().waitFor({ state: "attached" });
      assert.equal(await page.locator("#session-length svg rect.bar").count(), 8, "a bar per length bucket");
      const widths = await page.locator("#session-length svg rect.bar").evaluateAll((bars) => bars.map((b) => Number(b.getAttribute("width"))));
      assert.ok(widths.some((w) => w > 50), `some sessions have a length: ${widths}`);
      await page.click(".tabs a:has-text('Distribution')");
      await page.locator("#distribution table", { hasText: "3.4.1" }).waitFor();

      await page.click(".tabs a:has-text('Registry')");
      await page.locator("#unregistered table", { hasText: "purchase" }).waitFor();
      await page.fill("#registry input[name=event_id]", "purchase");
      await page.fill("#registry textarea[name=attributes]", "amount: number\ncategory: string");
      await page.click("#registry button[type=submit]");
      await page.locator(".flash-success", { hasText: "Event 'purchase' declared" }).waitFor();
      await page.locator("#registry table", { hasText: "amount: number" }).waitFor();
      await snap("analytics-registry");
    });

    await t.test("switches are reviewed as a diff, published, and rolled back", async () => {
      const apps = await fetch(`${base}/api/v1/workspaces/demo/apps`, { headers: { cookie: await sessionCookie() } });
      const demoApp = (await apps.json()).find((app) => app.name === "Demo Shop");
      const switchesApi = `${base}/api/v1/workspaces/demo/apps/${demoApp.app_key}/switches`;
      const inForce = async () => (await fetch(switchesApi, { headers: { cookie: await sessionCookie() } })).json();
      const before = (await inForce()).version;
      assert.ok(before >= 1, "the demo publishes starter switches");
      await page.goto(`${base}/w/demo/switches?app=${demoApp.app_key}`);
      await page.locator("#switches", { hasText: "new_checkout" }).waitFor();
      await page.fill("#switch-editor input[name=key]", "dark_mode");
      await page.selectOption("#switch-editor select[name=type]", "bool");
      await page.fill("#switch-editor textarea[name=rules]", "platform = ios and percent(50) => true");
      await page.fill("#switch-editor input[name=default]", "false");
      await page.click("#switch-editor button[type=submit]");
      await page.locator("#review-diff tr.diff-added", { hasText: "dark_mode" }).waitFor();
      await page.fill("#publish-form input[name=message]", "dark mode for half of iOS");
      await page.click("#publish-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Published" }).waitFor();
      await page.locator("#switches", { hasText: "platform = ios and percent(50) => true" }).waitFor();
      await page.locator("#switch-history", { hasText: "dark mode for half of iOS" }).waitFor();

      await page.click("#switches tr:has-text('dark_mode') a:has-text('Edit')");
      await page.fill("#switch-editor input[name=default]", "true");
      await page.click("#switch-editor button[type=submit]");
      const review = await page.textContent("#review-diff");
      assert.match(review, /changed[\s\S]*dark_mode[\s\S]*default/);
      await page.click("#publish-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Published" }).waitFor();
      await snap("switches");

      // A bad rule is refused with the engine's explanation, and the draft stays.
      await page.fill("#switch-editor input[name=key]", "broken");
      await page.fill("#switch-editor textarea[name=rules]", "app_version >= => true");
      await page.click("#switch-editor button[type=submit]");
      await page.locator(".flash-error", { hasText: "targeted value 1" }).waitFor();
      assert.equal(await page.inputValue("#switch-editor input[name=key]"), "broken");

      page.once("dialog", (dialog) => dialog.accept());
      await page.click(`#switch-history button:has-text('Roll back to v${before + 1}')`);
      await page.locator(".flash-success", { hasText: "Rolled back" }).waitFor();
      const rolledBack = await inForce();
      assert.equal(rolledBack.version, before + 3);
      const darkMode = rolledBack.switches.find((s) => s.key === "dark_mode");
      assert.equal(darkMode.default, false, "the first dark_mode default is back");
    });

    await t.test("delivery: a package is uploaded, released, steered and rolled back", async () => {
      const apps = await fetch(`${base}/api/v1/workspaces/demo/apps`, { headers: { cookie: await sessionCookie() } });
      const demoApp = (await apps.json()).find((app) => app.name === "Demo Shop");
      await page.goto(`${base}/w/demo/delivery?app=${demoApp.app_key}`);
      await page.locator("#releases", { hasText: "20000001" }).waitFor();
      await page.locator("#lists-table", { hasText: "testers" }).waitFor();

      await page.selectOption("#upload-form select[name=kind]", "app");
      await page.selectOption("#upload-form select[name=platform]", "android");
      await page.fill("#upload-form input[name=version]", "4.0.0");
      await page.setInputFiles("#upload-form input[name=file]", {
        name: "shop-4.0.0.apk",
        mimeType: "application/vnd.android.package-archive",
        buffer: randomBytes(64 * 1024),
      });
      await page.click("#upload-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Package uploaded" }).waitFor();
      await page.locator("#packages", { hasText: "4.0.0" }).waitFor();

      const option = await page.locator("#release-form select[name=package_id] option", { hasText: "4.0.0" }).getAttribute("value");
      await page.selectOption("#release-form select[name=package_id]", option);
      await page.fill("#release-form input[name=whitelist]", "user in list:testers");
      await page.fill("#release-form input[name=force_below]", "3.0");
      await page.fill("#release-form textarea[name=notes]", "A faster checkout");
      await page.click("#release-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Draft release created" }).waitFor();
      const row = page.locator("#releases tr", { hasText: "4.0.0" });
      await row.locator("[data-stage]", { hasText: "draft" }).waitFor();

      // The rollout slider moves the release to 25 % of devices.
      await row.locator("select[name=stage]").selectOption("percentage");
      await row.locator("input[name=percent]").fill("25");
      assert.equal(await row.locator("output").textContent(), "25", "the slider shows its value");
      await row.locator("button:has-text('Apply')").click();
      await page.locator(".flash-success", { hasText: "Release updated" }).waitFor();
      await page.locator("#releases tr", { hasText: "4.0.0" }).locator("[data-stage]", { hasText: "percentage · 25%" }).waitFor();
      await page.locator("#funnel-steps", { hasText: "Checks" }).waitFor();

      await page.locator("#releases tr", { hasText: "4.0.0" }).locator("button:has-text('pause')").click();
      await page.locator("#releases tr", { hasText: "4.0.0" }).locator("[data-status]", { hasText: "paused" }).waitFor();
      page.once("dialog", (dialog) => dialog.accept());
      await page.locator("#releases tr", { hasText: "4.0.0" }).locator("button:has-text('rollback')").click();
      await page.locator("#releases tr", { hasText: "4.0.0" }).locator("[data-status]", { hasText: "rolled_back" }).waitFor();

      // A bad rule is refused with the rule engine's explanation.
      await page.selectOption("#release-form select[name=package_id]", option);
      await page.fill("#release-form input[name=rule]", "app_version >=");
      await page.click("#release-form button[type=submit]");
      await page.locator(".flash-error", { hasText: "rule" }).waitFor();

      await page.fill("#list-form input[name=name]", "qa-phones");
      await page.selectOption("#list-form select[name=kind]", "device");
      await page.fill("#list-form textarea[name=ids]", "phone-1\nphone-2, phone-3");
      await page.click("#list-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "List saved" }).waitFor();
      await page.locator("#lists-table tr", { hasText: "qa-phones" }).locator("td.right", { hasText: /^3$/ }).waitFor();
      await snap("delivery");
    });

    await t.test("gateway: a test call, the SSRF guard, a group with its secret, an API enabled and edited", async () => {
      const apps = await fetch(`${base}/api/v1/workspaces/demo/apps`, { headers: { cookie: await sessionCookie() } });
      const demoApp = (await apps.json()).find((app) => app.name === "Demo Shop");
      await page.goto(`${base}/w/demo/gateway?app=${demoApp.app_key}`);
      await page.locator("#apis", { hasText: "com.demo.greeting.get" }).waitFor();
      await page.locator("#keys-table", { hasText: "sm2-sm4gcm" }).waitFor();

      // The test console sends a real call (here answered by the API's mock).
      await page.selectOption("#test-form select[name=operation_type]", "com.demo.greeting.get");
      await page.click("#test-form button[type=submit]");
      await page.locator("#test-result [data-test-status]", { hasText: "200" }).waitFor();
      await page.locator("#test-response", { hasText: "Hello from the Atoll gateway" }).waitFor();
      await page.locator("#apis tr[data-api='com.demo.greeting.get'] [data-requests]", { hasText: /^[1-9]/ }).waitFor();

      // A private address is refused by the SSRF guard; a public one makes a group whose secret is shown once.
      await page.fill("#group-form input[name=name]", "orders");
      await page.fill("#group-form input[name=base_url]", "http://169.254.169.254/latest");
      await page.click("#group-form button[type=submit]");
      await page.locator(".flash-error", { hasText: "allow-list" }).waitFor();
      await page.fill("#group-form input[name=name]", "orders");
      await page.fill("#group-form input[name=base_url]", "https://orders.example.com/api");
      await page.click("#group-form button[type=submit]");
      await page.locator("#group-secret", { hasText: "ATOLL_GATEWAY_SECRET=" }).waitFor();
      await page.locator("#groups-table tr[data-group='orders']").waitFor();

      // A new API starts disabled; enabling it is one click.
      await page.fill("#api-form input[name=operation_type]", "com.demo.order.cancel");
      await page.selectOption("#api-form select[name=group]", "orders");
      await page.selectOption("#api-form select[name=method]", "POST");
      await page.fill("#api-form input[name=path]", "/orders/${id}/cancel");
      await page.fill("#api-form input[name=per_device_qps]", "2");
      await page.click("#api-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "API created" }).waitFor();
      const row = page.locator("#apis tr[data-api='com.demo.order.cancel']");
      await row.locator("[data-enabled]", { hasText: "disabled" }).waitFor();
      await row.locator("button:has-text('Enable')").click();
      await page.locator("#apis tr[data-api='com.demo.order.cancel'] [data-enabled]", { hasText: /^enabled$/ }).waitFor();

      // The editor saves the full settings; a bad one is refused and kept for fixing.
      const editor = page.locator("#api-editor textarea[name=spec]");
      const spec = JSON.parse(await editor.inputValue());
      assert.equal(spec.operation_type, "com.demo.order.cancel");
      spec.timeout_ms = 999999;
      await editor.fill(JSON.stringify(spec, null, 2));
      await page.click("#api-editor button[type=submit]");
      await page.locator(".flash-error", { hasText: "timeout_ms" }).waitFor();
      assert.match(await page.locator("#api-editor textarea[name=spec]").inputValue(), /999999/);
      spec.timeout_ms = 1500;
      spec.description = "Cancels an order";
      await page.locator("#api-editor textarea[name=spec]").fill(JSON.stringify(spec, null, 2));
      await page.click("#api-editor button[type=submit]");
      await page.locator(".flash-success", { hasText: "API saved" }).waitFor();
      await page.locator("#apis tr[data-api='com.demo.order.cancel']", { hasText: "Cancels an order" }).waitFor();
      await snap("gateway");
    });

    await t.test("sync: a biz type, a connected device, a test order delivered and acknowledged, its cursor", async () => {
      const syncPage = `${base}/w/demo/sync?app=${appKey}`;
      await page.goto(syncPage);
      await page.fill("#biz-form input[name=id]", "PRICE-ALERT");
      await page.selectOption("#biz-form select[name=dimension]", "device");
      await page.fill("#biz-form input[name=backlog_threshold]", "50");
      await page.click("#biz-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Biz type created" }).waitFor();
      await page.locator("#biz-types tr[data-biz='PRICE-ALERT']", { hasText: "newest 50" }).waitFor();
      // A bad id is refused with the rule, and the page stays usable.
      await page.fill("#biz-form input[name=id]", "price_alert");
      await page.click("#biz-form button[type=submit]");
      await page.locator(".flash-error", { hasText: "upper-case" }).waitFor();

      // A device connects with a signed upgrade and subscribes.
      const device = { appKey, appSecret, deviceId: "browser-sync-device" };
      await deviceCall(base, device, "/device/v1/register", { platform: "android", app_version: "1.0.0" });
      const connection = await deviceConnection(base, device);
      await connection.next("welcome");
      connection.send({ t: "subscribe", subs: [{ biz: "PRICE-ALERT", cursors: [] }] });
      const subscribed = await connection.next("subscribed");
      assert.equal(subscribed.streams[0].stream, "d:browser-sync-device");
      await page.goto(syncPage);
      await page.locator("#online-table tr[data-device='browser-sync-device']", { hasText: "PRICE-ALERT" }).waitFor();

      // A test order from the console reaches the device at once; the device acknowledges it.
      await page.selectOption("#send-form select[name=biz_type]", "PRICE-ALERT");
      await page.fill("#send-form input[name=link_token]", "browser-sync-device");
      await page.fill("#send-form textarea[name=payload]", '{"sku":"A1","price":9.99}');
      await page.click("#send-form button[type=submit]");
      await page.locator("#send-result", { hasText: "OK" }).waitFor();
      const data = await connection.next("data");
      assert.equal(data.payload, '{"sku":"A1","price":9.99}');
      assert.equal(data.seq, 1);
      connection.send({ t: "ack", biz: "PRICE-ALERT", stream: data.stream, seq: data.seq });
      const row = "#biz-types tr[data-biz='PRICE-ALERT']";
      for (let tries = 0; ; tries++) {
        await page.goto(syncPage);
        if ((await page.textContent(`${row} [data-acknowledged]`)).trim() === "1") break;
        assert.ok(tries < 25, "the acknowledgement is counted");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal((await page.textContent(`${row} [data-sent]`)).trim(), "1");
      assert.equal((await page.textContent(`${row} [data-online]`)).trim(), "1");

      // The device's cursor: acknowledged up to 1, nothing pending.
      await page.fill("#cursor-form input[name=device]", "browser-sync-device");
      await page.click("#cursor-form button[type=submit]");
      await page.locator("#cursor-table tr[data-cursor='PRICE-ALERT'] [data-acked]", { hasText: /^1$/ }).waitFor();
      await page.locator("[data-device-online]", { hasText: "online" }).waitFor();
      await snap("sync");

      // Taking the biz type offline refuses new orders.
      await page.goto(syncPage);
      await page.locator(`${row} button:has-text('Take offline')`).click();
      await page.locator(`${row} [data-state]`, { hasText: "offline" }).waitFor();
      connection.socket.close();
    });

    await t.test("push: a template, a composed push delivered and acknowledged, the task's funnel", async () => {
      const pushPage = `${base}/w/demo/push?app=${appKey}`;
      await page.goto(pushPage);
      await page.fill("#template-form input[name=name]", "price_drop");
      await page.fill("#template-form input[name=title]", "#item# is cheaper");
      await page.fill("#template-form input[name=body]", "Now #price#");
      await page.click("#template-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Template created" }).waitFor();
      await page.locator("#template-table tr[data-template='price_drop']", { hasText: "item, price" }).waitFor();

      // A device online on the connection.
      const device = { appKey, appSecret, deviceId: "browser-push-device" };
      await deviceCall(base, device, "/device/v1/register", { platform: "ios", app_version: "1.0.0" });
      const connection = await deviceConnection(base, device);
      await connection.next("welcome");

      // A template push with a missing value is refused with the names.
      await page.fill("#push-form input[name=targets]", "browser-push-device");
      await page.selectOption("#push-form select[name=template]", "price_drop");
      await page.fill("#push-form textarea[name=values]", "item=Boots");
      await page.click("#push-form button[type=submit]");
      await page.locator(".flash-error", { hasText: "price" }).waitFor();

      // With every value it is sent, reaches the device, and the device acknowledges.
      await page.fill("#push-form input[name=targets]", "browser-push-device");
      await page.selectOption("#push-form select[name=template]", "price_drop");
      await page.fill("#push-form textarea[name=values]", "item=Boots\nprice=49 EUR");
      await page.fill("#push-form input[name=collapse_key]", "boots");
      await page.click("#push-form button[type=submit]");
      await page.locator("#send-result", { hasText: "OK" }).waitFor();
      const push = await connection.next("push");
      assert.equal(push.title, "Boots is cheaper");
      assert.equal(push.body, "Now 49 EUR");
      assert.equal(push.collapse_key, "boots");
      connection.send({ t: "push_ack", msg_ids: [push.msg_id] });
      const detail = `${pushPage}&task=${encodeURIComponent(push.task_id)}`;
      for (let tries = 0; ; tries++) {
        await page.goto(detail);
        const arrived = await page.textContent("#funnel [data-step='Arrived'] [data-count]");
        if (arrived.trim() === "1") break;
        assert.ok(tries < 25, "the arrival is counted");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await page.locator("#by-channel tr[data-channel='atoll'] [data-arrived]", { hasText: /^1$/ }).waitFor();
      await page.locator("#task-table tr[data-task] [data-arrived]", { hasText: /^1$/ }).first().waitFor();
      await page.locator("#core-indexes [data-total-arrived]", { hasText: /^[1-9]/ }).waitFor();

      // Fatigue caps are saved.
      await page.fill("#caps-form input[name=cap_per_day]", "5");
      await page.click("#caps-form button[type=submit]");
      await page.locator(".flash-success", { hasText: "Push settings saved" }).waitFor();
      assert.equal(await page.inputValue("#caps-form input[name=cap_per_day]"), "5");
      await snap("push");
      connection.socket.close();
    });

    await t.test("logging out ends the session", async () => {
      const cookie = await sessionCookie();
      await Promise.all([page.waitForURL(`${base}/login`), page.click("form[action='/logout'] button")]);
      const response = await fetch(`${base}/api/v1/workspaces/demo/apps`, { headers: { cookie } });
      assert.equal(response.status, 401);
    });
  } catch (error) {
    await page.screenshot({ path: path.join(resultsDir, "failure.png"), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
});
