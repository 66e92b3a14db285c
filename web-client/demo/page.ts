/**
 * The demo clinic page (runs in the browser; bundled by demo/bundle.ts). Connects to the relay with the client
 * library, shows each site's live board, and sends participants for scanning with command tokens minted on
 * demand by the demo server. Every value from the network is written with `textContent`, never as HTML.
 */
import { type CommandHandle, ScanRelayClient, type SiteEvent, type Subscription } from '../src/index.js';
import {
  applyCommandError,
  applyCommandStatus,
  applyEvent,
  describeRow,
  INITIAL_ROW,
  type Phase,
  type RowState,
} from './board-model.js';

interface ClinicParticipant {
  accession: string;
  name: string;
  nhsNumber: string;
  appointment: string;
  stationAet: string;
}
interface ClinicInfo {
  user: { id: string; name: string };
  relayUrl: string;
  /** The relay's WebTransport listener, when the demo enabled it: tried first, WebSocket as fallback. */
  webTransport?: { url: string; certSha256?: string };
  sites: { site: string; participants: ClinicParticipant[] }[];
}

interface Row {
  participant: ClinicParticipant;
  site: string;
  state: RowState;
  tr: HTMLTableRowElement;
  status: HTMLElement;
  detail: HTMLElement;
  progress: HTMLProgressElement;
  button: HTMLButtonElement;
}

const rows = new Map<string, Row>();
const modalityCells = new Map<string, HTMLElement>();
const presenceLists = new Map<string, HTMLUListElement>();
let logList: HTMLOListElement;
let renewals = 0;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function post<T>(path: string, body: object): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const payload = (await res.json()) as T & { message?: string };
  if (!res.ok) throw new Error(payload.message ?? `HTTP ${res.status}`);
  return payload;
}

function announce(text: string): void {
  const region = document.getElementById('announcer');
  if (!region) return;
  const p = el('p', {}, text);
  region.append(p);
  while (region.childElementCount > 5) region.firstElementChild?.remove();
}

function log(text: string, key?: string): void {
  const li = el('li', key ? { 'data-key': key } : {}, `${new Date().toLocaleTimeString()} — ${text}`);
  logList.prepend(li);
  while (logList.childElementCount > 100) logList.lastElementChild?.remove();
}

function render(row: Row, previous: Phase | undefined): void {
  const view = describeRow(row.state);
  row.tr.dataset.phase = row.state.phase;
  row.tr.dataset.images = String(row.state.images);
  row.status.textContent = view.label;
  row.status.className = `badge ${view.tone}`;
  row.detail.textContent = view.detail;
  row.progress.hidden = row.state.phase !== 'scanning';
  row.progress.removeAttribute('value');
  row.button.disabled = !view.canSend;
  const action = row.state.phase === 'failed' ? 'Send again' : view.canSend ? 'Send for scan' : 'Sent';
  row.button.textContent = action;
  row.button.setAttribute(
    'aria-label',
    action === 'Sent' ? `${row.participant.name} sent` : `${action}: ${row.participant.name}`,
  );
  if (previous !== undefined && previous !== row.state.phase)
    announce(`${row.participant.name}: ${view.label}${view.detail ? `, ${view.detail}` : ''}`);
}

function update(accession: string, next: (state: RowState) => RowState): void {
  const row = rows.get(accession);
  if (!row) return;
  const before = row.state;
  row.state = next(before);
  if (row.state !== before) render(row, before.phase);
}

async function sendForScan(client: ScanRelayClient, row: Row): Promise<void> {
  update(row.participant.accession, (s) => ({ ...s, phase: 'sending', detail: '' }));
  let handle: CommandHandle;
  try {
    // Minted now, for this click: a token is never kept on the page long enough to expire.
    const { token } = await post<{ token: string }>('/api/command', { accession: row.participant.accession });
    handle = client.send(token);
  } catch (err) {
    update(row.participant.accession, (s) => applyCommandError(s, { message: (err as Error).message }));
    return;
  }
  log(`${row.participant.accession}: sent for scan`);
  for await (const status of handle) update(row.participant.accession, (s) => applyCommandStatus(s, status));
  const result = await handle.done;
  if (result.state === 'error') update(row.participant.accession, (s) => applyCommandError(s, result));
}

