// The sluice demo page: pick a model on a weights host, load it, chat.
//
// Drivable without clicks through the query string (the browser tests use this):
//   ?model=URL&prompt=TEXT&system=TEXT&temp=0&seed=N&n=N&top_k=K&top_p=P&min_p=P
//    &backend=auto|cpu|webgpu&budget=MB&chat=0&host=URL&autorun=1
// The page's state is in document.body.dataset.state (starting, idle, loading, ready,
// generating, done, error); the last answer is in #output, its token ids (JSON) in
// #output's data-token-ids, the ids fed to the model in data-prompt-token-ids.

import init, { Session, version } from './pkg/sluice_web.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let session = null;
let statsTimer = null;
// For tests and the developer console.
window.sluice = { get session() { return session; } };

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === 'loading' || state === 'generating';
  $('load').disabled = busy;
  $('send').disabled = busy || !session;
  $('reset').disabled = busy || !session;
  $('stop').disabled = state !== 'generating';
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
  setState('error');
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function describe(e) {
  return e instanceof Error ? e.message : String(e);
}

/// Resolves `value` against the weights host (absolute URLs pass through).
function resolveUrl(value) {
  return new URL(value, hostUrl() + '/').href;
}

function hostUrl() {
  return ($('host').value.trim() || location.origin).replace(/\/+$/, '');
}

async function listModels() {
  const select = $('model-list');
  select.replaceChildren();
  const response = await fetch(hostUrl() + '/models.json', { cache: 'no-cache' });
  if (!response.ok) throw new Error(`${hostUrl()}/models.json: HTTP ${response.status}`);
  const listing = await response.json();
  for (const m of listing.models || []) {
    if (m.error || !m.parts || m.parts.length === 0) continue;
    const option = document.createElement('option');
    option.value = resolveUrl(m.parts[0]);
    const mb = (m.size / 1048576).toFixed(1);
    const parts = m.parts.length > 1 ? `, ${m.parts.length} parts` : '';
    option.textContent = `${m.name} (${m.architecture || '?'}, ${mb} MB${parts}${m.complete ? '' : ', incomplete'})`;
    select.append(option);
  }
  if (!$('model-url').value && select.options.length > 0) {
    $('model-url').value = select.value;
  }
}

function updateStats() {
  if (!session) return;
  const s = session.stats();
  $('stat-backend').textContent = s.backend + (s.backendNote ? ` (${s.backendNote})` : '');
  $('stat-adapter').textContent = s.adapter || '—';
  $('stat-tps').textContent = s.tokensPerSecond ? s.tokensPerSecond.toFixed(2) : '—';
  $('stat-pps').textContent = s.promptTokensPerSecond ? s.promptTokensPerSecond.toFixed(2) : '—';
  const lookups = s.expertHits + s.expertMisses;
  $('stat-hits').textContent = lookups
    ? `${(100 * s.expertHitRate).toFixed(1)}% (${s.expertHits} hits, ${s.expertMisses} misses, ${s.expertMode})`
    : s.expertMode === 'stream' ? '—' : 'resident';
  $('stat-fetched').textContent = `${s.mbFetched.toFixed(2)} MB in ${s.requests} requests`;
  document.body.dataset.backend = s.backend;
  document.body.dataset.adapter = s.adapter;
}

async function loadModel() {
  clearError();
  const url = $('model-url').value.trim() || $('model-list').value;
  if (!url) throw new Error('no model chosen: list the host\'s models or enter a model URL');
  if (session) {
    clearInterval(statsTimer);
    session.free();
    session = null;
  }
  $('transcript').replaceChildren();
  setState('loading');
  const progress = $('progress');
  progress.hidden = false;
  progress.value = 0;
  const budget = Number($('budget').value);
  const started = performance.now();
  session = await Session.load(resolveUrl(url), {
    backend: $('backend').value,
    expertBudgetMB: Number.isFinite(budget) ? budget : 256,
    onProgress: (fetched, expected) => {
      if (expected > 0) progress.value = Math.min(1, fetched / expected);
      $('progress-text').textContent = `${(fetched / 1048576).toFixed(1)} MB`;
    },
  });
  progress.value = 1;
  const info = session.info;
  $('progress-text').textContent =
    `${info.name}: ${info.architecture}, ${info.layers} layers, loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`;
  $('stat-ctx').textContent = `${info.ctxSize} tokens`;
  $('chat-mode').checked = $('chat-mode').checked && info.chatTemplate;
  statsTimer = setInterval(updateStats, 250);
  updateStats();
  setState('ready');
}

