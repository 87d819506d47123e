// The demo page in headless Chromium against `sluice serve` (started by run.sh).
//
// For every case and backend: open the page with ?model=…&prompt=…&temp=0&autorun=1, wait
// until it says done, and check that the tokens fed and generated are the native CLI's
// (generated ones up to the case's comparison length: the first near-tie of the reference
// logits). Any console error fails the test. Environment (set by run.sh):
//   SLUICE_BASE_URL     the server, e.g. http://127.0.0.1:8080
//   SLUICE_CASES        JSON file: [{name, model, prompt, n, steps, native: {prompt_token_ids,
//                       token_ids}, backends: ["webgpu", "cpu"], expertBudgetMB?}]
//   SLUICE_SCREENSHOTS  directory for one screenshot per case
//   CHROMIUM            the browser (default /usr/bin/chromium; nothing is ever downloaded)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.SLUICE_BASE_URL;
const cases = JSON.parse(readFileSync(process.env.SLUICE_CASES, 'utf8'));
const shots = process.env.SLUICE_SCREENSHOTS || 'browser-screenshots';
const timeoutMs = Number(process.env.SLUICE_CASE_TIMEOUT_MS || 600000);
mkdirSync(shots, { recursive: true });

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false, // the flag below selects the new headless mode explicitly
    args: [
      '--headless=new',
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
});

/// Opens the page with `query`, collecting console errors; resolves when it is done or failed.
async function runPage(query, name, allowConsole = () => false) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !allowConsole(msg.text())) consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message}`));
  const url = `${base}/?${new URLSearchParams(query)}`;
  const started = Date.now();
  await page.goto(url);
  await page.waitForFunction(
    () => ['done', 'error'].includes(document.body.dataset.state),
    null,
    { timeout: timeoutMs, polling: 100 },
  );
  const seconds = (Date.now() - started) / 1000;
  const result = await page.evaluate(() => {
    const output = document.getElementById('output');
    const session = window.sluice && window.sluice.session;
    return {
      state: document.body.dataset.state,
      error: document.getElementById('error').textContent,
      text: output ? output.textContent : null,
      tokenIds: output ? JSON.parse(output.dataset.tokenIds || '[]') : null,
      promptTokenIds: output ? JSON.parse(output.dataset.promptTokenIds || '[]') : null,
      stats: session ? Object.assign({}, session.stats()) : null,
    };
  });
  const shot = join(shots, `${name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  await page.close();
  return { ...result, consoleErrors, shot, seconds };
}

for (const c of cases) {
  for (const backend of c.backends) {
    test(`${c.name} on ${backend}: the page generates the CLI's tokens`, async () => {
      const query = {
        model: c.model,
        prompt: c.prompt,
        temp: '0',
        seed: '1',
        n: String(c.n),
        backend,
        autorun: '1',
      };
      if (c.system) query.system = c.system;
      if (c.expertBudgetMB !== undefined) query.budget = String(c.expertBudgetMB);
      const r = await runPage(query, `${c.name}-${backend}`);
      const s = r.stats || {};
      console.log(
        `# ${c.name} ${backend}: ${r.state} in ${r.seconds.toFixed(1)} s; ` +
          `backend "${s.backend}" adapter "${s.adapter}"; ` +
          `${(s.tokensPerSecond || 0).toFixed(2)} tokens/s, prompt ${(s.promptTokensPerSecond || 0).toFixed(2)} tokens/s; ` +
          `experts ${s.expertHits} hits ${s.expertMisses} misses (${s.expertMode}); ` +
          `${(s.mbFetched || 0).toFixed(2)} MB in ${s.requests} requests; screenshot ${r.shot}`,
      );
      assert.equal(r.state, 'done', `the page failed: ${r.error}`);
      assert.deepEqual(r.consoleErrors, [], 'console errors');
      assert.ok(s.backend.startsWith(backend), `asked for ${backend}, ran on ${s.backend}`);
      assert.deepEqual(r.promptTokenIds, c.native.prompt_token_ids, 'prompt tokens differ from the CLI');
      const steps = Math.min(c.steps, c.native.token_ids.length);
      assert.ok(steps > 0, 'nothing to compare');
      assert.deepEqual(
        r.tokenIds.slice(0, steps),
        c.native.token_ids.slice(0, steps),
        `generated tokens differ from the CLI within the first ${steps}:\n  page ${JSON.stringify(r.tokenIds)}\n  CLI  ${JSON.stringify(c.native.token_ids)}`,
      );
      if (c.streamsExperts && s.expertMode === 'stream') {
        assert.ok(s.expertMisses > 0, 'streamed experts were never fetched');
      }
    });
  }
}

test('a model URL that does not exist shows the error', async () => {
  const missing = `${base}/no-such-model.gguf`;
  const r = await runPage(
    { model: missing, prompt: 'hi', backend: 'cpu', autorun: '1' },
    'missing-model',
    (text) => text.includes('404'),
  );
  assert.equal(r.state, 'error');
  assert.match(r.error, /no-such-model\.gguf/);
  assert.match(r.error, /HTTP 404/);
  assert.deepEqual(r.consoleErrors, []);
});