function siteSection(client: ScanRelayClient, site: string, participants: ClinicParticipant[]): HTMLElement {
  const section = el('section', { 'aria-labelledby': `h-${site}`, 'data-site': site });
  section.append(el('h2', { id: `h-${site}` }, `Site ${site}`));
  const panels = el('div', { class: 'panels' });
  const gw = el('div', { class: 'panel' });
  gw.append(el('h3', {}, 'Gateway'));
  const presence = el('ul', { 'data-presence': site });
  presence.append(el('li', {}, 'waiting for the relay…'));
  presenceLists.set(site, presence);
  gw.append(presence);
  const mod = el('div', { class: 'panel' });
  mod.append(el('h3', {}, 'Modalities'));
  const modList = el('ul');
  for (const aet of new Set(participants.map((p) => p.stationAet))) {
    const li = el('li', {}, `${aet}: `);
    const cell = el('span', { 'data-modality': aet }, 'idle');
    li.append(cell);
    modList.append(li);
    modalityCells.set(aet, cell);
  }
  mod.append(modList);
  panels.append(gw, mod);
  section.append(panels);

  const table = el('table');
  table.append(el('caption', {}, `Participants booked today at ${site}`));
  const head = el('tr');
  for (const [label, cls] of [
    ['Time', ''],
    ['Participant', ''],
    ['NHS number', 'nhs'],
    ['Status', ''],
    ['Action', ''],
  ] as const)
    head.append(el('th', { scope: 'col', ...(cls ? { class: cls } : {}) }, label));
  const thead = el('thead');
  thead.append(head);
  table.append(thead);
  const body = el('tbody');
  for (const p of participants) {
    const tr = el('tr', { 'data-accession': p.accession });
    const time = new Date(p.appointment).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    tr.append(el('td', {}, time), el('th', { scope: 'row' }, p.name), el('td', { class: 'nhs' }, p.nhsNumber));
    const stateCell = el('td', { class: 'state' });
    const status = el('span', { class: 'badge' });
    const progress = el('progress', { 'aria-label': `Scanning ${p.name}` });
    const detail = el('span', { class: 'detail' });
    stateCell.append(status, ' ', progress, detail);
    const button = el('button', { type: 'button' }, 'Send for scan');
    const actionCell = el('td');
    actionCell.append(button);
    tr.append(stateCell, actionCell);
    body.append(tr);
    const row: Row = { participant: p, site, state: { ...INITIAL_ROW }, tr, status, detail, progress, button };
    rows.set(p.accession, row);
    button.addEventListener('click', () => void sendForScan(client, row));
    render(row, undefined);
  }
  table.append(body);
  section.append(table);
  return section;
}

function renderPresence(sub: Subscription): void {
  const list = presenceLists.get(sub.site);
  if (!list) return;
  list.replaceChildren();
  if (sub.presence.size === 0) list.append(el('li', {}, 'no gateway has connected yet'));
  for (const p of sub.presence.values()) {
    const li = el('li', { 'data-gateway': p.gateway, 'data-online': String(p.online) }, `${p.gateway}: `);
    li.append(el('span', { class: `badge ${p.online ? 'ok' : 'bad'}` }, p.online ? 'online' : 'offline'));
    li.append(` since ${new Date(p.since).toLocaleTimeString()}`);
    list.append(li);
  }
}