function numberField(id) {
  const v = Number($(id).value);
  return Number.isFinite(v) ? v : undefined;
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `message ${role}`;
  div.textContent = text;
  $('transcript').append(div);
  return div;
}

async function send() {
  clearError();
  const prompt = $('prompt').value;
  if (!prompt.trim()) return;
  const previous = $('output');
  if (previous) previous.removeAttribute('id');
  addMessage('user', prompt);
  const output = addMessage('assistant', '');
  output.id = 'output';
  output.dataset.tokenIds = '[]';
  setState('generating');
  const ids = [];
  const options = {
    temp: numberField('temp'),
    topK: numberField('top-k'),
    topP: numberField('top-p'),
    minP: numberField('min-p'),
    repeatPenalty: numberField('repeat-penalty'),
    seed: numberField('seed'),
    nPredict: numberField('n-predict'),
    system: $('system').value,
    chat: $('chat-mode').checked,
  };
  const result = await session.generate(prompt, options, (text, id) => {
    if (id !== undefined) ids.push(id);
    output.textContent += text;
  });
  // The final text drops the end-of-generation token's text (chat) and adds held-back bytes.
  output.textContent = result.text;
  output.dataset.tokenIds = JSON.stringify(Array.from(result.tokenIds));
  output.dataset.promptTokenIds = JSON.stringify(Array.from(result.promptTokenIds));
  output.dataset.stop = result.stop;
  $('prompt').value = '';
  updateStats();
  setState('done');
}

function applyQuery() {
  const set = (id, key) => { if (params.has(key)) $(id).value = params.get(key); };
  set('host', 'host');
  set('model-url', 'model');
  set('prompt', 'prompt');
  set('system', 'system');
  set('temp', 'temp');
  set('top-k', 'top_k');
  set('top-p', 'top_p');
  set('min-p', 'min_p');
  set('repeat-penalty', 'repeat_penalty');
  set('seed', 'seed');
  set('n-predict', 'n');
  set('backend', 'backend');
  set('budget', 'budget');
  if (params.get('chat') === '0') $('chat-mode').checked = false;
}

async function guarded(action) {
  try {
    await action();
  } catch (e) {
    showError(describe(e));
  }
}

async function main() {
  try {
    await init();
  } catch (e) {
    showError(`cannot start the wasm module (${describe(e)}); build it with web/build.sh`);
    return;
  }
  $('version').textContent = version();
  applyQuery();
  if (!$('host').value) $('host').value = location.origin;
  $('refresh').addEventListener('click', () => guarded(listModels));
  $('model-list').addEventListener('change', () => { $('model-url').value = $('model-list').value; });
  $('load').addEventListener('click', () => guarded(loadModel));
  $('chat-form').addEventListener('submit', (ev) => { ev.preventDefault(); guarded(send); });
  $('prompt').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !$('send').disabled) {
      ev.preventDefault();
      guarded(send);
    }
  });
  $('stop').addEventListener('click', () => session && session.stop());
  $('reset').addEventListener('click', () => guarded(async () => {
    session.reset();
    $('transcript').replaceChildren();
    setState('ready');
  }));
  setState('idle');
  try {
    await listModels();
  } catch (e) {
    // No listing (a plain static host): a model URL can still be typed in.
    $('progress-text').textContent = `no model list: ${describe(e)}`;
  }
  if (params.get('autorun') === '1') {
    await guarded(async () => {
      await loadModel();
      await send();
    });
  }
}

main();
