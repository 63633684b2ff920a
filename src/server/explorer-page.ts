/**
 * The live explorer served at `/` to browsers: one self-contained page (no build step, no
 * external assets) that reads /stream with the browser's own EventSource. The filter and the
 * last event seen are kept in localStorage, so a reload resumes where the page left off (it asks
 * from just after that event; EventSource's own reconnects resume at Last-Event-ID, inclusive,
 * and the event they resume at is recognised and not shown twice). Pausing closes the stream
 * and resuming reopens it after the last event, so a paused page holds nothing.
 * A stream that ends on events lost in a damaged block of the buffer (BufferDamaged, with the
 * cursor past them), or on a page of it LMDB refuses (BufferUnreadable, with no cursor), is not
 * reopened, as EventSource would, into the same damage: the page says why and offers to go on
 * after the lost events, or from the newest events where nothing says where the lost ones end.
 * Before its first event the page's position is the newest event stored when it began watching
 * (read from /stats, and not shown): a stream opened live would leave it none to resume from. A
 * /stats that refuses (503 BufferUnreadable) is said to be unavailable, with its reason, and the
 * stream opens live: its refusal holds no newest event, and a replay from the start meets the same page.
 * A refused stream shows the server's reason: a bad filter waits for another, anything else (a
 * limit's 429 or 503) is asked for again every few seconds.
 * The page counts the stream messages it has received in <body data-received>, shown or not,
 * so a test can tell that nothing reached it (while paused) rather than that nothing showed yet.
 * Written without template literals so it can live in this TypeScript string.
 */
import { createHash } from 'node:crypto';