function onEvent(e: SiteEvent): void {
  const key = `${e.gateway}:${e.seq > 0 ? e.seq : e.position}`;
  if (e.kind === 'modality.status') {
    const aet = typeof e.data.aet === 'string' ? e.data.aet : undefined;
    const cell = aet ? modalityCells.get(aet) : undefined;
    if (cell) cell.textContent = e.data.online === true ? 'online' : 'not answering';
  }
  if (e.subject !== undefined && rows.has(e.subject)) {
    const row = rows.get(e.subject)!;
    const cell = modalityCells.get(row.participant.stationAet);
    if (cell && e.kind === 'procedure.started') cell.textContent = `scanning ${e.subject}`;
    if (cell && (e.kind === 'procedure.completed' || e.kind === 'procedure.discontinued')) cell.textContent = 'idle';
    update(e.subject, (s) => applyEvent(s, e.kind, e.data));
  }
  if (e.kind === 'command.status') {
    log(`command ${String(e.data.command).slice(0, 8)}…: ${String(e.data.state)}`, key);
    return;
  }
  log(
    `${e.subject ? `${e.subject}: ` : ''}${e.kind.replace('.', ' ')}${e.kind === 'images.received' ? ` (${String(e.data.count)})` : ''}`,
    key,
  );
}

async function main(): Promise<void> {
  const app = document.getElementById('app');
  const connState = document.getElementById('conn-state');
  if (!app || !connState) return;
  const res = await fetch('/api/clinic', { credentials: 'same-origin' });
  if (!res.ok) {
    app.textContent = 'Your sign-in has ended. Reload the page to sign in again.';
    return;
  }
  const info = (await res.json()) as ClinicInfo;
  const wt = info.webTransport;
  const client = new ScanRelayClient({
    url: info.relayUrl,
    getToken: async () => (await post<{ token: string }>('/api/token', {})).token,
    ...(wt
      ? {
          webTransport: {
            url: wt.url,
            ...(wt.certSha256
              ? { serverCertificateHashes: [{ algorithm: 'sha-256' as const, value: wt.certSha256 }] }
              : {}),
          },
        }
      : {}),
  });
  app.replaceChildren();
  for (const s of info.sites) app.append(siteSection(client, s.site, s.participants));
  app.append(el('h2', { id: 'h-log' }, 'Event log'));
  logList = el('ol', { class: 'log', 'aria-labelledby': 'h-log', reversed: '' });
  app.append(logList);

  client.on('state', ({ to }) => {
    connState.textContent = to;
    connState.className = `badge ${to === 'connected' ? 'ok' : to === 'closed' ? 'bad' : 'warn'}`;
    connState.dataset.state = to;
    if (to === 'reconnecting' || to === 'connected') log(`relay connection: ${to}`);
  });
  client.on('transport', ({ transport, fallback }) => {
    connState.dataset.transport = transport;
    if (fallback) connState.dataset.fallback = 'true';
    log(
      `relay transport: ${transport === 'webtransport' ? 'WebTransport' : 'WebSocket'}${fallback ? ` (${fallback.message})` : ''}`,
    );
  });
  let connects = 0;
  client.on('connected', () => {
    connState.dataset.connects = String(++connects);
  });
  client.on('renewed', () => {
    connState.dataset.renewals = String(++renewals);
    log('session renewed in-band');
  });
  client.on('error', (err) => log(`problem: ${err.code} — ${err.message}`));
  client.on('closed', ({ error }) => {
    if (error) announce(`Connection to the relay stopped: ${error.message}`);
  });
  for (const s of info.sites) {
    const sub = client.subscribe(s.site);
    sub.on('snapshot', ({ board, reason }) => {
      if (reason === 'resync')
        for (const row of rows.values())
          if (row.site === s.site) update(row.participant.accession, () => ({ ...INITIAL_ROW }));
      for (const entry of board.values()) update(entry.subject, (st) => applyEvent(st, entry.kind, entry.data));
      log(`${s.site}: board ${reason === 'resync' ? 'rebuilt (resync)' : 'loaded'}`);
    });
    sub.on('event', onEvent);
    sub.on('presence', () => renderPresence(sub));
    sub.on('error', (err) => log(`${s.site}: ${err.code} — ${err.message}`));
  }
  client.connect();
}

void main();