export const EXPLORER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>contrail explorer</title>
<style>
  :root { color-scheme: dark; --bg: #0f1419; --panel: #161d26; --line: #263040; --text: #d8dee9; --dim: #8a97a8; --accent: #4fa3ff; --ok: #4cc38a; --warn: #f0b54a; --bad: #ef6b6b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; align-items: center; gap: 16px; padding: 10px 16px; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 17px; margin: 0; }
  #subtitle { color: var(--dim); }
  header nav { margin-left: auto; display: flex; gap: 14px; }
  a { color: var(--accent); }
  form { display: flex; flex-wrap: wrap; gap: 8px; padding: 10px 16px; border-bottom: 1px solid var(--line); align-items: center; }
  label { color: var(--dim); font-size: 12px; display: flex; flex-direction: column; gap: 2px; flex: 1 1 260px; }
  input { background: var(--panel); color: var(--text); border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; font: 13px ui-monospace, monospace; }
  button { background: var(--panel); color: var(--text); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; cursor: pointer; align-self: flex-end; }
  button.primary { background: var(--accent); color: #04111f; border-color: var(--accent); font-weight: 600; }
  #bar { display: flex; gap: 18px; padding: 6px 16px; color: var(--dim); font-size: 12px; border-bottom: 1px solid var(--line); }
  #status.live { color: var(--ok); } #status.paused { color: var(--warn); } #status.down { color: var(--bad); }
  #bar button { padding: 0 8px; font-size: 12px; align-self: center; white-space: nowrap; flex-shrink: 0; }
  main { display: flex; flex: 1; min-height: 0; }
  #events { flex: 3; overflow-y: auto; margin: 0; padding: 0; list-style: none; font: 12.5px ui-monospace, monospace; }
  #events li { display: grid; grid-template-columns: 92px 70px 200px 1fr; gap: 10px; padding: 4px 16px; border-bottom: 1px solid #1b2430; cursor: pointer; white-space: nowrap; overflow: hidden; }
  #events li:hover { background: #1a2330; } #events li.selected { background: #1d3350; }
  #events .kind-identity, #events .kind-account, #events .kind-sync { color: var(--warn); }
  #events .op-delete { color: var(--bad); }
  #events .text { overflow: hidden; text-overflow: ellipsis; color: var(--dim); }
  aside { flex: 2; border-left: 1px solid var(--line); display: flex; flex-direction: column; min-width: 0; }
  aside h2 { font-size: 13px; margin: 0; padding: 8px 12px; color: var(--dim); border-bottom: 1px solid var(--line); }
  #detail { margin: 0; padding: 12px; overflow: auto; flex: 1; font: 12px ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
  #empty { padding: 24px 16px; color: var(--dim); }
</style>
</head>
<body>
<header>
  <h1>contrail explorer</h1>
  <span id="subtitle">live AT Protocol events from this gateway</span>
  <nav><a href="/health">/health</a><a href="/stats">/stats</a><a href="/api">API</a></nav>
</header>
<form id="filters">
  <label>Collections (comma separated; a prefix ends in .*)<input id="collections" name="collections" placeholder="app.bsky.feed.post, app.bsky.graph.*" autocomplete="off"></label>
  <label>DIDs (comma separated)<input id="dids" name="dids" placeholder="did:plc:…" autocomplete="off"></label>
  <button type="submit" class="primary" id="apply">Watch</button>
  <button type="button" id="pause">Pause</button>
  <button type="button" id="clear">Clear</button>
</form>
<div id="bar">
  <span id="status">connecting…</span>
  <button type="button" id="skip" hidden>Go on after the lost events</button>
  <span id="rate">0.0 events/s</span>
  <span id="count">0 events</span>
  <span id="position"></span>
</div>
<main>
  <ul id="events"></ul>
  <aside><h2>Event JSON (click an event)</h2><pre id="detail"></pre></aside>
</main>
<script>
(function () {
  'use strict';
  var MAX_ROWS = 500;
  var RETRY_MS = 5000;
  var STORAGE = 'contrail-explorer';
  var $ = function (id) { return document.getElementById(id); };
  var saved = {};
  try { saved = JSON.parse(localStorage.getItem(STORAGE) || '{}'); } catch (e) { saved = {}; }
  var state = { collections: saved.collections || '', dids: saved.dids || '', lastTimeUs: saved.lastTimeUs || 0, paused: false };
  var source = null, retry = null, total = 0, arrivals = [], selected = null;
  var attempts = 0; // a connect waiting for /stats opens its stream only if nothing came after it
  var lostUpTo = 0; // the last event of a damaged block the stream ended on, to go on after (0: unknown)

  $('collections').value = state.collections;
  $('dids').value = state.dids;

  function save() {
    localStorage.setItem(STORAGE, JSON.stringify({ collections: state.collections, dids: state.dids, lastTimeUs: state.lastTimeUs }));
  }
  function list(text) { return text.split(/[\\s,]+/).filter(Boolean); }
  function setStatus(text, cls) { var s = $('status'); s.textContent = text; s.className = cls || ''; }

  function streamUrl() {
    var query = new URLSearchParams();
    list(state.collections).forEach(function (c) { query.append('wantedCollections', c); });
    list(state.dids).forEach(function (d) { query.append('wantedDids', d); });
    query.set('heartbeat', '15s');
    if (state.lastTimeUs) query.set('cursor', String(state.lastTimeUs + 1));
    return '/stream?' + query.toString();
  }

  function connect() {
    clearTimeout(retry);
    if (source) source.close();
    source = null;
    $('skip').hidden = true;
    var attempt = ++attempts;
    setStatus(state.lastTimeUs ? 'resuming from ' + when(state.lastTimeUs) + '…' : 'connecting…');
    if (state.lastTimeUs) return open();
    // Nothing shown yet: start after the newest event stored now, not live, so that a pause or a
    // reload before the first event resumes from here (an empty buffer: from its start).
    fetch('/stats').then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (stats) {
        if (attempt !== attempts) return;
        if (!response.ok) {
          // Refused (503 BufferUnreadable: a page of the buffer LMDB cannot read): no newest event to start after, so live.
          $('position').textContent = '/stats unavailable (' + (stats.error || 'HTTP ' + response.status) + (stats.message ? ': ' + stats.message : '') + '): starting live';
          return;
        }
        state.lastTimeUs = Math.max(stats.newestTimeUs || 0, stats.trimmedUpTo || 0, 1);
        save();
      });
    }).catch(function () {}).then(function () { if (attempt === attempts) open(); });
  }

  function open() {
    source = new EventSource(streamUrl());
    var ended = null; // why the server ended the stream, shown until it is back
    source.onopen = function () { ended = null; setStatus('live', 'live'); };
    source.onmessage = function (message) {
      document.body.dataset.received = String(Number(document.body.dataset.received || 0) + 1);
      var event = JSON.parse(message.data);
      // The cursor is inclusive: the event we resumed at was shown before.
      if (event.time_us <= state.lastTimeUs) return;
      state.lastTimeUs = event.time_us;
      save();
      show(event, message.data);
    };
    source.addEventListener('heartbeat', function () { $('position').textContent = 'stream alive at ' + new Date().toLocaleTimeString(); });
    source.addEventListener('close', function (message) {
      var error = JSON.parse(message.data);
      ended = error.error + ': ' + error.message;
      if (typeof error.cursor !== 'number' && error.error !== 'BufferUnreadable') return setStatus(ended + ' (reconnecting…)', 'down');
      // Events were lost (a damaged block, an unreadable page): reconnecting would meet them again. Go on only when asked.
      source.close();
      source = null;
      lostUpTo = typeof error.cursor === 'number' ? error.cursor - 1 : 0;
      setStatus(ended, 'down');
      $('skip').textContent = lostUpTo ? 'Go on after the lost events' : 'Go on from the newest events';
      $('skip').hidden = false;
    });
    source.onerror = function () {
      if (source.readyState !== EventSource.CLOSED) {
        setStatus((ended || 'disconnected') + ' (reconnecting…)', 'down');
        return;
      }
      // Refused: EventSource cannot read why, so ask once more with fetch. A bad filter (400)
      // stays refused until it is changed; a limit (429, 503) or anything else may pass later.
      var refused = source, url = streamUrl(), abort = new AbortController();
      setStatus('the server refused the stream', 'down');
      fetch(url, { signal: abort.signal }).then(function (response) {
        if (response.ok) { abort.abort(); return 'the server refused the stream'; }
        return response.text().then(function (reason) { return { status: response.status, text: 'HTTP ' + response.status + ': ' + reason.trim() }; });
      }).catch(function () { return 'the server refused the stream'; }).then(function (answer) {
        if (source !== refused) return; // paused, or another filter applied, meanwhile
        if (typeof answer === 'object' && answer.status >= 400 && answer.status < 500 && answer.status !== 429) return setStatus(answer.text, 'down');
        setStatus((typeof answer === 'object' ? answer.text : answer) + ' (retrying in ' + RETRY_MS / 1000 + ' s)', 'down');
        retry = setTimeout(connect, RETRY_MS);
      });
    };
  }

  function when(timeUs) { return new Date(timeUs / 1000).toLocaleTimeString(); }

  function summary(event) {
    if (event.kind === 'commit') {
      var c = event.commit, r = c.record || {};
      return { what: c.collection, op: c.operation, text: firstText([r.text, r.subject && r.subject.uri, r.subject, r.displayName, c.rkey]) };
    }
    var body = event[event.kind] || {};
    return { what: event.kind, op: '', text: body.handle || body.status || (body.active === undefined ? '' : body.active ? 'active' : 'inactive') || '' };
  }

  // A record's fields are whatever its author wrote: only a string is shown (String() of an
  // object whose toString key is not a function throws).
  function firstText(candidates) {
    for (var i = 0; i < candidates.length; i++) if (typeof candidates[i] === 'string' && candidates[i]) return candidates[i];
    return '';
  }

  function cell(text, cls) { var span = document.createElement('span'); span.textContent = text; if (cls) span.className = cls; return span; }

  function show(event, json) {
    total++;
    arrivals.push(Date.now());
    var s = summary(event);
    var row = document.createElement('li');
    row.className = 'event kind-' + event.kind + (s.op ? ' op-' + s.op : '');
    row.appendChild(cell(when(event.time_us)));
    row.appendChild(cell(s.op || event.kind));
    row.appendChild(cell(s.what));
    row.appendChild(cell(event.did + '  ' + s.text.replace(/\\s+/g, ' '), 'text'));
    row.dataset.json = json;
    row.title = 'time_us ' + event.time_us;
    var events = $('events');
    events.insertBefore(row, events.firstChild);
    while (events.children.length > MAX_ROWS) events.removeChild(events.lastChild);
    $('count').textContent = total + (total === 1 ? ' event' : ' events');
  }

  $('events').addEventListener('click', function (e) {
    var row = e.target.closest('li');
    if (!row) return;
    if (selected) selected.classList.remove('selected');
    selected = row;
    row.classList.add('selected');
    $('detail').textContent = JSON.stringify(JSON.parse(row.dataset.json), null, 2);
  });

  $('filters').addEventListener('submit', function (e) {
    e.preventDefault();
    state.collections = $('collections').value.trim();
    state.dids = $('dids').value.trim();
    state.lastTimeUs = 0; // a new filter starts live
    save();
    clear();
    state.paused = false;
    $('pause').textContent = 'Pause';
    connect();
  });

  $('skip').addEventListener('click', function () {
    // Where the lost events end is unknown without a cursor: from the newest event stored now.
    state.lastTimeUs = lostUpTo ? Math.max(state.lastTimeUs, lostUpTo) : 0;
    save();
    state.paused = false;
    $('pause').textContent = 'Pause';
    connect();
  });

  $('pause').addEventListener('click', function () {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (state.paused) {
      clearTimeout(retry);
      attempts++;
      if (source) source.close();
      source = null;
      setStatus('paused', 'paused');
    } else {
      connect(); // from the last event shown: nothing is missed while paused
    }
  });

  function clear() {
    $('events').textContent = '';
    $('detail').textContent = '';
    total = 0;
    arrivals = [];
    selected = null;
    $('count').textContent = '0 events';
  }
  $('clear').addEventListener('click', clear);

  setInterval(function () {
    var now = Date.now();
    arrivals = arrivals.filter(function (t) { return now - t < 5000; });
    $('rate').textContent = (state.paused ? 0 : arrivals.length / 5).toFixed(1) + ' events/s';
  }, 500);

  connect();
})();
</script>
</body>
</html>
`;

/** The text between the page's only `open` tag and its `close` tag, as a CSP hash covers it. */
function hashOfElement(open: string, close: string): string {
  const start = EXPLORER_PAGE.indexOf(open) + open.length;
  const text = EXPLORER_PAGE.slice(start, EXPLORER_PAGE.indexOf(close, start));
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

/**
 * The page's own script and style run, it reads this gateway's streams, and nothing else: were an
 * event's markup ever to reach the document (every field is written as text), it could neither
 * run nor load nor send anything.
 */
export const EXPLORER_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${hashOfElement('<script>', '</script>')}`,
    `style-src ${hashOfElement('<style>', '</style>')}`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
};
